# shellcheck shell=bash
# Shared by the shell tests that run corecast-bench against a real server
# (sourced, not run: it does not match test_*.sh). Sets ROOT, tmp (removed
# on exit), CORECAST_BIN and CORECAST_BENCH (debug builds unless both are
# given), passed/failed and `check`; `start_server ARGS...` starts corecast
# on free ports (stopped on exit) and waits for its /health, setting
# `port` and `admin`.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROOT
tmp=$(mktemp -d)
server=""
cleanup() {
    [[ -z $server ]] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
    rm -rf "$tmp"
}
trap cleanup EXIT

if [[ -z ${CORECAST_BENCH:-} || -z ${CORECAST_BIN:-} ]]; then
    (cd "$ROOT" && cargo build -q -p corecast -p corecast-bench)
    CORECAST_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/corecast
    CORECAST_BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/debug/corecast-bench
fi

passed=0
failed=0
# `check NAME COMMAND...`: counts COMMAND's success; on failure, says so
# with the tail of the last bench run's output.
check() {
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name" >&2
        tail -n 20 "$tmp/bench.out" "$tmp/bench.err" 2>/dev/null >&2 || true
    fi
}

# Starts the server on two ports the kernel just picked as free (public,
# admin); if another process took one before the server bound it, tries
# again with new ones (at most 5 times).
start_server() {
    local attempt
    for attempt in 1 2 3 4 5; do
        read -r port admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
        "$CORECAST_BIN" --addr 127.0.0.1 --port "$port" --shards 2 --admin-addr "127.0.0.1:$admin" "$@" \
            >"$tmp/server.log" 2>&1 &
        server=$!
        for _ in $(seq 100); do
            curl -sf "http://127.0.0.1:$admin/health" >/dev/null 2>&1 && return 0
            kill -0 "$server" 2>/dev/null || break
            sleep 0.1
        done
        if ! grep -q "address already in use" "$tmp/server.log"; then
            break
        fi
        wait "$server" 2>/dev/null || true
        server=""
        echo "attempt $attempt: a port was taken before the server bound it; trying others" >&2
    done
    echo "the server did not answer /health:" >&2
    cat "$tmp/server.log" >&2
    return 1
}
