#!/usr/bin/env bash
# test_bench_cli.sh: corecast-bench refuses bad --hgrm/--plot paths before
# it connects anywhere, with a one-line error and exit status 1, and
# scripts/soak.sh answers --help and refuses bad arguments without building
# or starting anything.
#
# Needs the bench binary: builds it (debug) unless CORECAST_BENCH points at
# one. No server is started: the URL is a port nothing listens on, so a
# check that wrongly ran the workload fails with exit 2 instead of 1.
# Ends with the line "N passed, M failed"; exits 1 if anything failed.
#
# Usage: bash tests/scripts/test_bench_cli.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROOT
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -z ${CORECAST_BENCH:-} ]]; then
    (cd "$ROOT" && cargo build -q -p corecast-bench)
    CORECAST_BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/debug/corecast-bench
fi
readonly BENCH=$CORECAST_BENCH

passed=0
failed=0
# Output (stdout and stderr) and exit status of the last `run`.
out=
rc=0

run() {
    rc=0
    out=$(timeout 20 "$@" 2>&1) || rc=$?
}

expect() {
    local name=$1 want_rc=$2 want_text=$3
    if [[ $rc == "$want_rc" && $out == *"$want_text"* ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name: exit $rc (want $want_rc), output:" >&2
        printf '%s\n' "$out" | head -5 >&2
    fi
}

# Nothing listens on port 1; a run that got past the checks would fail to connect.
FANOUT=("$BENCH" fanout --url ws://127.0.0.1:1/ws --subs 1 --secs 1 --ramp-timeout 2)

run "${FANOUT[@]}" --plot "$tmp/no/such/dir/x.svg"
expect plot_in_missing_directory 1 "--plot $tmp/no/such/dir/x.svg: directory $tmp/no/such/dir does not exist"
[[ $(printf '%s\n' "$out" | wc -l) == 1 ]] || { failed=$((failed + 1)); echo "FAIL: not one line: $out" >&2; }

run "${FANOUT[@]}" --hgrm "$tmp"
expect hgrm_is_a_directory 1 "--hgrm $tmp: is a directory"

run "${FANOUT[@]}" --plot "$tmp/x.txt"
expect plot_with_unknown_extension 1 ".svg or .png"

run "$BENCH" echo --url ws://127.0.0.1:1/echo -c 1 --secs 1 --hgrm "$tmp/none/x.hgrm"
expect echo_checks_too 1 "does not exist"

run "$BENCH" soak --url ws://127.0.0.1:1/ws --server-pid $$ --plot "$tmp/none/x.svg"
expect soak_checks_before_the_warm_up 1 "does not exist"

# Good paths: the check passes and leaves nothing behind; the run itself
# then fails to connect (exit 2), which is what shows the check let it through.
run "${FANOUT[@]}" --hgrm "$tmp/ok.hgrm" --plot "$tmp/ok.svg" --connect-timeout 1
expect good_paths_reach_the_run 2 "connect"

run bash "$ROOT/scripts/soak.sh" --help
expect soak_help 0 "--minutes N"

run bash "$ROOT/scripts/soak.sh" --minutes x
expect soak_bad_minutes 1 "--minutes must be a whole number"

run bash "$ROOT/scripts/soak.sh" --frobnicate
expect soak_unknown_argument 1 "unknown argument --frobnicate"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
