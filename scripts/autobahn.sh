#!/usr/bin/env bash
# autobahn.sh: runs the Autobahn|Testsuite fuzzing client against corecast's
# /echo and compares the result with autobahn/expected.json.
#
# Usage: scripts/autobahn.sh [--quick] [--debug] [--cases LIST] [--require]
#   --quick       sections 1-7 and 10 only (framing, pings, reserved bits,
#                 opcodes, fragmentation, UTF-8, closing, auto-fragmentation):
#                 what CI runs; the full run adds 9 (limits and performance:
#                 messages up to 16 MiB) and 12-13 (permessage-deflate)
#   --debug       test the debug build (target/debug/corecast) instead of release
#   --cases LIST  only these cases: comma-separated wstest patterns, e.g. 6.4.*,7.5.1
#   --require     exit 1, not 0, when Python 2.7 or the suite cannot be installed
#
# The suite needs Python 2.7: $AUTOBAHN_PYTHON, else pyenv's newest 2.7.x,
# else python2.7 on PATH. It is installed from autobahn/requirements.txt
# (every version pinned) with `pip install --target` into
# .cache/autobahn/py27-HASH (ignored by git; HASH follows the requirements),
# never into a Python's own site-packages; the first install takes a few
# minutes (wsaccel compiles). Without Python 2.7, or when the install fails,
# it prints a SKIPPED banner and exits 0 (1 with --require).
#
# It builds corecast, starts it on 127.0.0.1 (a free port from 27000 up,
# one shard, --compression on, --max-message-size and --max-outbound-bytes 64 MiB so section
# 9's 16 MiB messages echo), runs `wstest -m fuzzingclient` bounded by
# `timeout` (20 min, 40 min for the full run), stops the server, and runs
# autobahn/compare.py: exit 1 if any case is worse than expected.json
# (or missing), with one line per such case; cases better than expected
# are named so the file can be updated (autobahn/compare.py update).
# Reports (index.json and one HTML page per case) and the server log go to
# $AUTOBAHN_OUT (default target/autobahn), replaced on each run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$root/scripts/lib.sh"

# Sections 1-7 and 10: every case that checks protocol handling, none of
# section 9's large messages (minutes) or 12-13 (deflate).
QUICK_CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*"
# Room for section 9's largest message (16 MiB) and its echo in the outbox.
MAX_SIZE=64MiB

cases="*" quick=0 profile=release require=0
while (($# > 0)); do
    case $1 in
        -h | --help) usage_from_header "$0" && exit 0 ;;
        --quick) quick=1 cases=$QUICK_CASES ;;
        --debug) profile=debug ;;
        --cases)
            [[ -n ${2:-} ]] || { echo "autobahn.sh: --cases needs a list" >&2 && exit 2; }
            cases=$2 && shift
            ;;
        --require) require=1 ;;
        *) echo "autobahn.sh: unknown argument $1 (see --help)" >&2 && exit 2 ;;
    esac
    shift
done
wstest_secs=$((quick ? 1200 : 2400))

# skip WHY: the loud way out when the suite cannot run here.
skip() {
    echo "autobahn.sh: ================================================================" >&2
    echo "autobahn.sh: SKIPPED: $1" >&2
    echo "autobahn.sh: the Autobahn|Testsuite did not run; nothing was checked" >&2
    echo "autobahn.sh: ================================================================" >&2
    exit $((require ? 1 : 0))
}

