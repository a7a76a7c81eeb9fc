#!/usr/bin/env bash
# bench.sh: the standard corecast benchmark set in one command, against a
# freshly started release server, with the machine, kernel, applied sysctl
# values, git sha and date stored next to every result.
#
#   scripts/bench.sh [--quick] [--big | --big-only] [--cap PCT[,PCT...]]... [--cap-only] [--out DIR]
#
#   (default)  conns 19,000 idle held 60 s; echo 100 conns x 64 B closed loop
#              and fixed rate; fan-out 5,000 subs/1 channel and 1,000 subs/
#              100 channels, each at max rate and at a fixed rate.  ~4 min.
#   --quick    same set, 2,000 conns held 5 s and 5 s runs.       ~1 min.
#   --big-only only the 105,000-connection run below.
#   --big      also 105,000 connections: 6 servers on one SO_REUSEPORT port,
#              6 bench processes of 17,500 each, held 80 s (>= 60 s all at once). +~3 min.
#   --cap PCT  (root; repeatable, or a list: --cap 25,40) also, per cap, a
#              fresh server inside a cgroup whose CPU quota is PCT% of one
#              CPU (cgroup v1 cpu.cfs_quota_us where the machine has it, else
#              v2 cpu.max; meta.txt says which), so the server and not the
#              bench is the bottleneck: echo, fan-out 5,000x1 and 1,000x100
#              at max rate, and 1,000x100 at 50,000 deliveries/s. Reports
#              rate and rate per server CPU-second (utime+stime over the
#              steady window, NAME.samples) in capped.txt.     +~1.5 min per cap.
#   --cap-only only the capped runs.
#
# Server shards are pinned to CPU 0 and bench threads to CPU 1 when the
# machine has two or more CPUs. Needs root for the sysctls (it raises
# ceilings that are lower and never lowers one). Every step is bounded by
# `timeout`; the whole run stays under 10 minutes. Results: DIR/*.json,
# *.hgrm, *.svg, meta.txt, summary.txt (default DIR:
# target/bench-results/DATE). Builds into and runs from $CARGO_TARGET_DIR
# when it is set (else target/).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/scripts/lib.sh"
QUICK=0 BIG=0 STANDARD=1 OUT="" CAP_ONLY=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --big) BIG=1 ;;
        --big-only) BIG=1 STANDARD=0 ;;
        --out) OUT=$2; shift ;;
        --cap) add_caps "${2-}" || exit 2; shift ;;
        --cap-only) CAP_ONLY=1 STANDARD=0 ;;
        -h|--help) usage_from_header "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $CAP_ONLY == 1 && ${#CAPS[@]} == 0 ]]; then echo "bench.sh: --cap-only needs --cap PCT" >&2; exit 2; fi
