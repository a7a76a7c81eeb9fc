#!/usr/bin/env bash
# compare.sh: corecast side by side with the reference peers (bench/peers/:
# python_websockets, socketify, node_ws), every server through the same
# corecast-bench scenarios, one server at a time, in the same placement,
# plus the raw floor (`corecast-bench baseline`) for CPU per delivery.
#
#   scripts/compare.sh [--quick] [--out DIR] [--only NAME[,NAME...]] [--report-only] [--two-hosts]
#
# Placement ("pinned"): the server on CPU 0 (corecast `--shards 1 --cpus 0`,
# every server also started under `taskset -c 0`), corecast-bench on CPU 1
# (`--cpus 1`, one thread); this script pins itself to CPU 1 too, so its
# sampling never runs on the server's core. One extra "unpinned" corecast
# (all shards, affinity 0-N, bench still on CPU 1) for the echo, fan-out
# max and fixed-load scenarios.
#
# Scenarios, each against a freshly started server, each bounded by `timeout`:
#   conns    10,000 idle /ws connections held 5 s: server RSS bytes/conn, connects/s
#   echo     100 connections x 64 B closed loop, 10 s: round trips/s, p50/p99/p99.9
#   fan1     fan-out max rate, 5,000 subs x 1 channel, 1 publisher, 10 s
#   fan100   fan-out max rate, 1,000 subs x 100 channels, 4 publishers, 10 s
#   cpu50k   fan-out fixed rate, 1,000 subs x 100 channels, 4 publishers,
#            5,000 publishes/s = 50,000 deliveries/s, 15 s: server CPU-seconds
#            per second from /proc/PID/stat utime+stime over the steady window
# and, with no server ("baseline" in --only): the floor, a raw sender thread
# on CPU 0 writing corecast's 64 B fan-out frame to 1,000 sockets read by the
# bench on CPU 1, one send() per delivery, at max rate (10 s) and at 50,000
# deliveries/s (15 s): its thread CPU per delivery against each server's.
# --quick: 2,000 connections held 2 s, 3 s runs (5 s for cpu50k). Full set
# takes ~6 min on the 2-core VM, --quick under 3 min.
#
# While each bench runs, the server's and the bench's utime+stime and the
# server's open fds are sampled every 0.25 s (NAME.samples); the steady
# window starts 1 s after the server holds every connection and ends 0.5 s
# before publishing stops. Results (default DIR: docs/compare): NAME.json
# (the bench's JSON line), NAME.samples, meta.txt, summary.txt, tables.md,
# results.json, chart.svg. The tables and a headline summary (machine,
# commands, chart, where a peer still wins) are also written between marker
# comments into docs/comparison.md and docs/benchmarks.md when DIR is
# docs/compare, else into copies of them in DIR, so a trial run never
# touches the committed docs. --report-only redoes only that analysis from
# the results already in DIR.
#
# --two-hosts (root): a model of a separate client machine. On loopback the
# sender's CPU also pays for the receiver's TCP processing, so every
# server's CPU per delivery includes the bench's kernel work. With this
# flag each server runs in a network namespace behind a veth pair
# (10.77.0.2; the bench stays in this namespace as 10.77.0.1), and RPS
# steers each side's receive processing to its own CPU (packets to the
# server on CPU 0, to the bench on CPU 1), as two hosts' NICs would. The
# floor is skipped (its sender lives in the bench process). Use with --out.
#
# The release build goes to, and runs from, $CARGO_TARGET_DIR when it is
# set (else target/).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/scripts/lib.sh"
QUICK=0 OUT="" ONLY="" REPORT_ONLY=0 TWO_HOSTS=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --out) OUT=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --report-only) REPORT_ONLY=1 ;;
        --two-hosts) TWO_HOSTS=1 ;;
        -h|--help) usage_from_header "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-$ROOT/docs/compare}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CARGO_TARGET_DIR=$(cargo_target_dir "$ROOT")
export CARGO_TARGET_DIR
BIN=$CARGO_TARGET_DIR/release
BENCH=$BIN/corecast-bench
PY=$ROOT/bench/peers/.venv/bin/python
BASE_PORT=${COMPARE_PORT:-18100}
NCPU=$(nproc)
SRV_CPU=0 BENCH_CPU=1
if [[ $NCPU -lt 2 ]]; then echo "compare.sh: needs 2 CPUs (server on 0, bench on 1)" >&2; exit 1; fi
ALL_CPUS=0-$((NCPU - 1))
# Keep this shell (sampler, curl, python) off the server's CPU.
taskset -pc "$BENCH_CPU" $$ >/dev/null

if [[ $QUICK == 1 ]]; then N=2000 HOLD=2 SECS=3 CPU_SECS=5; else N=10000 HOLD=5 SECS=10 CPU_SECS=15; fi
CPU_RATE=5000   # publishes/s over 1000 subs x 100 channels = 50,000 deliveries/s

# Where servers listen and how the bench reaches them.
HOST=127.0.0.1 NETNS=() SRC_IPS=(--source-ips 127.0.0.2-127.0.0.20)
NS=corecast-cmp VETH_CLIENT=cmp-client VETH_SERVER=cmp-server
if [[ $TWO_HOSTS == 1 ]]; then
    if [[ $(id -u) != 0 ]]; then echo "compare.sh: --two-hosts needs root (netns, veth, RPS)" >&2; exit 1; fi
    HOST=10.77.0.2 NETNS=(ip netns exec "$NS") SRC_IPS=()
