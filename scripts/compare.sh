#!/usr/bin/env bash
# compare.sh: corecast side by side with the reference peers (bench/peers/:
# python_websockets, socketify, node_ws), every server through the same
# corecast-bench scenarios, one server at a time, in the same placement,
# plus the raw floor (`corecast-bench baseline`) for CPU per delivery.
#
#   scripts/compare.sh [--quick] [--out DIR] [--only NAME[,NAME...]] [--report-only] [--two-hosts]
#                      [--cap PCT[,PCT...]]... [--cap-only] [--compressed] [--compressed-only]
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
# --cap PCT (root; may be repeated, or a list: --cap 25 --cap 40, --cap
# 25,40): after the runs above, one more pass per cap in which every pinned
# server (corecast --shards 1 and the three peers; not corecast_unpinned)
# runs on CPU 0 inside a cgroup whose CPU quota is PCT% of one CPU, so the
# server and not the bench is the bottleneck, through echo, fan1, fan100 and
# cpu50k. cgroup v1 (cpu.cfs_period_us 100000, cpu.cfs_quota_us PCT*1000 in
# a child of /sys/fs/cgroup/cpu) where the machine has it, else v2
# (cpu.max); which one is printed in meta.txt and capped.md. The server's
# pid and every thread (/proc/PID/task/*) are moved in once it has started
# and checked once it answers /health; threads made later inherit the
# group. The groups are removed on exit. Results: NAME.capPCT.SCENARIO.json
# and .samples (the group's cpu.stat before and after in its header), and
# capped.md: deliveries (round trips for echo) per second and per
# CPU-second of the server (utime+stime over the steady window), side by
# side, with corecast ÷ peer ratios and the share of CFS periods in which
# the group was throttled. --cap-only skips the uncapped runs, the floor
# and their report (the committed tables are then left alone).
#
# --compressed: after the runs above, a compressed fan-out pass with 1 KiB
# JSON text payloads (`fanout --compression --text-data --size 1024`, every
# subscriber negotiating permessage-deflate): zfan1 (5,000 subscribers x 1
# channel, 1 publisher) and zfan100 (1,000 x 100, 4 publishers), max rate,
# against corecast `--compression on` (pinned, one shard) and socketify with
# uWS's shared compressor (`--compression shared`: one deflate stream per
# loop, each publish compressed once). Both compress once per publish and
# share the frame, so this compares the rest of the fan-out path with
# compression on. `--only` picks among corecast and socketify here too.
# Results: NAME.compressed.zfan1/zfan100 .json and .samples, and
# compressed.md and compressed.json (deliveries/s, latency, server CPU s/s
# and µs per delivery, corecast ÷ socketify). --compressed-only runs only
# this pass (the committed tables are left alone; give --out DIR).
#
# The release build goes to, and runs from, $CARGO_TARGET_DIR when it is
# set (else target/).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/scripts/lib.sh"
QUICK=0 OUT="" ONLY="" REPORT_ONLY=0 TWO_HOSTS=0 CAP_ONLY=0 COMPRESSED=0 COMPRESSED_ONLY=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --out) OUT=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --report-only) REPORT_ONLY=1 ;;
        --two-hosts) TWO_HOSTS=1 ;;
        --cap) add_caps "${2-}" || exit 2; shift ;;
        --cap-only) CAP_ONLY=1 ;;
        --compressed) COMPRESSED=1 ;;
        --compressed-only) COMPRESSED=1 COMPRESSED_ONLY=1 ;;
        -h|--help) usage_from_header "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $CAP_ONLY == 1 && ${#CAPS[@]} == 0 && $REPORT_ONLY == 0 ]]; then echo "compare.sh: --cap-only needs --cap PCT" >&2; exit 2; fi
# A capped-only run rewrites meta.txt and summary.txt, which the committed
# uncapped tables are generated from.
if [[ $CAP_ONLY == 1 && $REPORT_ONLY == 0 && ( -z $OUT || $OUT -ef $ROOT/docs/compare ) ]]; then
    echo "compare.sh: --cap-only would overwrite docs/compare's meta.txt; give --out DIR" >&2
    exit 2
