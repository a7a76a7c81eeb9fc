#!/usr/bin/env bash
# fuzz.sh: runs every cargo-fuzz target in fuzz/ for a time box each.
#
# Usage: scripts/fuzz.sh [--smoke | SECONDS] [TARGET...]
#   SECONDS   fuzzing time per target (default 60)
#   --smoke   20 s per target (what CI runs)
#   TARGET    run only these targets (default: every one `cargo fuzz list` shows)
#
# Installs cargo-fuzz (cargo install cargo-fuzz --locked) when `cargo fuzz`
# is missing. Uses the nightly toolchain with AddressSanitizer when rustup
# has one, else stable with `-s none` (no sanitizer; Rust's own checks
# still panic). libFuzzer is C++, so a C++ compiler must be installed.
#
# Each target starts from its seeds in fuzz/corpus/TARGET; what it grows is
# kept in fuzz/target/corpus/TARGET (ignored by git), so reruns go deeper.
# Exits 1 if any target crashed, after printing each reproducer's path
# (fuzz/artifacts/TARGET/...). To keep a fix fixed, copy the reproducer to
# fuzz/regressions/TARGET/: `cargo test --lib fuzzing` replays that folder.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$root/scripts/lib.sh"

secs=60
case ${1:-} in
    -h | --help)
        usage_from_header "$0"
        exit 0
        ;;
    --smoke) secs=20 && shift ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2 && exit 2 ;;
    *[!0-9]* | '') ;; # no SECONDS: the arguments, if any, are targets
    *) secs=$1 && shift ;;
esac
((secs > 0)) || { echo "fuzz.sh: SECONDS must be at least 1" >&2; exit 2; }

# summarize TARGET LOG: one line from libFuzzer's final stats and last status.
summarize() {
    local execs rate corpus cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$2" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$2" | tail -1)
    corpus=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$2" | tail -1 | cut -d' ' -f2)
    cov=$(grep -o 'cov: [0-9]*' "$2" | tail -1 | cut -d' ' -f2)
    echo "fuzz.sh: $1: ${execs:-?} executions, ${rate:-?} exec/s, corpus ${corpus:-?} entries/bytes, coverage ${cov:-?} edges"
}

if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
    echo "fuzz.sh: no C++ compiler; libFuzzer needs one (Debian: apt-get install g++)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Nightly gives AddressSanitizer; on stable, -s none is the only choice.
toolchain=() sanitizer=()
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    sanitizer=(-s none)
fi

cd "$root/fuzz"
if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
echo "fuzz.sh: ${#targets[@]} targets, ${secs}s each, toolchain ${toolchain[*]:-stable} ${sanitizer[*]:-(address sanitizer)}"
# One build of every target, so the time box below is all fuzzing.
cargo "${toolchain[@]}" fuzz build "${sanitizer[@]}"

failed=()
for target in "${targets[@]}"; do
    work=target/corpus/$target
    mkdir -p "$work" "corpus/$target"
    log=target/fuzz-$target.log
    echo "fuzz.sh: $target for ${secs}s (log: fuzz/$log)"
    # libFuzzer stops itself at -max_total_time; timeout is only a backstop
    # for a hang libFuzzer cannot see (its own -timeout covers one input).
    if timeout $((secs + 120)) cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "$target" \
        "$work" "corpus/$target" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        summarize "$target" "$log"
    else
        summarize "$target" "$log"
        failed+=("$target")
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "fuzz.sh: $target FAILED; reproducer: ${artifact:-none written (see fuzz/$log)}" >&2
        grep -m1 -A3 'panicked at' "$log" >&2 || tail -n 20 "$log" >&2
    fi
done

if ((${#failed[@]} > 0)); then
    echo "fuzz.sh: crashed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${secs}s without a crash"