# find_python: prints a Python 2.7 interpreter, or returns 1.
find_python() {
    local cands=() c pyenv_root
    [[ -z ${AUTOBAHN_PYTHON:-} ]] || cands+=("$AUTOBAHN_PYTHON")
    if [[ -z ${AUTOBAHN_PYTHON:-} ]]; then
        if command -v pyenv >/dev/null 2>&1 && pyenv_root=$(pyenv root 2>/dev/null); then
            mapfile -t -O ${#cands[@]} cands < <(printf '%s\n' "$pyenv_root"/versions/2.7.*/bin/python | sort -rV)
        fi
        cands+=(python2.7 python2)
    fi
    for c in "${cands[@]}"; do
        if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

# install_suite PYTHON: installs the pinned requirements once into a
# directory named after their hash; prints that directory, or returns 1.
install_suite() {
    local py=$1 req=$root/autobahn/requirements.txt hash dir
    hash=$(sha256sum "$req" | cut -c1-12)
    dir=$root/.cache/autobahn/py27-$hash
    if [[ ! -f $dir/.installed ]]; then
        echo "autobahn.sh: installing the suite into ${dir#"$root"/} (a few minutes, once)" >&2
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        # A new dir, moved into place only when complete: an interrupted
        # install is never taken for a finished one.
        timeout 1200 "$py" -E -s -m pip install --disable-pip-version-check --no-warn-script-location \
            --target "$dir.tmp" -r "$req" >"$dir.tmp.log" 2>&1 || {
            tail -n 15 "$dir.tmp.log" >&2
            echo "autobahn.sh: pip failed; its log: ${dir#"$root"/}.tmp.log" >&2
            return 1
        }
        rm -rf "$dir" && mv "$dir.tmp" "$dir" && mv "$dir.tmp.log" "$dir/pip.log"
        touch "$dir/.installed"
    fi
    echo "$dir"
}

py=$(find_python) || skip "no Python 2.7 (set AUTOBAHN_PYTHON, or pyenv install 2.7.18)"
site=$(install_suite "$py") || skip "could not install autobahn/requirements.txt with $py"
wstest=("$py" -E -s "$root/autobahn/wstest.py" "$site")
suite_version=$("${wstest[@]}" --autobahnversion 2>/dev/null | tr -s ' \n' ' ') \
    || skip "the installed suite does not start: ${wstest[*]} --autobahnversion"
echo "autobahn.sh: $("$py" -V 2>&1), $suite_version"

CARGO_TARGET_DIR=$(cargo_target_dir "$root")
export CARGO_TARGET_DIR
build=()
if [[ $profile == release ]]; then build=(--release); fi
(cd "$root" && cargo build -q "${build[@]}" --bin corecast)
bin=$CARGO_TARGET_DIR/$profile/corecast

out=${AUTOBAHN_OUT:-$CARGO_TARGET_DIR/autobahn}
rm -rf "$out" && mkdir -p "$out/reports"
server_pid="" wstest_pid=""
# wstest runs in the background under `wait`, which a signal interrupts, so
# Ctrl-C or a TERM from CI stops both at once (bash runs no trap while a
# foreground child runs, and ignores a SIGINT that child survived).
trap 'stop_pid TERM 10 "$wstest_pid" "$server_pid"' EXIT
trap 'exit 130' INT TERM

PORT=$((27000 + $$ % 500))
next_port
"$bin" --addr 127.0.0.1 --port "$PORT" --shards 1 --admin-addr none \
    --max-message-size "$MAX_SIZE" --max-outbound-bytes "$MAX_SIZE" --compression on >"$out/server.log" 2>&1 &
server_pid=$!
# The server's `listening` line, never a sleep, says it is ready.
for _ in $(seq 300); do
    grep -q 'listening addr=' "$out/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log" >&2; echo "autobahn.sh: corecast exited" >&2; exit 2; }
    sleep 0.1
done
grep -q 'listening addr=' "$out/server.log" || { echo "autobahn.sh: corecast did not start in 30 s" >&2; exit 2; }

IFS=, read -r -a case_list <<<"$cases"
patterns=$(printf '"%s", ' "${case_list[@]}")
cat >"$out/spec.json" <<EOF
{
  "outdir": "$out/reports",
  "servers": [{"agent": "corecast", "url": "ws://127.0.0.1:$PORT/echo"}],
  "cases": [${patterns%, }],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF
echo "autobahn.sh: cases $cases against $profile corecast on port $PORT (reports: $out/reports)"
start=$SECONDS
(cd "$out" && exec timeout "$wstest_secs" "${wstest[@]}" -m fuzzingclient -s spec.json >wstest.log 2>&1) &
wstest_pid=$!
rc=0
wait "$wstest_pid" || rc=$?
wstest_pid=""
((rc == 0)) || {
    tail -n 20 "$out/wstest.log" >&2
    ((rc != 124)) || echo "autobahn.sh: wstest did not finish in ${wstest_secs}s" >&2
    echo "autobahn.sh: wstest failed (exit $rc); log: $out/wstest.log" >&2
    exit 1
}
echo "autobahn.sh: wstest took $((SECONDS - start)) s"
stop_pid TERM 10 "$server_pid"
server_pid=""

python3 "$root/autobahn/compare.py" check "$root/autobahn/expected.json" "$out/reports/index.json" --cases "$cases"