fi
if [[ $COMPRESSED_ONLY == 1 && $REPORT_ONLY == 0 && ( -z $OUT || $OUT -ef $ROOT/docs/compare ) ]]; then
    echo "compare.sh: --compressed-only would overwrite docs/compare's meta.txt; give --out DIR" >&2
    exit 2
fi
if [[ ${#CAPS[@]} -gt 0 && $REPORT_ONLY == 0 ]]; then cap_preflight || exit 1; fi
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
# The --compressed pass: each server with its compression on.
ZSERVERS=(
    "corecast|$BIN/corecast --port PORT --shards 1 --cpus $SRV_CPU --admin-addr none --compression on|pinned"
    "socketify|$PY $ROOT/bench/peers/socketify_server.py --port PORT --host $HOST --compression shared|pinned"
)

TIMEOUT_PID="" SERVER_PID="" PORT=$BASE_PORT
# The cgroup the servers started now go into (a capped pass), else empty.
CAP_CG=""
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
    cgroup_remove_all
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
    local moved=""
    for _ in $(seq 200); do
        [[ -z $SERVER_PID ]] && SERVER_PID=$(pgrep -P "$TIMEOUT_PID" | head -1)
        # Capped: into the group as soon as the pid is known, before any load.
        if [[ -n $CAP_CG && -n $SERVER_PID && -z $moved ]]; then
            cgroup_move "$SERVER_PID" "$CAP_CG" || { stop_server; return 1; }
            moved=1
        fi
        if ! kill -0 "$TIMEOUT_PID" 2>/dev/null; then
            echo "compare.sh: $name exited at startup (see $OUT/server.log)" >&2
            SERVER_PID="" TIMEOUT_PID=""; return 1
        fi
        if [[ -n $SERVER_PID ]] && curl -sf -m 1 "http://$HOST:$PORT/health" >/dev/null 2>&1; then
            # Threads started before the move went with it (cgroup_move);
            # check that none was missed.
            if [[ -n $CAP_CG ]] && ! cgroup_verify "$SERVER_PID" "$CAP_CG"; then
                stop_server; return 1
            fi
            echo "$name $SERVER_PID ${NETNS[*]} taskset -c $cpus $cmd${CAP_CG:+ (in cgroup $CAP_CG)}" >>"$OUT/commands.txt"
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
        [[ -n $CAP_CG ]] && echo "# cgroup_before $(cgroup_stat "$CAP_CG")"
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
        [[ -n $CAP_CG ]] && echo "# cgroup_after $(cgroup_stat "$CAP_CG")"
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

# ---- capped passes: capped.md and capped.json (stdlib Python only) ----
# Deliveries (echo: round trips) per second and per CPU-second of the
# server, for every cap and pinned server, with corecast ÷ peer ratios.
cap_report() {
    python3 - "$OUT" "$ROOT/scripts" <<'PYEOF'
import json, os, re, sys
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import compare_samples
SERVERS = ["corecast", "python_websockets", "socketify", "node_ws"]
PEERS = SERVERS[1:]
SCENARIOS = [
    ("echo", "Echo, 100 connections × 64 B, closed loop: round trips", "round_trips_per_s"),
    ("fan1", "Fan-out, max rate, 5,000 subscribers × 1 channel, 1 publisher: deliveries", "delivered_per_s"),
    ("fan100", "Fan-out, max rate, 1,000 subscribers × 100 channels, 4 publishers: deliveries", "delivered_per_s"),
    ("cpu50k", "Fixed load, 1,000 × 100 at 5,000 publishes/s = 50,000 deliveries/s: deliveries", "delivered_per_s"),
]
names = os.listdir(out)
caps = sorted({int(m.group(1)) for f in names for m in [re.match(r"^\w+\.cap(\d+)\.\w+\.json$", f)] if m})

def load(name):
    try:
        return json.loads(open(os.path.join(out, name + ".json")).read())
    except Exception:
        return None

def samples(name):
    return compare_samples.samples(out, name)

def cpu_window(name):
    return compare_samples.cpu_window(out, name)

def throttled(name):
    """Share of the group's CFS periods that were throttled, over the whole bench run."""
    _, _, cg = samples(name)
    a, b = cg.get("cgroup_before", {}), cg.get("cgroup_after", {})
    try:
        periods = b["nr_periods"] - a["nr_periods"]
        return (b["nr_throttled"] - a["nr_throttled"]) / periods if periods > 0 else None
    except KeyError:
        return None

def status(d):
    if d is None:
        return "not run"
    if d.get("missing"):
        return f"no result (exit {d.get('exit')})"
    bits = [] if d.get("ok") else ["FAILED"]
    for k in ["lost", "duplicated", "out_of_order", "mismatched", "unfinished"]:
        if d.get(k):
            bits.append(f"{k} {d[k]:,}")
    for k in ["failures", "sender_failures"]:
        if d.get(k):
            bits.append(f"{k} " + ",".join(f"{a}:{b}" for a, b in d[k].items()))
    if d.get("close_codes"):
        bits.append("closes " + ",".join(f"{k}:{v}" for k, v in d["close_codes"].items()))
    return "; ".join(bits) or "ok"

R = {}
for s in SERVERS:
    for sc, _, key in SCENARIOS:
        for c in caps:
            name = f"{s}.cap{c}.{sc}"
            d = load(name)
            if d is None:
                continue
            rate = None if d.get("missing") else d.get(key)
            cpu, bench_cpu = cpu_window(name)
            R[(s, sc, c)] = {"rate": rate, "server_cpu": cpu, "bench_cpu": bench_cpu,
                             "per_cpu_s": rate / cpu if rate and cpu else None,
                             "throttled": throttled(name), "check": status(d)}

def n(v):
    return "–" if v is None else f"{v:,.0f}"

def ratio(c, p):
    if not c or not p:
        return "–"
    return f"{c / p:.2f}×" + (" ✓" if c > p else "")

meta = {}
p = os.path.join(out, "meta.txt")
for line in open(p) if os.path.exists(p) else []:
    k, _, v = line.partition(": ")
    meta.setdefault(k.strip(), v.strip())
lines = [f"From the run of {meta.get('date', '?')}, git {meta.get('git', '?')}; "
         f"{meta.get('cgroup', '?')}; caps {', '.join(f'{c}%' for c in caps)} of one CPU; "
         f"{meta.get('pinning', '?')}; mode {meta.get('mode', '?')}; "
         f"loadavg before {meta.get('loadavg before', '?')}, after {meta.get('loadavg after', '?')}.", "",
         "Per CPU-second: the bench's rate ÷ the server's CPU-seconds per second (utime+stime from "
         "/proc/PID/stat over the steady window); bench CPU s/s over the same window (1.00: the bench's "
         "core is saturated). Throttled: share of the cgroup's CFS periods in which it ran out of quota, "
         "over the whole bench run (ramp included). Ratios are corecast ÷ peer; ✓ where corecast is "
         "ahead.", ""]
for sc, title, _ in SCENARIOS:
    if not any((s, sc, c) in R for s in SERVERS for c in caps):
        continue
    lines.append(f"### {title}\n")
    hdr = ["server"]
    for c in caps:
        hdr += [f"{c}%: /s", f"{c}%: per CPU-s", f"{c}%: server CPU s/s", f"{c}%: throttled",
                f"{c}%: bench CPU s/s"]
    hdr.append("check")
    lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for s in SERVERS:
        if not any((s, sc, c) in R for c in caps):
            continue
        row, checks = [f"**{s}**" if s == "corecast" else s], []
        for c in caps:
            r = R.get((s, sc, c), {})
            cpu, th, bc = r.get("server_cpu"), r.get("throttled"), r.get("bench_cpu")
            row += [n(r.get("rate")), n(r.get("per_cpu_s")), "–" if cpu is None else f"{cpu:.2f}",
                    "–" if th is None else f"{th:.0%}", "–" if bc is None else f"{bc:.2f}"]
            checks.append(f"{c}%: {r.get('check', 'not run')}")
        lines.append("| " + " | ".join(row + ["; ".join(checks)]) + " |")
    for peer in PEERS:
        if not any((peer, sc, c) in R and ("corecast", sc, c) in R for c in caps):
            continue
        row = [f"corecast ÷ {peer}"]
        for c in caps:
            a, b = R.get(("corecast", sc, c), {}), R.get((peer, sc, c), {})
            row += [ratio(a.get("rate"), b.get("rate")), ratio(a.get("per_cpu_s"), b.get("per_cpu_s")), "", "", ""]
        lines.append("| " + " | ".join(row + [""]) + " |")
    lines.append("")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "capped.md"), "w").write(text)
json.dump({f"{s}.cap{c}.{sc}": v for (s, sc, c), v in R.items()},
          open(os.path.join(out, "capped.json"), "w"), indent=1)
print(text)
PYEOF
    echo "== capped results in $OUT/capped.md and capped.json"
}

compressed_report() {
    python3 - "$OUT" "$ROOT/scripts" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import compare_samples
SERVERS = ["corecast", "socketify"]
SCENARIOS = [("zfan1", "Compressed fan-out, max rate, 5,000 subscribers × 1 channel, 1 publisher, 1 KiB JSON text"),
             ("zfan100", "Compressed fan-out, max rate, 1,000 subscribers × 100 channels, 4 publishers, 1 KiB JSON text")]

def load(name):
    try:
        return json.loads(open(os.path.join(out, name + ".json")).read())
    except Exception:
        return None

def cpu_window(name):
    return compare_samples.cpu_window(out, name)

def check(d):
    if d is None:
        return "not run"
    if d.get("missing"):
        return f"no result (exit {d.get('exit')})"
    bits = [] if d.get("ok") else ["FAILED"]
    for k in ["lost", "duplicated", "out_of_order"]:
        if d.get(k):
            bits.append(f"{k} {d[k]:,}")
    if d.get("failures"):
        bits.append("failures " + ",".join(f"{a}:{b}" for a, b in d["failures"].items()))
    if d.get("close_codes"):
        bits.append("closes " + ",".join(f"{k}:{v}" for k, v in d["close_codes"].items()))
    return "; ".join(bits) or "ok"

def num(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"

meta = {}
p = os.path.join(out, "meta.txt")
for line in open(p) if os.path.exists(p) else []:
    k, _, v = line.partition(": ")
    meta.setdefault(k.strip(), v.strip())
lines = [f"From the run of {meta.get('date', '?')}, git {meta.get('git', '?')}; {meta.get('pinning', '?')}; "
         f"mode {meta.get('mode', '?')}. corecast `--compression on`, socketify with uWS's shared "
         "compressor; every subscriber negotiated permessage-deflate. µs CPU per delivery: the "
         "server's utime+stime over the steady window ÷ deliveries. Ratio: corecast ÷ socketify "
         "(✓ where corecast is ahead).", ""]
results = {}
for sc, title in SCENARIOS:
    rows = {}
    for s in SERVERS:
        d = load(f"{s}.compressed.{sc}")
        if d is None:
            continue
        cpu, bench = cpu_window(f"{s}.compressed.{sc}")
        ok = not d.get("missing")
        rate = d.get("delivered_per_s") if ok else None
        lat = d.get("latency", {}) if ok else {}
        rows[s] = {"delivered_per_s": rate, "published_per_s": d.get("published_per_s") if ok else None,
                   "p50_us": lat.get("p50_us"), "p99_us": lat.get("p99_us"), "server_cpu": cpu,
                   "bench_cpu": bench, "us_per_delivery": cpu * 1e6 / rate if cpu and rate else None,
                   "check": check(d)}
    if not rows:
        continue
    results[sc] = rows
    lines += [f"### {title}\n", "| server | delivered/s | published/s | p50 µs | p99 µs | server CPU s/s | "
              "µs CPU per delivery | bench CPU s/s | check |", "|---|---|---|---|---|---|---|---|---|"]
    for s, r in rows.items():
        lines.append(f"| {'**corecast**' if s == 'corecast' else s} | {num(r['delivered_per_s'])} | "
                     f"{num(r['published_per_s'])} | {num(r['p50_us'])} | {num(r['p99_us'])} | "
                     f"{num(r['server_cpu'], 2)} | {num(r['us_per_delivery'], 2)} | {num(r['bench_cpu'], 2)} | {r['check']} |")
    c, o = rows.get("corecast"), rows.get("socketify")
    if c and o:
        def ratio(k, lower):
            a, b = c[k], o[k]
            if not a or not b:
                return "–"
            return f"{a / b:.2f}×" + (" ✓" if (a < b if lower else a > b) else "")
        lines.append(f"| corecast ÷ socketify | {ratio('delivered_per_s', False)} | {ratio('published_per_s', False)} | "
                     f"{ratio('p50_us', True)} | {ratio('p99_us', True)} | | {ratio('us_per_delivery', True)} | | |")
    lines.append("")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "compressed.md"), "w").write(text)
json.dump(results, open(os.path.join(out, "compressed.json"), "w"), indent=1)
print(text)
PYEOF
    echo "== compressed results in $OUT/compressed.md and compressed.json"
}