fi
# Hex CPU mask of one CPU, for rps_cpus.
cpu_mask() { printf '%x' $((1 << $1)); }
two_hosts_down() {
    ip link del "$VETH_CLIENT" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
two_hosts_up() {
    two_hosts_down
    ip netns add "$NS" &&
        ip link add "$VETH_CLIENT" type veth peer name "$VETH_SERVER" &&
        ip link set "$VETH_SERVER" netns "$NS" &&
        ip addr add 10.77.0.1/24 dev "$VETH_CLIENT" &&
        ip link set "$VETH_CLIENT" up &&
        ip netns exec "$NS" ip addr add 10.77.0.2/24 dev "$VETH_SERVER" &&
        ip netns exec "$NS" ip link set "$VETH_SERVER" up &&
        ip netns exec "$NS" ip link set lo up &&
        cpu_mask "$BENCH_CPU" >"/sys/class/net/$VETH_CLIENT/queues/rx-0/rps_cpus" &&
        ip netns exec "$NS" sh -c "echo $(cpu_mask "$SRV_CPU") >/sys/class/net/$VETH_SERVER/queues/rx-0/rps_cpus"
}

# name | command (PORT is substituted) | placement
SERVERS=(
    "corecast|$BIN/corecast --port PORT --shards 1 --cpus $SRV_CPU --admin-addr none|pinned"
    "python_websockets|$PY $ROOT/bench/peers/python_websockets.py --port PORT --host $HOST|pinned"
    "socketify|$PY $ROOT/bench/peers/socketify_server.py --port PORT --host $HOST|pinned"
    "node_ws|node $ROOT/bench/peers/node_ws/server.js --port PORT --host $HOST|pinned"
    "corecast_unpinned|$BIN/corecast --port PORT --admin-addr none|unpinned"
)

TIMEOUT_PID="" SERVER_PID="" PORT=$BASE_PORT
# SIGINT drains the server; its `timeout` wrapper is stopped too, also when
# the server's pid was never found (it died or hung at startup).
stop_server() {
    stop_pid INT 10 "$SERVER_PID"
    stop_pid TERM 10 "$TIMEOUT_PID"
    SERVER_PID="" TIMEOUT_PID=""
}
BENCH_TPID=""
cleanup() {
    [[ -n $BENCH_TPID ]] && kill -TERM "$BENCH_TPID" 2>/dev/null
    stop_server
    [[ $TWO_HOSTS == 1 ]] && two_hosts_down
}
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&2; exit 130' INT TERM

# start_server NAME CMD PLACEMENT: fresh server on a fresh port, bounded by
# `timeout 300`, waits for GET /health; three tries.
start_server() {
    local _
    for _ in 1 2 3; do
        start_server_once "$@" && return 0
        sleep 1
    done
    return 1
}
start_server_once() {
    local name=$1 cmd=$2 placement=$3 cpus=$SRV_CPU
    [[ $placement == unpinned ]] && cpus=$ALL_CPUS
    next_port
    cmd=${cmd//PORT/$PORT}
    echo "server: ${NETNS[*]} taskset -c $cpus $cmd" >>"$OUT/server.log"
    # shellcheck disable=SC2086
    RUST_LOG=warn timeout -k 5 300 "${NETNS[@]}" taskset -c "$cpus" $cmd >>"$OUT/server.log" 2>&1 &
    TIMEOUT_PID=$!
    SERVER_PID=""
    for _ in $(seq 200); do
        [[ -z $SERVER_PID ]] && SERVER_PID=$(pgrep -P "$TIMEOUT_PID" | head -1)
        if ! kill -0 "$TIMEOUT_PID" 2>/dev/null; then
            echo "compare.sh: $name exited at startup (see $OUT/server.log)" >&2
            SERVER_PID="" TIMEOUT_PID=""; return 1
        fi
        if [[ -n $SERVER_PID ]] && curl -sf -m 1 "http://$HOST:$PORT/health" >/dev/null 2>&1; then
            echo "$name $SERVER_PID ${NETNS[*]} taskset -c $cpus $cmd" >>"$OUT/commands.txt"
            return 0
        fi
        sleep 0.1
    done
    echo "compare.sh: $name did not answer /health on $PORT" >&2
    stop_server; return 1
}

# The sampler below runs beside the bench for every run, so it must not
# fork: a fork+exec costs ~0.4 ms here, and the first version (cat, find,
# wc, date, sleep: ~6 per sample, 4 samples/s) stalled the bench's CPU often
# enough to put every server's fixed-rate p99 near 1.2 ms, when runs
# without it showed ~0.2 ms. Everything here is a bash builtin.
TICKS=""  # result of ticks()
ticks() { # utime+stime of PID in clock ticks into TICKS, or empty
    local s
    TICKS=""
    read -r s <"/proc/$1/stat" 2>/dev/null || return 0
    stat_ticks "$s"
}
NFDS=0  # result of count_fds()
count_fds() { # open descriptors of PID into NFDS
    local fds=()
    fds=("/proc/$1/fd/"*)
    NFDS=${#fds[@]}
    [[ -e ${fds[0]} ]] || NFDS=0
}

# bench NAME LIMIT EXPECTED_CONNS SECS SUBCOMMAND ARGS...: runs one bench
# against the running server, samples CPU, stores NAME.json/.samples.
bench() {
    local name=$1 limit=$2 expect=$3 secs=$4; shift 4
    local cmd=("$BENCH" "$@" --cpus "$BENCH_CPU" --label "$name")
    echo "--- $name: ${cmd[*]#$BIN/}" | tee -a "$OUT/summary.txt"
    echo "$name: ${cmd[*]#$ROOT/}" >>"$OUT/commands.txt"
    local bpid="" st bt base nap full=""
    count_fds "$SERVER_PID"
    base=$NFDS
    timeout -k 5 "$limit" "${cmd[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.err" &
    BENCH_TPID=$!
    # With no server (baseline), the bench measures its own threads' CPU.
    [[ -n $SERVER_PID ]] && {
        echo "# name=$name expect=$expect secs=$secs server_pid=$SERVER_PID clk_tck=$(getconf CLK_TCK) base_fds=$base"
        echo "# t server_ticks server_fds bench_ticks"
        # A pipe nobody writes to: `read -t` on it is a fork-free sleep.
        exec {nap}<> <(:)
        while kill -0 "$BENCH_TPID" 2>/dev/null; do
            [[ -z $bpid ]] && bpid=$(pgrep -P "$BENCH_TPID" | head -1)
            ticks "$SERVER_PID"; st=$TICKS
            # Globbing thousands of fds costs ms on the bench's CPU; once
            # the server holds them all (what the report needs), stop.
            if [[ -z $full ]]; then
                count_fds "$SERVER_PID"
                ((NFDS - base >= expect)) && full=1
            fi
            bt=""; [[ -n $bpid ]] && { ticks "$bpid"; bt=$TICKS; }
            echo "$EPOCHREALTIME ${st:-NA} $NFDS ${bt:-NA}"
            read -r -t 0.25 -u "$nap" _ || true
        done
        exec {nap}<&-
    } >"$OUT/$name.samples"
    local rc=0
    wait "$BENCH_TPID" || rc=$?
    BENCH_TPID=""
    grep -v '^{' "$OUT/$name.txt" | tee -a "$OUT/summary.txt" >/dev/null
    cat "$OUT/$name.err" >>"$OUT/summary.txt"
    if grep -q '^{' "$OUT/$name.txt"; then
        grep '^{' "$OUT/$name.txt" | tail -n1 >"$OUT/$name.json"
    else
        echo "{\"label\":\"$name\",\"ok\":false,\"missing\":true,\"exit\":$rc}" >"$OUT/$name.json"
    fi
    rm -f "$OUT/$name.txt" "$OUT/$name.err"
    echo "exit=$rc" | tee -a "$OUT/summary.txt"
    if [[ -n $SERVER_PID ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "!!! server died during $name" | tee -a "$OUT/summary.txt"
    fi
}

# ---- analysis: tables.md, results.json, chart.svg, doc sections (stdlib Python only) ----
# The Python below is a heredoc and so stays at column 0.
report() {
    # The docs in the repository are refreshed only from the default DIR; any
    # other DIR gets spliced copies, so trial runs leave the committed docs alone.
    local bench_md comparison_md
    if [[ $OUT == "$ROOT/docs/compare" ]]; then
        bench_md=$ROOT/docs/benchmarks.md comparison_md=$ROOT/docs/comparison.md
    else
        bench_md=$OUT/benchmarks.md comparison_md=$OUT/comparison.md
        cp "$ROOT/docs/benchmarks.md" "$bench_md"
        cp "$ROOT/docs/comparison.md" "$comparison_md"
    fi
    python3 - "$OUT" "$ROOT" "$bench_md" "$comparison_md" <<'PYEOF'
import json, os, re, sys
out, root, bench_md, comparison_md = sys.argv[1:5]
SERVERS = ["corecast", "python_websockets", "socketify", "node_ws", "corecast_unpinned"]
PEERS = ["python_websockets", "socketify", "node_ws"]
PINNED = ["corecast", "python_websockets", "socketify", "node_ws"]
SCENARIOS = ["conns", "echo", "fan1", "fan100", "cpu50k"]

def load(name):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None
    try:
        return json.loads(open(p).read())
    except Exception:
        return None

def samples(name):
    p = os.path.join(out, name + ".samples")
    if not os.path.exists(p):
        return None, []
    meta, rows = {}, []
    for line in open(p):
        if line.startswith("# name="):
            meta = dict(kv.split("=") for kv in line[2:].split())
        elif line.startswith("#") or not line.strip():
            continue
        else:
            t, st, fds, bt = line.split()
            rows.append((float(t), None if st == "NA" else int(st), int(fds),
                         None if bt == "NA" else int(bt)))
    return meta, rows

def cpu_window(name):
    """Server and bench CPU-seconds per second over the steady window."""
    meta, rows = samples(name)
    if not rows:
        return None
    hz = float(meta.get("clk_tck", 100))
    expect, secs = int(meta["expect"]), float(meta["secs"])
    base = int(meta.get("base_fds", rows[0][2]))
    ready = next((r[0] for r in rows if r[2] - base >= 0.98 * expect), None)
    if ready is None:  # fall back to: the first moment the fd count peaked
        top = max(r[2] for r in rows)
        ready = next(r[0] for r in rows if r[2] == top)
    lead, tail = (1.0, 0.5) if secs >= 8 else (0.5, 0.25)
    t0, t1 = ready + lead, ready + secs - tail
    win = [r for r in rows if t0 <= r[0] <= t1 and r[1] is not None]
    if len(win) < 2:
        return None
    a, b = win[0], win[-1]
    dt = b[0] - a[0]
    res = {"window_s": round(dt, 2), "server_cpu": (b[1] - a[1]) / hz / dt}
    if a[3] is not None and b[3] is not None:
        res["bench_cpu"] = (b[3] - a[3]) / hz / dt
    return res

R = {}
for s in SERVERS:
    for sc in SCENARIOS:
        d = load(f"{s}.{sc}")
        if d is None:
            continue
        d["_cpu"] = cpu_window(f"{s}.{sc}") if sc != "conns" else None
        R[(s, sc)] = d
FLOOR = {m: load(f"baseline.{m}") for m in ["max", "cpu50k"]}

def fmt(v, kind):
    if v is None:
        return "–"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "us":
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    if kind == "cpu":
        return f"{v:.2f}"
    return str(v)

def ratio(c, p, lower_better):
    if c is None or p is None or p == 0 or c == 0:
        return "–"
    r = c / p
    better = (r < 1) if lower_better else (r > 1)
    return f"{r:.2f}×" + (" ✓" if better else "")

def get(s, sc, path):
    d = R.get((s, sc))
    if d is None or d.get("missing"):
        return None
    for k in path:
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d

def lat(s, sc, p):
    return get(s, sc, ["latency", p])

def cpu(sc, k):
    return lambda s: (R.get((s, sc), {}).get("_cpu") or {}).get(k)

def us_per_delivery(s, sc):
    """Server CPU microseconds per delivery: CPU s/s over the steady window ÷ deliveries/s."""
    c, d = cpu(sc, "server_cpu")(s), get(s, sc, ["delivered_per_s"])
    return c * 1e6 / d if c and d else None

def floor_get(m, k):
    d = FLOOR.get(m)
    return None if d is None or d.get("missing") else d.get(k)

def status_of(d):
    if d is None:
        return "not run"
    if d.get("missing"):
        return f"no result (exit {d.get('exit')})"
    bits = []
    if not d.get("ok"):
        bits.append("FAILED")
    for k in ["lost", "duplicated", "out_of_order", "mismatched", "unfinished"]:
        if d.get(k):
            bits.append(f"{k} {d[k]:,}")
    for k in ["failures", "sender_failures"]:
        if d.get(k):
            bits.append(f"{k} " + ",".join(f"{a}:{b}" for a, b in d[k].items()))
    if d.get("close_codes"):
        bits.append("closes " + ",".join(f"{k}:{v}" for k, v in d["close_codes"].items()))
    if d.get("drained") is False:
        bits.append("not drained")
    return "; ".join(bits) or "ok"

def status(s, sc):
    return status_of(R.get((s, sc)))

lines = []
def table(title, sc, cols, servers, subjects=("corecast",)):
    """cols: (header, getter(s), kind, lower_better); ratio rows: each subject ÷ each other server."""
    lines.append(f"### {title}\n")
    hdr = ["server"] + [c[0] for c in cols] + ["check"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for s in servers:
        if (s, sc) not in R:
            continue
        row = [f"**{s}**" if s == "corecast" else s]
        row += [fmt(c[1](s), c[2]) for c in cols]
        row.append(status(s, sc))
        lines.append("| " + " | ".join(row) + " |")
    for subj in subjects:
        for p in [x for x in servers if x != subj and not (x in subjects and subjects.index(x) < subjects.index(subj))]:
            if (p, sc) not in R or (subj, sc) not in R:
                continue
            row = [f"{subj} ÷ {p}"]
            row += [ratio(c[1](subj), c[1](p), c[3]) if c[3] is not None else "" for c in cols]
            row.append("")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")

table("Idle connections", "conns", [
    ("opened", lambda s: get(s, "conns", ["opened"]), "int", None),
    ("server RSS B/conn", lambda s: get(s, "conns", ["server_rss_per_conn"]), "int", True),
    ("RSS after (MiB)", lambda s: (get(s, "conns", ["server_rss_after"]) or 0) / 2**20 or None, "cpu", True),
    ("connects/s", lambda s: get(s, "conns", ["connect_rate_per_s"]), "int", False),
    ("connect p50 µs", lambda s: get(s, "conns", ["connect_latency", "p50_us"]), "us", True),
    ("connect p99 µs", lambda s: get(s, "conns", ["connect_latency", "p99_us"]), "us", True),
], PINNED)

table("Echo, 100 connections × 64 B, closed loop", "echo", [
    ("round trips/s", lambda s: get(s, "echo", ["round_trips_per_s"]), "int", False),
    ("p50 µs", lambda s: lat(s, "echo", "p50_us"), "us", True),
    ("p99 µs", lambda s: lat(s, "echo", "p99_us"), "us", True),
    ("p99.9 µs", lambda s: lat(s, "echo", "p99.9_us"), "us", True),
    ("server CPU s/s", cpu("echo", "server_cpu"), "cpu", None),
    ("bench CPU s/s", cpu("echo", "bench_cpu"), "cpu", None),
], SERVERS)

for sc, title in [("fan1", "Fan-out, max rate, 5,000 subscribers × 1 channel, 1 publisher"),
                  ("fan100", "Fan-out, max rate, 1,000 subscribers × 100 channels, 4 publishers")]:
    table(title, sc, [
        ("delivered/s", (lambda sc: lambda s: get(s, sc, ["delivered_per_s"]))(sc), "int", False),
        ("published/s", (lambda sc: lambda s: get(s, sc, ["published_per_s"]))(sc), "int", False),
        ("p50 µs", (lambda sc: lambda s: lat(s, sc, "p50_us"))(sc), "us", True),
        ("p99 µs", (lambda sc: lambda s: lat(s, sc, "p99_us"))(sc), "us", True),
        ("lost/dup/reord", (lambda sc: lambda s: "/".join(str(get(s, sc, [k])) for k in ["lost", "duplicated", "out_of_order"]))(sc), "str", None),
        ("server CPU s/s", cpu(sc, "server_cpu"), "cpu", None),
        ("bench CPU s/s", cpu(sc, "bench_cpu"), "cpu", None),
    ], SERVERS)

table("Fixed load: 1,000 subscribers × 100 channels, 4 publishers, 5,000 publishes/s = 50,000 deliveries/s", "cpu50k", [
    ("delivered/s", lambda s: get(s, "cpu50k", ["delivered_per_s"]), "int", None),
    ("server CPU s/s", cpu("cpu50k", "server_cpu"), "cpu", True),
    ("server µs CPU per delivery", lambda s: us_per_delivery(s, "cpu50k"), "cpu", True),
    ("bench CPU s/s", cpu("cpu50k", "bench_cpu"), "cpu", None),
    ("p50 µs", lambda s: lat(s, "cpu50k", "p50_us"), "us", True),
    ("p99 µs", lambda s: lat(s, "cpu50k", "p99_us"), "us", True),
    ("p99.9 µs", lambda s: lat(s, "cpu50k", "p99.9_us"), "us", True),
], SERVERS, subjects=["corecast", "corecast_unpinned"])

# Issue #5's target for the fixed load: p99 with all shards at most half the best peer's.
best_peer = min(((lat(p, "cpu50k", "p99_us"), p) for p in PEERS if lat(p, "cpu50k", "p99_us")), default=(None, None))
unp_p99 = lat("corecast_unpinned", "cpu50k", "p99_us")
if unp_p99 and best_peer[0]:
    r = unp_p99 / best_peer[0]
    target = (f"fixed 50k/s, all shards: corecast_unpinned p99 {fmt(unp_p99, 'us')} µs vs best peer "
              f"({best_peer[1]}) {fmt(best_peer[0], 'us')} µs = {r:.2f}× (target ≤ 0.50×: "
              f"{'met' if r <= 0.5 else 'not met'})")
else:
    target = "fixed 50k/s, all shards: not measured in this run (needs corecast_unpinned and a peer)"
lines.append(f"**Target (issue #5):** {target}.\n")

# The floor: a raw send loop's CPU per delivery against every server's.
lines.append("### Floor: server CPU per delivery against a raw send loop\n")
lines.append("The floor is `corecast-bench baseline`: one thread on the server's CPU writes "
             "corecast's 64 B fan-out frame to 1,000 sockets round-robin, one nonblocking "
             "`send()` per delivery, no server logic; its thread CPU (getrusage) per delivery. "
             "Servers: process CPU (utime+stime over the steady window) ÷ deliveries, which "
             "also pays for reading the publishes (one per 10 deliveries). Max rate: the "
             "1,000 × 100 fan-out run; fixed: the 50,000 deliveries/s run.\n")
hdr = ["", "max rate: deliveries/s", "max rate: µs CPU/delivery", "÷ floor",
       "50k/s: deliveries/s", "50k/s: µs CPU/delivery", "÷ floor", "check"]
lines.append("| " + " | ".join(hdr) + " |")
lines.append("|" + "---|" * len(hdr))
fl_max, fl_50k = floor_get("max", "sender_us_per_delivery"), floor_get("cpu50k", "sender_us_per_delivery")
def fratio(v, f):
    return f"{v / f:.2f}×" if v and f else "–"
lines.append("| " + " | ".join([
    "floor (raw send loop)",
    fmt(floor_get("max", "deliveries_per_s"), "int"), fmt(fl_max, "cpu"), fratio(fl_max, fl_max),
    fmt(floor_get("cpu50k", "deliveries_per_s"), "int"), fmt(fl_50k, "cpu"), fratio(fl_50k, fl_50k),
    "; ".join(f"{m}: {status_of(FLOOR[m])}" for m in ["max", "cpu50k"])]) + " |")
for s in SERVERS:
    if (s, "fan100") not in R and (s, "cpu50k") not in R:
        continue
    um, u5 = us_per_delivery(s, "fan100"), us_per_delivery(s, "cpu50k")
    lines.append("| " + " | ".join([
        f"**{s}**" if s == "corecast" else s,
        fmt(get(s, "fan100", ["delivered_per_s"]), "int"), fmt(um, "cpu"), fratio(um, fl_max),
        fmt(get(s, "cpu50k", ["delivered_per_s"]), "int"), fmt(u5, "cpu"), fratio(u5, fl_50k),
        "; ".join(f"{sc}: {status(s, sc)}" for sc in ["fan100", "cpu50k"])]) + " |")
floor_notes = []
for m, title in [("max", "max rate"), ("cpu50k", "50k/s")]:
    d = FLOOR.get(m)
    if d and not d.get("missing"):
        rc = d.get("receiver_cpu_s_per_s")
        floor_notes.append(
            f"{title}: sender {d['sender_cpu_s_per_s']:.2f} CPU s/s "
            f"(user {d['sender_user_s']:.2f} s, sys {d['sender_sys_s']:.2f} s over {d['secs']:.1f} s), "
            f"{d['send_calls']:,} sends, {d['eagain']:,} EAGAIN, {d['partial']:,} partial, "
            f"receivers {'–' if rc is None else f'{rc:.2f}'} CPU s/s, {d['frame_bytes']} B frames")
if floor_notes:
    lines.append("\nFloor runs: " + "; ".join(floor_notes) + ".")
lines.append("")

tables = "\n".join(lines) + "\n"
open(os.path.join(out, "tables.md"), "w").write(tables)
print(tables)

# results.json: the headline numbers per server, and the floor
head = {}
for s in SERVERS:
    head[s] = {
        "idle_rss_bytes_per_conn": get(s, "conns", ["server_rss_per_conn"]),
        "connects_per_s": get(s, "conns", ["connect_rate_per_s"]),
        "echo_round_trips_per_s": get(s, "echo", ["round_trips_per_s"]),
        "echo_p99_us": lat(s, "echo", "p99_us"),
        "fan1_delivered_per_s": get(s, "fan1", ["delivered_per_s"]),
        "fan100_delivered_per_s": get(s, "fan100", ["delivered_per_s"]),
        "fan100_us_cpu_per_delivery": us_per_delivery(s, "fan100"),
        "cpu50k_server_cpu_s_per_s": cpu("cpu50k", "server_cpu")(s),
        "cpu50k_us_cpu_per_delivery": us_per_delivery(s, "cpu50k"),
        "cpu50k_p99_us": lat(s, "cpu50k", "p99_us"),
        "cpu_windows": {sc: R[(s, sc)]["_cpu"] for sc in SCENARIOS[1:] if (s, sc) in R},
    }
head["floor"] = {
    "max_deliveries_per_s": floor_get("max", "deliveries_per_s"),
    "max_us_cpu_per_delivery": fl_max,
    "cpu50k_deliveries_per_s": floor_get("cpu50k", "deliveries_per_s"),
    "cpu50k_us_cpu_per_delivery": fl_50k,
}
json.dump(head, open(os.path.join(out, "results.json"), "w"), indent=1)

# chart.svg: one panel per headline metric, one bar per server
panels = [
    ("Echo round trips/s (higher is better)", "echo_round_trips_per_s"),
    ("Fan-out 5000×1 deliveries/s (higher)", "fan1_delivered_per_s"),
    ("Fan-out 1000×100 deliveries/s (higher)", "fan100_delivered_per_s"),
    ("Idle RSS bytes/connection (lower)", "idle_rss_bytes_per_conn"),
    ("Server CPU s/s at 50k deliveries/s (lower)", "cpu50k_server_cpu_s_per_s"),
    ("µs CPU per delivery at 50k/s (lower; floor = raw send loop)", "cpu50k_us_cpu_per_delivery"),
]
colors = {"corecast": "#d1495b", "python_websockets": "#3b6ea5", "socketify": "#edae49",
          "node_ws": "#66a182", "corecast_unpinned": "#8d3b72", "floor": "#777777"}
W, PH, PW, LM = 900, 170, 560, 300
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{PH*len(panels)+40}" font-family="sans-serif" font-size="12">',
       f'<rect width="100%" height="100%" fill="white"/>',
       f'<text x="10" y="20" font-size="14" font-weight="bold">corecast vs peers, 1 server core (CPU 0) + 1 bench core (CPU 1), loopback</text>']
for i, (title, key) in enumerate(panels):
    y0 = 40 + i * PH
    vals = [(s, head[s][key]) for s in SERVERS if head[s][key] is not None]
    if key == "cpu50k_us_cpu_per_delivery" and fl_50k:
        vals.append(("floor", fl_50k))
    svg.append(f'<text x="10" y="{y0+14}" font-weight="bold">{title}</text>')
    if not vals:
        continue
    vmax = max(v for _, v in vals) or 1
    bh = min(22, (PH - 30) // max(1, len(vals)))
    for j, (s, v) in enumerate(vals):
        y = y0 + 22 + j * bh
        w = max(1, v / vmax * PW)
        txt = f"{v:,.2f}" if v < 10 else f"{v:,.0f}"
        svg.append(f'<text x="{LM-6}" y="{y+bh*0.7:.1f}" text-anchor="end">{s}</text>')
        svg.append(f'<rect x="{LM}" y="{y}" width="{w:.1f}" height="{bh-3}" fill="{colors[s]}"/>')
        svg.append(f'<text x="{LM+w+4:.1f}" y="{y+bh*0.7:.1f}">{txt}</text>')
svg.append("</svg>")
open(os.path.join(out, "chart.svg"), "w").write("\n".join(svg) + "\n")

# ---- doc sections between marker comments ----
def splice(path, begin, end, body):
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    i, j = text.find(begin), text.find(end)
    if 0 <= i < j:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    open(path, "w").write(text)

def meta():
    m = {}
    p = os.path.join(out, "meta.txt")
    for line in open(p) if os.path.exists(p) else []:
        k, _, v = line.partition(": ")
        m.setdefault(k.strip(), v.strip())
    return m

def commands():
    """Server and bench command lines of this run, generic (ports, pids, labels, paths dropped)."""
    p = os.path.join(out, "commands.txt")
    seen, servers, benches = set(), [], []
    for line in open(p) if os.path.exists(p) else []:
        line = line.strip().replace(root + "/", "")
        line = re.sub(r"(127\.0\.0\.1|10\.77\.0\.2):\d+", r"\1:P", line)
        line = re.sub(r"--port \d+", "--port P", line)
        line = re.sub(r"--server-pid \d+", "--server-pid PID", line)
        line = re.sub(r" --label \S+", "", line)
        m = re.match(r"^(\S+?)\.(\w+): (.*)$", line)
        if m:
            cmd = m.group(3)
            if m.group(1) in ("corecast", "baseline") and cmd not in seen:
                seen.add(cmd)
                benches.append(cmd)
            continue
        m = re.match(r"^(\S+) \d+ (.*)$", line)
        if m and m.group(2) not in seen:
            seen.add(m.group(2))
            servers.append(f"{m.group(2)}   # {m.group(1)}")
    return servers, benches

def headline():
    """One row per headline metric, every server side by side, ratio corecast ÷ peer."""
    rows = [
        ("echo round trips/s (100 × 64 B)", lambda s: get(s, "echo", ["round_trips_per_s"]), "int", False),
        ("echo p99 µs", lambda s: lat(s, "echo", "p99_us"), "us", True),
        ("fan-out 5,000 × 1, deliveries/s", lambda s: get(s, "fan1", ["delivered_per_s"]), "int", False),
        ("fan-out 1,000 × 100, deliveries/s", lambda s: get(s, "fan100", ["delivered_per_s"]), "int", False),
        ("fixed 50k deliveries/s: p99 µs", lambda s: lat(s, "cpu50k", "p99_us"), "us", True),
        ("fixed 50k deliveries/s: server µs CPU per delivery", lambda s: us_per_delivery(s, "cpu50k"), "cpu", True),
        ("idle memory per connection, B", lambda s: get(s, "conns", ["server_rss_per_conn"]), "int", True),
        ("connects/s", lambda s: get(s, "conns", ["connect_rate_per_s"]), "int", False),
    ]
    cols = ["corecast", "socketify", "node_ws", "python_websockets", "corecast_unpinned"]
    names = {"corecast_unpinned": "corecast, all shards"}
    t = ["| | " + " | ".join(names.get(c, c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
    wins = []
    for title, f, kind, lower in rows:
        c = f("corecast")
        cells = []
        for s in cols:
            v = f(s)
            cell = fmt(v, kind)
            if s in PEERS and v and c:
                cell += f" ({c / v:.2f}×)"
                if (v < c) if lower else (v > c):
                    cell = f"**{cell}**"
                    near = ", under 10% apart" if 0.9 <= c / v <= 1.1 else ""
                    wins.append(f"{title}: {s} {fmt(v, kind)} vs corecast {fmt(c, kind)} ({c / v:.2f}×{near})")
            cells.append(cell)
        t.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(t), wins

m = meta()
servers, benches = commands()
table_md, wins = headline()
rel = lambda p: os.path.relpath(p, os.path.dirname(os.path.abspath(bench_md)))
shown = lambda p: os.path.relpath(p, root) if os.path.abspath(p).startswith(root + "/") else p
quick = m.get("mode", "").startswith("quick")
sec = ["<!-- generated by scripts/compare.sh from its results; edits between the markers are overwritten -->",
       "## Side by side with other servers (scripts/compare.sh)", ""]
if quick:
    sec += ["**Quick run** (`--quick`: short runs, fewer connections): a smoke test, not a result.", ""]
sec += [
    f"Run {m.get('date', '?')}, git {m.get('git', '?')}; {m.get('cpu', '?')}, {m.get('memory', '?')}, "
    f"kernel {m.get('kernel', '?')}; {m.get('pinning', '?')}; mode {m.get('mode', '?')}; "
    f"{m.get('total', '?')} in all. Peers: {m.get('python', '?')}; node {m.get('node', '?')}.",
    "",
    f"Every server runs alone on CPU 0 and `corecast-bench` on CPU 1; \"corecast, all shards\" is "
    f"corecast with one shard per CPU, sharing CPU 1 with the bench. Ratios are corecast ÷ peer "
    f"(rates: higher is better for corecast; latency, memory, CPU: lower is). **Bold**: the peer is "
    f"ahead of corecast. Full tables, per-run checks and reading notes: "
    f"[comparison.md]({rel(comparison_md)}); raw results in `{shown(out)}/`.",
    "",
    f"![corecast vs peers]({rel(os.path.join(out, 'chart.svg'))})",
    "",
    table_md,
    "",
    f"**Target (issue #5):** {target}.",
    "",
]
if fl_max or fl_50k:
    um, u5 = us_per_delivery("corecast", "fan100"), us_per_delivery("corecast", "cpu50k")
    vs = (f"; corecast {fmt(um, 'cpu')} µs ({fratio(um, fl_max)} the floor) and "
          f"{fmt(u5, 'cpu')} µs ({fratio(u5, fl_50k)})" if um or u5 else "; corecast not run")
    sec += [f"**Floor** (a raw loop doing one `send()` per delivery, no server logic): "
            f"{fmt(fl_max, 'cpu')} µs CPU per delivery at max rate, {fmt(fl_50k, 'cpu')} µs at "
            f"50k/s{vs}.", ""]
ran_peers = any(p == s for p in PEERS for (s, _) in R) and any(s == "corecast" for (s, _) in R)
sec += ["**Where a peer still wins:** " + ("; ".join(wins) if wins else
        "nowhere in this run" if ran_peers else "not compared (corecast or every peer not run)") + ".", ""]
sec += ["Commands (each under `timeout`; P = a fresh port per run; the exact lines, with ports, "
        "pids and `--label`, are in `commands.txt`):", "", "```"]
sec += ["scripts/compare.sh" + (" --quick" if quick else "")] + servers + benches
sec += ["```", ""]
body = "\n".join(sec)
splice(bench_md, "<!-- compare:begin -->", "<!-- compare:end -->", body)
splice(comparison_md, "<!-- compare:tables:begin -->", "<!-- compare:tables:end -->",
       "<!-- generated by scripts/compare.sh from its results; edits between the markers are overwritten -->\n\n"
       + f"From the run of {m.get('date', '?')}, git {m.get('git', '?')[:7]}"
       + (" with code modified since that commit" if "modified" in m.get("git", "") else "")
       + f" ({m.get('mode', '?').split(' ')[0]}).\n\n"
       + tables)
print(f"wrote {bench_md} and {comparison_md} (sections between compare markers)")
PYEOF
    echo "== results in $OUT (tables.md, chart.svg, results.json, summary.txt); docs: $bench_md, $comparison_md"
}

if [[ $REPORT_ONLY == 1 ]]; then report; exit 0; fi

echo "== building release binaries"
(cd "$ROOT" && cargo build --release -q --workspace) || { echo "build failed" >&2; exit 1; }
[[ -x $PY ]] || { echo "compare.sh: no $PY; run scripts/peers-install.sh" >&2; exit 1; }
[[ -d $ROOT/bench/peers/node_ws/node_modules ]] || { echo "compare.sh: run scripts/peers-install.sh" >&2; exit 1; }

raise_sysctls "net.ipv4.ip_local_port_range=1024 65535" net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535 net.core.netdev_max_backlog=16384 fs.file-max=4194304

rm -f "$OUT"/*.json "$OUT"/*.samples "$OUT/server.log" "$OUT/commands.txt"
{
    meta_lines "$ROOT" "$NCPU"
    echo "loadavg before: $(cat /proc/loadavg)"
    echo "mode: $([[ $QUICK == 1 ]] && echo quick || echo full) (conns $N hold ${HOLD}s, runs ${SECS}s, cpu run ${CPU_SECS}s at $CPU_RATE pub/s)"
    echo "pinning: server CPU $SRV_CPU (unpinned corecast: $ALL_CPUS), bench CPU $BENCH_CPU"
    echo "python: $($PY --version 2>&1); websockets $($PY -c 'import websockets;print(websockets.__version__)' 2>/dev/null); uvloop $($PY -c 'import uvloop;print(uvloop.__version__)' 2>/dev/null); socketify $($PY -m pip show socketify 2>/dev/null | sed -n 's/^Version: //p')"
    echo "node: $(node --version); ws $(node -p "require('$ROOT/bench/peers/node_ws/node_modules/ws/package.json').version" 2>/dev/null)"
} | tee "$OUT/meta.txt"
cp "$OUT/meta.txt" "$OUT/summary.txt"

T0=$(date +%s)
if [[ $TWO_HOSTS == 1 ]]; then
    two_hosts_up || { echo "compare.sh: cannot set up the two-host model (netns $NS)" >&2; exit 1; }
    echo "two hosts model: servers in netns $NS at $HOST behind veth, bench at 10.77.0.1; RPS: to server on CPU $SRV_CPU, to bench on CPU $BENCH_CPU" | tee -a "$OUT/meta.txt" "$OUT/summary.txt"
fi
if want baseline && [[ $TWO_HOSTS == 0 ]]; then
    echo "=== baseline (no server: raw sender on CPU $SRV_CPU, receivers on CPU $BENCH_CPU)" | tee -a "$OUT/summary.txt"
    bench baseline.max $((SECS + 60)) 1000 "$SECS" baseline --sender-cpu "$SRV_CPU" \
        --subs 1000 --size 64 --secs "$SECS"
    bench baseline.cpu50k $((CPU_SECS + 60)) 1000 "$CPU_SECS" baseline --sender-cpu "$SRV_CPU" \
        --subs 1000 --size 64 --secs "$CPU_SECS" --rate $((CPU_RATE * 10))
    echo "=== baseline done at +$(( $(date +%s) - T0 )) s"
fi
for entry in "${SERVERS[@]}"; do
    IFS='|' read -r sname scmd splace <<<"$entry"
    want "$sname" || continue
    echo "=== $sname ($splace)" | tee -a "$OUT/summary.txt"
    if [[ $splace == pinned ]] && start_server "$sname" "$scmd" "$splace"; then
        bench "$sname.conns" $((HOLD + 90)) "$N" "$HOLD" conns --url "ws://$HOST:$PORT/ws" -n "$N" \
            --hold "$HOLD" "${SRC_IPS[@]}" --server-pid "$SERVER_PID"
        stop_server
    fi
    if start_server "$sname" "$scmd" "$splace"; then
        bench "$sname.echo" $((SECS + 60)) 100 "$SECS" echo --url "ws://$HOST:$PORT/echo" -c 100 --size 64 --secs "$SECS"
        stop_server
    fi
    if start_server "$sname" "$scmd" "$splace"; then
        bench "$sname.fan1" $((SECS + 90)) 5001 "$SECS" fanout --url "ws://$HOST:$PORT/ws" \
            --subs 5000 --channels 1 --publishers 1 --size 64 --secs "$SECS"
        stop_server
    fi
    if start_server "$sname" "$scmd" "$splace"; then
        bench "$sname.fan100" $((SECS + 90)) 1004 "$SECS" fanout --url "ws://$HOST:$PORT/ws" \
            --subs 1000 --channels 100 --publishers 4 --size 64 --secs "$SECS"
        stop_server
    fi
    if start_server "$sname" "$scmd" "$splace"; then
        bench "$sname.cpu50k" $((CPU_SECS + 90)) 1004 "$CPU_SECS" fanout --url "ws://$HOST:$PORT/ws" \
            --subs 1000 --channels 100 --publishers 4 --size 64 --secs "$CPU_SECS" --rate "$CPU_RATE"
        stop_server
    fi
    echo "=== $sname done at +$(( $(date +%s) - T0 )) s"
done
echo "loadavg after: $(cat /proc/loadavg)" >>"$OUT/meta.txt"
echo "total: $(( $(date +%s) - T0 )) s" >>"$OUT/meta.txt"

report