if [[ ${#CAPS[@]} -gt 0 ]]; then cap_preflight || exit 1; fi
CARGO_TARGET_DIR=$(cargo_target_dir "$ROOT")
export CARGO_TARGET_DIR
OUT=${OUT:-$CARGO_TARGET_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
BIN=$CARGO_TARGET_DIR/release
PORT=${BENCH_PORT:-18080}
SRV_CPU=0 BENCH_CPU=1
[[ $(nproc) -lt 2 ]] && BENCH_CPU=0
SERVER_PIDS=()
# The background benches of the big run (their `timeout` wrappers).
BENCH_PIDS=()

# Benches first: they watch the servers (--server-pid).
cleanup() {
    stop_pid TERM 10 "${BENCH_PIDS[@]}"
    stop_pid INT 15 "${SERVER_PIDS[@]}"
    BENCH_PIDS=() SERVER_PIDS=()
    cgroup_remove_all
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# Starts one server with the given extra flags and waits until it answers /health.
# Servers that have an admin listener get none: several share one port here.
start_server() {
    local extra=()
    # Captured, not piped into grep -q: under pipefail, corecast would fail
    # with EPIPE whenever grep exits before it has written everything.
    local help
    help=$("$BIN/corecast" --help)
    [[ $help == *--admin-addr* ]] && extra=(--admin-addr none)
    RUST_LOG=warn "$BIN/corecast" --port "$PORT" --cpus "$SRV_CPU" "${extra[@]}" "$@" \
        >>"$OUT/server.log" 2>&1 &
    local pid=$!
    SERVER_PIDS+=("$pid")
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench.sh: server exited at startup, see $OUT/server.log" >&2
            tail -3 "$OUT/server.log" >&2
            exit 1
        fi
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench.sh: server did not come up on port $PORT" >&2
    exit 1
}

# Summed VmRSS of the running servers, in KiB.
servers_rss_kib() {
    local total=0 pid kib
    for pid in "${SERVER_PIDS[@]}"; do
        kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# Runs one bench; its table goes to NAME.txt and the screen, its JSON line to NAME.json.
bench() {
    local name=$1 limit=$2; shift 2
    echo "--- $name: corecast-bench $*" | tee -a "$OUT/summary.txt"
    local rc=0
    # --foreground: keep the bench in this terminal's process group, so
    # Ctrl-C reaches it instead of only this shell.
    timeout --foreground "$limit" "$BIN/corecast-bench" "$@" --cpus "$BENCH_CPU" --label "$name" \
        >"$OUT/$name.txt" || rc=$?
    # awk, not grep -v: grep exits 1 on empty output (a bench that crashed),
    # which would end this script under errexit and pipefail.
    awk '!/^\{/' "$OUT/$name.txt" | tee -a "$OUT/summary.txt"
    tail -n1 "$OUT/$name.txt" >"$OUT/$name.json"
    echo "exit=$rc" | tee -a "$OUT/summary.txt"
}

echo "== building release binaries"
(cd "$ROOT" && cargo build --release -q -p corecast -p corecast-bench)

echo "== raising sysctl ceilings"
raise_sysctls "net.ipv4.ip_local_port_range=1024 65535" net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535 net.core.netdev_max_backlog=16384 fs.file-max=4194304

{
    meta_lines "$ROOT" "$(nproc)"
    echo "pinning: server CPU $SRV_CPU, bench CPU $BENCH_CPU"
    if [[ ${#CAPS[@]} -gt 0 ]]; then
        echo "caps: ${CAPS[*]} (% of one CPU)"
        echo "cgroup: $(cgroup_describe)"
    fi
    echo "sysctl:"
    for k in fs.file-max fs.nr_open net.ipv4.ip_local_port_range net.core.somaxconn \
        net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog net.ipv4.tcp_mem \
        net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.netfilter.nf_conntrack_max; do
        echo "  $(sysctl "$k" 2>/dev/null || echo "$k = (absent)")"
    done
} | tee "$OUT/meta.txt"
cp "$OUT/meta.txt" "$OUT/summary.txt"

if [[ $QUICK == 1 ]]; then N=2000 HOLD=5 SECS=5; else N=19000 HOLD=60 SECS=10; fi
URL=ws://127.0.0.1:$PORT

if [[ $STANDARD == 1 ]]; then

# 1. Idle connections against a fresh server, so its RSS delta is the connections'.
start_server --shards 1
bench conns-$N $((HOLD + 120)) conns --url "$URL/ws" -n "$N" --hold "$HOLD" \
    --source-ips 127.0.0.2-127.0.0.20 --hgrm "$OUT/conns-connect.hgrm"
cleanup

# 2. Throughput and latency on a second fresh server.
start_server --shards 1
run() { local name=$1; shift; bench "$name" $((SECS + 60)) "$@" --secs "$SECS" \
    --hgrm "$OUT/$name.hgrm" --plot "$OUT/$name.svg"; }
run echo-max echo --url "$URL/echo" -c 100 --size 64
run echo-rate echo --url "$URL/echo" -c 100 --size 64 --rate 20000
run fanout-5000x1-max fanout --url "$URL/ws" --subs 5000 --channels 1 --publishers 1 --size 64
run fanout-5000x1-rate fanout --url "$URL/ws" --subs 5000 --channels 1 --publishers 1 --size 64 --rate 200
run fanout-1000x100-max fanout --url "$URL/ws" --subs 1000 --channels 100 --publishers 4 --size 64
run fanout-1000x100-rate fanout --url "$URL/ws" --subs 1000 --channels 100 --publishers 4 --size 64 --rate 20000
cleanup
fi

# capped_bench NAME EXPECT SUBCOMMAND ARGS...: one bench against the capped
# server (the last one started), sampling its utime+stime and fds every
# 0.25 s with bash builtins only (a fork per sample would stall the bench's
# CPU), then a line in capped.txt: rate and rate per server CPU-second over
# the steady window, and the share of CFS periods the group was throttled.
capped_bench() {
    local name=$1 expect=$2; shift 2
    local pid=${SERVER_PIDS[-1]} tpid rc=0 nap line fds=() base full="" before after cpu
    fds=("/proc/$pid/fd/"*)
    base=${#fds[@]}
    before=$(cgroup_stat "$CG_DIR")
    echo "--- $name: corecast-bench $*" | tee -a "$OUT/summary.txt"
    timeout --foreground $((SECS + 90)) "$BIN/corecast-bench" "$@" --secs "$SECS" --cpus "$BENCH_CPU" \
        --label "$name" >"$OUT/$name.txt" &
    tpid=$!
    BENCH_PIDS+=("$tpid")
    exec {nap}<> <(:)
    while kill -0 "$tpid" 2>/dev/null; do
        read -r line <"/proc/$pid/stat" 2>/dev/null || break
        stat_ticks "$line"
        # Globbing thousands of fds costs ms; once all are held, stop.
        [[ -z $full ]] && { fds=("/proc/$pid/fd/"*); ((${#fds[@]} - base >= expect)) && full=1; }
        echo "$EPOCHREALTIME $TICKS ${#fds[@]}"
        read -r -t 0.25 -u "$nap" _ || true
    done >"$OUT/$name.samples"
    exec {nap}<&-
    wait "$tpid" || rc=$?
    BENCH_PIDS=()
    after=$(cgroup_stat "$CG_DIR")
    awk '!/^\{/' "$OUT/$name.txt" | tee -a "$OUT/summary.txt"
    tail -n1 "$OUT/$name.txt" >"$OUT/$name.json"
    echo "exit=$rc" | tee -a "$OUT/summary.txt"
    cpu=$(steady_cpu "$OUT/$name.samples" "$base" "$expect" "$SECS")
    { python3 -c 'import json, sys
name, cpu, before, after = sys.argv[1:5]
try:
    d = json.loads(open(sys.argv[5]).read())
except Exception:
    d = {}
rate = d.get("round_trips_per_s") or d.get("delivered_per_s")
unit = "round trips" if "round_trips_per_s" in d else "deliveries"
st = lambda s: dict(kv.split("=", 1) for kv in s.split())
b, a = st(before), st(after)
try:
    th = "%.0f%%" % (100 * (int(a["nr_throttled"]) - int(b["nr_throttled"])) / (int(a["nr_periods"]) - int(b["nr_periods"])))
except (KeyError, ZeroDivisionError, ValueError):
    th = "-"
cpu = float(cpu) if cpu else None
per = "%.0f" % (rate / cpu) if rate and cpu else "-"
print("%-28s %s %s/s, server CPU %s s/s, %s %s per CPU-second, throttled in %s of periods, ok=%s" % (
    name, "%.0f" % rate if rate else "-", unit, "%.2f" % cpu if cpu else "-", per, unit, th, d.get("ok")))' \
        "$name" "$cpu" "$before" "$after" "$OUT/$name.json" || echo "$name: no figures (see $name.json)"; } |
        tee -a "$OUT/capped.txt" "$OUT/summary.txt"
}

# 3. Optional: CPU-capped runs: the server, not the bench, is the bottleneck.
[[ ${#CAPS[@]} == 0 ]] || : >"$OUT/capped.txt"
for pct in "${CAPS[@]}"; do
    cgroup_create "$pct" || exit 1
    echo "--- cap $pct%: cgroup $CG_DIR, quota $(cap_quota_us "$pct") us per $CAP_PERIOD_US us" | tee -a "$OUT/summary.txt" "$OUT/capped.txt"
    for scenario in echo fan1 fan100 fixed; do
        # A fresh server for each, moved with every thread into the group.
        start_server --shards 1
        cgroup_move "${SERVER_PIDS[-1]}" && cgroup_verify "${SERVER_PIDS[-1]}" || exit 1
        case $scenario in
            echo) capped_bench "cap$pct-echo-max" 100 echo --url "$URL/echo" -c 100 --size 64 ;;
            fan1) capped_bench "cap$pct-fanout-5000x1-max" 5001 fanout --url "$URL/ws" --subs 5000 \
                --channels 1 --publishers 1 --size 64 ;;
            fan100) capped_bench "cap$pct-fanout-1000x100-max" 1004 fanout --url "$URL/ws" --subs 1000 \
                --channels 100 --publishers 4 --size 64 ;;
            fixed) capped_bench "cap$pct-fanout-1000x100-50k" 1004 fanout --url "$URL/ws" --subs 1000 \
                --channels 100 --publishers 4 --size 64 --rate 5000 ;;
        esac
        stop_pid INT 15 "${SERVER_PIDS[@]}"
        SERVER_PIDS=()
    done
    cgroup_remove "$CG_DIR"
done

# 4. Optional: 105,000 connections to 6 SO_REUSEPORT servers from 6 bench processes.
if [[ $BIG == 1 ]]; then
    for _ in 1 2 3 4 5 6; do start_server --shards 1 --max-connections 19000; done
    before_rss=$(servers_rss_kib)
    before_slab=$(awk '/^Slab:/ {print $2}' /proc/meminfo)
    before_sock=$(awk '/^TCP:/ {print $NF}' /proc/net/sockstat)
    for i in 0 1 2 3 4 5; do
        timeout 300 "$BIN/corecast-bench" conns --url "$URL/ws" -n 17500 --hold 80 --cpus "$BENCH_CPU" \
            --source-ips "127.0.$((i + 1)).1-127.0.$((i + 1)).20" --label "big-$i" \
            --server-pid "${SERVER_PIDS[$i]}" >"$OUT/big-$i.txt" 2>&1 &
        BENCH_PIDS+=($!)
    done
    # Sample once every bench has finished its ramp: all 105,000 are open then.
    for _ in $(seq 120); do
        est=$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)
        [[ $est -ge 210000 ]] && break
        sleep 1
    done
    sleep 30
    after_rss=$(servers_rss_kib)
    {
        echo "--- big: 6 servers x --max-connections 19000, 6 benches x 17,500"
        echo "tcp sockets in use (both ends): $(awk '/^TCP:/ {print $3}' /proc/net/sockstat)"
        echo "sockstat mem pages: $before_sock -> $(awk '/^TCP:/ {print $NF}' /proc/net/sockstat)"
        echo "server RSS total KiB: $before_rss -> $after_rss"
        echo "kernel Slab KiB: $before_slab -> $(awk '/^Slab:/ {print $2}' /proc/meminfo)"
        for pid in "${SERVER_PIDS[@]}"; do
            echo "server $pid: established $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) fds, VmRSS $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") KiB"
        done
    } | tee -a "$OUT/summary.txt"
    for p in "${BENCH_PIDS[@]}"; do wait "$p" || true; done
    BENCH_PIDS=()
    for i in 0 1 2 3 4 5; do
        tail -n1 "$OUT/big-$i.txt" >"$OUT/big-$i.json"
        # awk, not grep: no match (a bench that crashed) must not end the script.
        awk -v tag="big-$i" '!/^\{/ && /opened|open at end|failures|close frames/ {print tag " " $0}' \
            "$OUT/big-$i.txt" | tee -a "$OUT/summary.txt"
    done
    cleanup
fi

echo "== results in $OUT"
echo "== summary (JSON lines)"
for f in "$OUT"/*.json; do
    python3 -c 'import json,sys
d=json.loads(open(sys.argv[1]).read())
lat=d.get("latency") or d.get("connect_latency") or {}
rate=d.get("round_trips_per_s") or d.get("delivered_per_s") or d.get("connect_rate_per_s") or 0
print("%-24s ok=%-5s rate=%10.0f/s p50=%9.1fus p99=%9.1fus p99.9=%9.1fus max=%9.1fus" % (d.get("label"), d.get("ok"), rate, lat.get("p50_us",0), lat.get("p99_us",0), lat.get("p99.9_us",0), lat.get("max_us",0)))' "$f" 2>/dev/null || echo "$f: no JSON"
done | tee -a "$OUT/summary.txt"