if [[ $REPORT_ONLY == 1 ]]; then
    # Uncapped results are reported when there are any, capped and
    # compressed ones likewise.
    [[ $CAP_ONLY == 1 || $COMPRESSED_ONLY == 1 ]] || report
    if compgen -G "$OUT/*.cap*.json" >/dev/null; then cap_report; fi
    if compgen -G "$OUT/*.compressed.*.json" >/dev/null; then compressed_report; fi
    exit 0
fi

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
    echo "mode: $([[ $QUICK == 1 ]] && echo quick || echo full) (conns $N hold ${HOLD}s, runs ${SECS}s, cpu run ${CPU_SECS}s at $CPU_RATE pub/s)$([[ $COMPRESSED_ONLY == 1 ]] && echo ", compressed pass only")"
    echo "pinning: server CPU $SRV_CPU (unpinned corecast: $ALL_CPUS), bench CPU $BENCH_CPU"
    echo "python: $($PY --version 2>&1); websockets $($PY -c 'import websockets;print(websockets.__version__)' 2>/dev/null); uvloop $($PY -c 'import uvloop;print(uvloop.__version__)' 2>/dev/null); socketify $($PY -m pip show socketify 2>/dev/null | sed -n 's/^Version: //p')"
    echo "node: $(node --version); ws $(node -p "require('$ROOT/bench/peers/node_ws/node_modules/ws/package.json').version" 2>/dev/null)"
    if [[ ${#CAPS[@]} -gt 0 ]]; then
        echo "caps: ${CAPS[*]} (% of one CPU)$([[ $CAP_ONLY == 1 ]] && echo ", capped runs only")"
        echo "cgroup: $(cgroup_describe)"
    fi
} | tee "$OUT/meta.txt"
cp "$OUT/meta.txt" "$OUT/summary.txt"

T0=$(date +%s)
if [[ $TWO_HOSTS == 1 ]]; then
    two_hosts_up || { echo "compare.sh: cannot set up the two-host model (netns $NS)" >&2; exit 1; }
    echo "two hosts model: servers in netns $NS at $HOST behind veth, bench at 10.77.0.1; RPS: to server on CPU $SRV_CPU, to bench on CPU $BENCH_CPU" | tee -a "$OUT/meta.txt" "$OUT/summary.txt"
fi
if want baseline && [[ $TWO_HOSTS == 0 && $CAP_ONLY == 0 && $COMPRESSED_ONLY == 0 ]]; then
    echo "=== baseline (no server: raw sender on CPU $SRV_CPU, receivers on CPU $BENCH_CPU)" | tee -a "$OUT/summary.txt"
    bench baseline.max $((SECS + 60)) 1000 "$SECS" baseline --sender-cpu "$SRV_CPU" \
        --subs 1000 --size 64 --secs "$SECS"
    bench baseline.cpu50k $((CPU_SECS + 60)) 1000 "$CPU_SECS" baseline --sender-cpu "$SRV_CPU" \
        --subs 1000 --size 64 --secs "$CPU_SECS" --rate $((CPU_RATE * 10))
    echo "=== baseline done at +$(( $(date +%s) - T0 )) s"
fi
# scenarios TAG NAME CMD PLACEMENT: echo, fan1, fan100 and cpu50k against
# fresh servers; results are TAG.SCENARIO (TAG: the server's name, plus
# .capPCT in a capped pass).
scenarios() {
    local tag=$1; shift
    if start_server "$@"; then
        bench "$tag.echo" $((SECS + 60)) 100 "$SECS" echo --url "ws://$HOST:$PORT/echo" -c 100 --size 64 --secs "$SECS"
        stop_server
    fi
    if start_server "$@"; then
        bench "$tag.fan1" $((SECS + 90)) 5001 "$SECS" fanout --url "ws://$HOST:$PORT/ws" \
            --subs 5000 --channels 1 --publishers 1 --size 64 --secs "$SECS"
        stop_server
    fi
    if start_server "$@"; then
        bench "$tag.fan100" $((SECS + 90)) 1004 "$SECS" fanout --url "ws://$HOST:$PORT/ws" \
            --subs 1000 --channels 100 --publishers 4 --size 64 --secs "$SECS"
        stop_server
    fi
    if start_server "$@"; then
        bench "$tag.cpu50k" $((CPU_SECS + 90)) 1004 "$CPU_SECS" fanout --url "ws://$HOST:$PORT/ws" \
            --subs 1000 --channels 100 --publishers 4 --size 64 --secs "$CPU_SECS" --rate "$CPU_RATE"
        stop_server
    fi
}

for entry in "${SERVERS[@]}"; do
    [[ $CAP_ONLY == 1 || $COMPRESSED_ONLY == 1 ]] && break
    IFS='|' read -r sname scmd splace <<<"$entry"
    want "$sname" || continue
    echo "=== $sname ($splace)" | tee -a "$OUT/summary.txt"
    if [[ $splace == pinned ]] && start_server "$sname" "$scmd" "$splace"; then
        bench "$sname.conns" $((HOLD + 90)) "$N" "$HOLD" conns --url "ws://$HOST:$PORT/ws" -n "$N" \
            --hold "$HOLD" "${SRC_IPS[@]}" --server-pid "$SERVER_PID"
        stop_server
    fi
    scenarios "$sname" "$sname" "$scmd" "$splace"
    echo "=== $sname done at +$(( $(date +%s) - T0 )) s"
done
# Capped passes: pinned servers only, each inside the cap's cgroup.
if [[ $COMPRESSED == 1 ]]; then
    for entry in "${ZSERVERS[@]}"; do
        IFS='|' read -r sname scmd splace <<<"$entry"
        want "$sname" || continue
        echo "=== $sname (pinned, compressed)" | tee -a "$OUT/summary.txt"
        for sc in "zfan1 5000 1 1" "zfan100 1000 100 4"; do
            read -r zname subs chans pubs <<<"$sc"
            if start_server "$sname" "$scmd" "$splace"; then
                bench "$sname.compressed.$zname" $((SECS + 90)) $((subs + pubs)) "$SECS" fanout \
                    --url "ws://$HOST:$PORT/ws" --subs "$subs" --channels "$chans" --publishers "$pubs" \
                    --size 1024 --text-data --compression --secs "$SECS"
                stop_server
            fi
        done
        echo "=== $sname compressed done at +$(( $(date +%s) - T0 )) s"
    done
fi
for pct in "${CAPS[@]}"; do
    cgroup_create "$pct" || exit 1
    CAP_CG=$CG_DIR
    echo "=== cap $pct%: cgroup $CAP_CG, quota $(cap_quota_us "$pct") us per $CAP_PERIOD_US us" | tee -a "$OUT/summary.txt"
    for entry in "${SERVERS[@]}"; do
        IFS='|' read -r sname scmd splace <<<"$entry"
        if [[ $splace != pinned ]] || ! want "$sname"; then continue; fi
        echo "=== $sname (pinned, capped at $pct%)" | tee -a "$OUT/summary.txt"
        scenarios "$sname.cap$pct" "$sname" "$scmd" "$splace"
        echo "=== $sname capped at $pct% done at +$(( $(date +%s) - T0 )) s"
    done
    CAP_CG=""
    cgroup_remove "$CG_DIR"
done
echo "loadavg after: $(cat /proc/loadavg)" >>"$OUT/meta.txt"
echo "total: $(( $(date +%s) - T0 )) s" >>"$OUT/meta.txt"

[[ $CAP_ONLY == 1 || $COMPRESSED_ONLY == 1 ]] || report
[[ ${#CAPS[@]} == 0 ]] || cap_report
[[ $COMPRESSED == 0 ]] || compressed_report
