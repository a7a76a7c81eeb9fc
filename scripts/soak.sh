#!/usr/bin/env bash
# soak.sh: corecast under churn for a bounded time (issue 9). A steady
# population of connections, 10% of the subscribers reconnecting each
# minute (RST, clean close, or FIN then an abandoned handshake), publishers
# at a fixed rate over a few hundred channels; one line a minute of
# deliveries expected vs received (lost, duplicated, reordered for the
# subscribers that stayed up), server RSS, fds and connections; at the end,
# once every client has left, RSS and fds against the baseline. The work is
# `corecast-bench soak` (bench/README.md); this script builds, tunes, pins,
# starts and stops the server, and keeps the report.
#
#   scripts/soak.sh [--minutes N] [--connections N] [--out DIR] [-- BENCH-ARGS...]
#
#   --minutes N      length of the soak proper (default 10); the warm-up,
#                    ramps and settles add a minute or two
#   --connections N  population, 10 publishers included (default 15000)
#   --out DIR        results directory (default target/soak/DATE, or
#                    $CARGO_TARGET_DIR/soak/DATE)
#   -- ARGS          passed on to corecast-bench soak, e.g. --rate 1000
#
# The server runs 2 shards on CPUs 0 and 1 and the bench one thread on CPU 1
# (everything on CPU 0 on a one-CPU machine). Needs root to raise sysctl
# ceilings (it never lowers one). The whole script runs under `timeout`:
# the build gets 20 minutes, the soak its length plus 15. Results: DIR/
# report.txt (machine, command, the bench's lines and table), soak.json,
# server.log. Exit status: the bench's (0 pass, 2 a check failed, 1 a usage
# or setup error), or 1 if the server died.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/scripts/lib.sh"
MINUTES=10 CONNECTIONS=15000 OUT="" EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --minutes) MINUTES=${2:?--minutes needs a value}; shift ;;
        --connections) CONNECTIONS=${2:?--connections needs a value}; shift ;;
        --out) OUT=${2:?--out needs a value}; shift ;;
        -h|--help) usage_from_header "${BASH_SOURCE[0]}"; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
    shift
done
if [[ ! $MINUTES =~ ^[0-9]+$ || $MINUTES -lt 1 || ! $CONNECTIONS =~ ^[0-9]+$ || $CONNECTIONS -lt 320 ]]; then
    echo "soak.sh: --minutes must be a whole number >= 1, --connections >= 320" >&2
    exit 1
fi

# Time-box everything, the build included: re-run this script under timeout.
LIMIT=$((20 * 60 + MINUTES * 60 + 15 * 60))
if [[ -z ${SOAK_TIMEBOXED:-} ]]; then
    SOAK_TIMEBOXED=1 exec timeout --foreground "$LIMIT" "${BASH_SOURCE[0]}" \
        --minutes "$MINUTES" --connections "$CONNECTIONS" ${OUT:+--out "$OUT"} -- "${EXTRA[@]}"
fi

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
SRV_CPUS=0-1 BENCH_CPU=1
if [[ $(nproc) -lt 2 ]]; then SRV_CPUS=0 BENCH_CPU=0; fi
SERVER_PID="" BENCH_PID=""

# The bench first: it watches the server.
cleanup() {
    stop_pid TERM 10 "$BENCH_PID"
    stop_pid INT 15 "$SERVER_PID"
    BENCH_PID="" SERVER_PID=""
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

echo "== building release binaries"
(cd "$ROOT" && cargo build --release -q -p corecast -p corecast-bench)

echo "== raising sysctl ceilings and the open-files limit"
raise_sysctls "net.ipv4.ip_local_port_range=1024 65535" net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535 fs.file-max=4194304
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < CONNECTIONS + 1000)); then
    echo "soak.sh: open-files limit $(ulimit -n) is too low for $CONNECTIONS connections" >&2
    exit 1
fi

PORT=${SOAK_PORT:-18600}
next_port
WS_PORT=$PORT
next_port
ADMIN_PORT=$PORT
SERVER=("$BIN/corecast" --port "$WS_PORT" --addr 127.0.0.1 --shards 2 --cpus "$SRV_CPUS"
    --admin-addr "127.0.0.1:$ADMIN_PORT" --max-connections "$((CONNECTIONS + 1000))")
BENCH=("$BIN/corecast-bench" soak --url "ws://127.0.0.1:$WS_PORT/ws" --admin "127.0.0.1:$ADMIN_PORT"
    --connections "$CONNECTIONS" --minutes "$MINUTES" --cpus "$BENCH_CPU" --threads 1
    --source-ips 127.0.0.2-127.0.0.20 --hgrm "$OUT/soak.hgrm" --label soak "${EXTRA[@]}")

{
    meta_lines "$ROOT" "$(nproc)"
    echo "command: scripts/soak.sh --minutes $MINUTES --connections $CONNECTIONS${EXTRA[*]:+ -- ${EXTRA[*]}}"
    echo "server: ${SERVER[*]#"$BIN/"}"
    echo "bench: ${BENCH[*]#"$BIN/"}"
    echo "pinning: server CPUs $SRV_CPUS, bench CPU $BENCH_CPU"
} | tee "$OUT/report.txt"

echo "== starting corecast"
RUST_LOG=info "${SERVER[@]}" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "soak.sh: server exited at startup, see $OUT/server.log" >&2
        tail -5 "$OUT/server.log" >&2
        exit 1
    fi
    curl -sf "http://127.0.0.1:$ADMIN_PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done

echo "== soak: $MINUTES min, $CONNECTIONS connections"
rc=0
# In the background, so that `wait` returns to the INT/TERM trap at once
# (bash runs traps only between foreground commands) and cleanup stops the
# bench. Its lines are shown as they come; the JSON line goes to soak.json only.
timeout $((MINUTES * 60 + 600)) "${BENCH[@]}" >"$OUT/bench.txt" 2>&1 &
BENCH_PID=$!
tail --pid="$BENCH_PID" -n +1 -f "$OUT/bench.txt" | sed -u '/^{/d' | tee -a "$OUT/report.txt" &
SHOW_PID=$!
wait "$BENCH_PID" || rc=$?
BENCH_PID=""
wait "$SHOW_PID" || true
tail -n1 "$OUT/bench.txt" >"$OUT/soak.json"
rm -f "$OUT/bench.txt"

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "soak.sh: the server died during the soak; see $OUT/server.log" | tee -a "$OUT/report.txt" >&2
    rc=1
fi
cleanup
{
    echo "server log: $(wc -l <"$OUT/server.log") lines, $(awk '/ERROR|WARN|panick/' "$OUT/server.log" | wc -l) at WARN or above"
    echo "exit=$rc"
} | tee -a "$OUT/report.txt"
echo "== report: $OUT/report.txt"
exit "$rc"
