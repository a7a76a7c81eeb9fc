#!/usr/bin/env bash
# profile.sh: where corecast's CPU goes under load (issue #5), recorded the
# same way every time so profiles from different commits can be compared.
#
#   scripts/profile.sh [--out DIR] [--secs S] [--only NAME[,NAME...]]
#                      [--tool perf|callgrind] [--keep-data] [-h|--help]
#
# Placement, as scripts/compare.sh: the release server alone on CPU 0
#   taskset -c 0 target/release/corecast --port P --shards 1 --cpus 0 --admin-addr none
# and corecast-bench on CPU 1 (`--cpus 1`, one thread); this script, perf
# and the post-processing also stay on CPU 1. P is a fresh port that no
# local socket uses. One fresh server per scenario. Scenarios (--only):
#   fixed50k        fanout --subs 1000 --channels 100 --publishers 4 --size 64
#                   --rate 5000 (5,000 publishes/s = 50,000 deliveries/s)
#   fanout1000x100  the same at max rate (the bench's in-flight window)
#   fanout5000x1    fanout --subs 5000 --channels 1 --publishers 1 --size 64, max rate
#   echo            echo -c 100 --size 64 on /echo, closed loop
# Default: all four, in that order (about 25 s each with the default --secs).
#
# Each run: the bench publishes for S+7 s; once the server holds every
# connection (its fd count) and 2 more seconds have passed, the steady phase
# is sampled with
#   perf record -F 4000 -g -p SERVER_PID -- sleep S
# (S = --secs, default 10). Without a hardware PMU (as in most VMs) perf
# falls back to the cpu-clock software event; the event used is in NAME.txt.
# Then, load still on, the server's syscalls are counted for 3 s on
# tracepoints (perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_sendmsg,
# ...), a separate window so their cost stays out of the profile.
# Outputs in DIR (default docs/profile/), per scenario:
#   NAME.folded  collapsed stacks (inferno-collapse-perf --all: kernel frames
#                end in _[k]), gzipped to NAME.folded.gz when over 1 MiB
#   NAME.svg     flamegraph (inferno-flamegraph)
#   NAME.txt     header (commands, date, kernel, git sha, perf event, sample
#                count, every process's CPU in the window), syscalls per
#                second and per delivery (or round trip), CPU split by dso
#                and by thread, top symbols by self and by children time
#                (perf report --stdio), and the groups
#                the docs discuss (TCP send path, syscall entry and fd
#                lookup, epoll, allocator, clock, ...) counted over the
#                folded stacks, each group's symbols listed
#   NAME.json    the bench's JSON line
# and meta.txt (date, kernel, CPU, git sha, tool versions); each NAME.txt
# repeats the date, kernel and sha and holds its exact commands.
# --keep-data keeps NAME.perf.data (large; not meant to be committed).
#
# Tools: perf from the distribution; inferno 0.12.8 (inferno-collapse-perf,
# inferno-flamegraph) is installed from crates.io on first use with
#   cargo install inferno --version 0.12.8 --locked --root target/tools
# into cargo's target directory (not ~/.cargo), so nothing global changes and
# `cargo clean` removes it; later runs reuse it. That directory, for the
# build and the tools, is $CARGO_TARGET_DIR when it is set, else target/.
#
# If perf cannot record (perf_event_paranoid > 1 as non-root, no
# perf_event_open in a container) or with --tool callgrind, the server runs
# under valgrind --tool=callgrind instead, at a reduced load (fan-out at
# --rate 100, echo at --rate 200: valgrind runs it ~50x slower), instrumented
# for the same S s window (callgrind_control -i on, then -d), and NAME.txt
# holds callgrind_annotate's instruction counts (self and inclusive): user
# space only, and no flamegraph then.
#
# Every process is bounded by `timeout`; a trap stops the server, bench and
# perf on exit, error or signal, and removes the temporary directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/scripts/lib.sh"
readonly ALL_SCENARIOS="fixed50k fanout1000x100 fanout5000x1 echo"
readonly INFERNO_VERSION=0.12.8
CARGO_TARGET_DIR=$(cargo_target_dir "$ROOT")
readonly CARGO_TARGET_DIR
export CARGO_TARGET_DIR
readonly TOOLS=$CARGO_TARGET_DIR/tools
readonly SRV_CPU=0 BENCH_CPU=1
# Seconds between "every connection is up" and the start of sampling, so
# subscribe replies and the first publishes' cold caches are not profiled.
readonly WARMUP=2
# Seconds the bench keeps publishing after sampling ends, so the drain is
# never sampled even if perf starts late.
readonly TAIL=2
# Seconds of syscall counting (perf stat on tracepoints) right after the
# sampled window, while the load goes on: a separate window, so the
# tracepoints' own cost stays out of the profile.
readonly COUNT_SECS=3
readonly COUNT_EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_io_uring_enter
# perf's sampling rate: high enough for ~40k samples in 10 s, low enough that
# perf's own interrupt work stays a small share of the server's CPU.
readonly FREQ=4000

OUT="" SECS=10 ONLY="" TOOL=auto KEEP_DATA=0

die() { echo "profile.sh: $*" >&2; exit 1; }

main() {
    parse_args "$@"
    [[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (server on $SRV_CPU, bench on $BENCH_CPU)"
    # Keep this shell and everything it starts (perf, post-processing) off
    # the server's CPU.
    taskset -pc "$BENCH_CPU" $$ >/dev/null
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    WORK=$(mktemp -d /tmp/corecast-profile.XXXXXX)
    trap cleanup EXIT
    trap 'echo "profile.sh: interrupted" >&2; exit 130' INT TERM HUP

    build
    choose_tool
    write_meta
    local name
    for name in $ALL_SCENARIOS; do
        want "$name" || continue
        run_scenario "$name"
    done
    echo "== done: $OUT"
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT=$2; shift ;;
            --secs) [[ $# -ge 2 ]] || die "--secs needs a number"; SECS=$2; shift ;;
            --only) [[ $# -ge 2 ]] || die "--only needs names"; ONLY=$2; shift ;;
            --tool) [[ $# -ge 2 ]] || die "--tool needs perf or callgrind"; TOOL=$2; shift ;;
            --keep-data) KEEP_DATA=1 ;;
            -h|--help) usage_from_header "${BASH_SOURCE[0]}"; exit 0 ;;
            *) echo "profile.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
        esac
        shift
    done
    [[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "profile.sh: --secs must be a whole number of seconds >= 1" >&2; exit 2; }
    [[ $TOOL == auto || $TOOL == perf || $TOOL == callgrind ]] \
        || { echo "profile.sh: --tool must be perf or callgrind" >&2; exit 2; }
    local n
    for n in ${ONLY//,/ }; do
        [[ " $ALL_SCENARIOS " == *" $n "* ]] \
            || { echo "profile.sh: unknown scenario $n (known: $ALL_SCENARIOS)" >&2; exit 2; }
    done
    OUT=${OUT:-$ROOT/docs/profile}
}

# ---- processes: everything started here is tracked and stopped on exit ----

SERVER_PID="" SERVER_TPID="" BENCH_TPID="" PERF_TPID="" WORK=""

cleanup() {
    local rc=$?
    stop_pid INT 10 "$PERF_TPID"
    stop_pid TERM 10 "$BENCH_TPID"
    stop_server
    [[ -n $WORK ]] && rm -rf "$WORK"
    exit "$rc"
}

stop_server() {
    # SIGINT to the server itself drains it; its `timeout` wrapper then
    # exits on its own. Under valgrind the server's sigwait thread never
    # sees the signal (valgrind 3.19 here), hence the KILL after 20 s; the
    # profile was already dumped through callgrind_control.
    stop_pid INT 20 "$SERVER_PID"
    stop_pid TERM 10 "$SERVER_TPID"
    SERVER_PID="" SERVER_TPID=""
}

# ---- setup ----

build() {
    echo "== cargo build --release --workspace"
    (cd "$ROOT" && cargo build --release -q --workspace) || die "build failed"
    # Run private copies, so a concurrent `cargo build` cannot swap the
    # binaries between scenarios or under perf's symbol lookup.
    cp "$CARGO_TARGET_DIR/release/corecast" "$CARGO_TARGET_DIR/release/corecast-bench" "$WORK/"
    SERVER_BIN=$WORK/corecast BENCH_BIN=$WORK/corecast-bench
}

ensure_inferno() {
    if [[ -x $TOOLS/bin/inferno-flamegraph && -x $TOOLS/bin/inferno-collapse-perf ]] \
        && grep -q "inferno $INFERNO_VERSION " "$TOOLS/.crates.toml" 2>/dev/null; then
        return 0
    fi
    echo "== installing inferno $INFERNO_VERSION into $TOOLS (crates.io, once)"
    timeout 900 cargo install inferno --version "$INFERNO_VERSION" --locked --root "$TOOLS" -q \
        || die "could not install inferno (cargo install inferno --version $INFERNO_VERSION --locked --root $TOOLS)"
}

# Picks perf when it can sample a process here, else callgrind.
choose_tool() {
    if [[ $TOOL != callgrind ]]; then
        local why=""
        if ! command -v perf >/dev/null; then
            why="perf is not installed (apt-get install linux-perf)"
        elif ! timeout 20 perf record -F "$FREQ" -g -o "$WORK/probe.data" -- sleep 0.2 >"$WORK/probe.log" 2>&1; then
            why="perf record failed: $(tail -n 3 "$WORK/probe.log" | tr '\n' ' ')(kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?'); a container may also forbid perf_event_open)"
        fi
        if [[ -z $why ]]; then
            TOOL=perf
            ensure_inferno
            return 0
        fi
        [[ $TOOL == perf ]] && die "$why"
        echo "profile.sh: $why; falling back to valgrind --tool=callgrind at a reduced load" >&2
    fi
    if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
        die "neither perf nor valgrind can profile here (apt-get install linux-perf valgrind)"
    fi
    TOOL=callgrind
}

write_meta() {
    GIT_DESC=$(git_desc "$ROOT")
    {
        # --all: this shell is pinned to one CPU by now.
        meta_lines "$ROOT" "$(nproc --all)"
        echo "tool: $TOOL"
        if [[ $TOOL == perf ]]; then
            echo "perf: $(perf --version)"
            echo "inferno: $INFERNO_VERSION"
            echo "perf_event_paranoid: $(cat /proc/sys/kernel/perf_event_paranoid)"
        else
            echo "valgrind: $(valgrind --version)"
        fi
        echo "rustc: $(rustc --version)"
        # The loopback TCP path is most of the profile; these shape it.
        echo "sysctl: $(sysctl net.ipv4.tcp_congestion_control net.core.default_qdisc \
            net.ipv4.tcp_autocorking 2>/dev/null | tr -d ' ' | paste -sd' ' -)"
        echo "secs: $SECS sampled per scenario, after ${WARMUP}s of load with every connection up"
        echo "placement: server CPU $SRV_CPU, bench + perf + this script CPU $BENCH_CPU"
        echo "loadavg before: $(cat /proc/loadavg)"
    } | tee "$OUT/meta.txt"
}

# ---- one scenario ----

# scenario NAME: sets BENCH_ARGS (array), EXPECT (connections the server
# must hold) and URL_PATH for NAME. Under callgrind every scenario runs at a
# fixed, low rate: valgrind slows the server ~50x.
scenario() {
    local rate=0 slow_rate=100
    case $1 in
        fixed50k) BENCH_ARGS=(fanout --subs 1000 --channels 100 --publishers 4 --size 64); rate=5000; EXPECT=1004; URL_PATH=/ws ;;
        fanout1000x100) BENCH_ARGS=(fanout --subs 1000 --channels 100 --publishers 4 --size 64); EXPECT=1004; URL_PATH=/ws ;;
        fanout5000x1) BENCH_ARGS=(fanout --subs 5000 --channels 1 --publishers 1 --size 64); EXPECT=5001; URL_PATH=/ws ;;
        echo) BENCH_ARGS=(echo -c 100 --size 64); EXPECT=100; URL_PATH=/echo; slow_rate=200 ;;
    esac
    [[ $TOOL == callgrind ]] && rate=$slow_rate
    if [[ $rate -gt 0 ]]; then BENCH_ARGS+=(--rate "$rate"); fi
}

run_scenario() {
    local name=$1
    echo "=== $name"
    scenario "$name"
    rm -f "$OUT/$name".*
    LOAD_START=$(cat /proc/loadavg)
    start_server "$name" || { echo "profile.sh: $name skipped: server did not start" >&2; return 0; }

    local bench_secs=$((SECS + WARMUP + COUNT_SECS + TAIL))
    local cmd=("$BENCH_BIN" "${BENCH_ARGS[@]}" --url "ws://127.0.0.1:$PORT$URL_PATH"
        --cpus "$BENCH_CPU" --secs "$bench_secs" --label "profile.$name")
    BENCH_CMD="corecast-bench ${cmd[*]:1}"
    local base
    base=$(count_fds "$SERVER_PID")
    timeout -k 5 $((bench_secs + 200)) "${cmd[@]}" >"$WORK/$name.bench.out" 2>"$WORK/$name.bench.err" &
    BENCH_TPID=$!

    if ! wait_connections "$name" $((base + EXPECT)); then
        stop_pid TERM 10 "$BENCH_TPID"; BENCH_TPID=""
        stop_server
        echo "profile.sh: $name skipped: the bench did not connect (see its stderr above)" >&2
        return 0
    fi
    local steady=yes
    sleep "$WARMUP"
    snapshot_procs "$WORK/procs.start"
    if [[ $TOOL == perf ]]; then
        PERF_CMD="perf record -F $FREQ -g -p $SERVER_PID -o $name.perf.data -- sleep $SECS"
        echo "$PERF_CMD"
        timeout -k 5 $((SECS + 60)) perf record -F "$FREQ" -g -p "$SERVER_PID" -o "$WORK/$name.perf.data" \
            -- sleep "$SECS" >"$WORK/$name.perf.log" 2>&1 &
        PERF_TPID=$!
        wait "$PERF_TPID" || { cat "$WORK/$name.perf.log" >&2; die "perf record failed"; }
        PERF_TPID=""
        # Sampling must have ended while the bench was still publishing.
    else
        # The same window as perf's: instrumentation on now, dumped S s later
        # (through vgdb, so the server need not exit for callgrind to write;
        # zeroing counters with -z instead leaves every cost on `clone`).
        PERF_CMD="callgrind_control -i on PID; sleep $SECS; callgrind_control -d PID"
        timeout 60 callgrind_control -i on "$SERVER_PID" >/dev/null || die "callgrind_control -i on failed"
        sleep "$SECS"
        timeout 60 callgrind_control -d "$SERVER_PID" >/dev/null || die "callgrind_control -d failed"
    fi
    snapshot_procs "$WORK/procs.end"
    BUSY=$(busy_report "$WORK/procs.start" "$WORK/procs.end")
    [[ $TOOL == perf ]] && count_syscalls "$name"
    kill -0 "$BENCH_TPID" 2>/dev/null || steady="no: the bench had stopped before sampling ended"
    local rc=0
    wait "$BENCH_TPID" || rc=$?
    BENCH_TPID=""
    cat "$WORK/$name.bench.err" >&2
    grep -v '^{' "$WORK/$name.bench.out" || true
    grep '^{' "$WORK/$name.bench.out" | tail -n 1 >"$OUT/$name.json" \
        || echo "{\"label\":\"profile.$name\",\"ok\":false,\"missing\":true,\"exit\":$rc}" >"$OUT/$name.json"
    stop_server
    if [[ $TOOL == perf ]]; then
        report_perf "$name" "$rc" "$steady"
    else
        report_callgrind "$name" "$rc" "$steady"
    fi
}

# The port before the first one next_port (lib.sh) hands out.
PORT=${PROFILE_PORT:-18300}

# snapshot_procs FILE: "pid ticks comm" for every process now, ticks being
# utime+stime. (Per-CPU busy time from /proc/stat is not usable on this VM:
# it reported a CPU idle while the server ran on it.)
snapshot_procs() {
    local f s pid comm
    for f in /proc/[0-9]*/stat; do
        read -r s <"$f" 2>/dev/null || continue  # a builtin: no fork per process
        pid=${s%% *} comm=${s#*(} comm=${comm%%) *}
        stat_ticks "$s"
        echo "$pid $TICKS ${comm// /_}"
    done >"$1"
}

# busy_report START END: CPU seconds each process used between two
# snapshots, largest first, those over 0.1 s. Anything besides the server,
# the bench and perf is another job competing for this 2-core VM.
busy_report() {
    awk -v hz="$(getconf CLK_TCK)" -v srv="$SERVER_PID" 'NR == FNR {t[$1] = $2; next}
        {d = ($2 - t[$1]) / hz; if (d >= 0.1) printf "%.2f %s %s%s\n", d, $1, $3, ($1 == srv ? " (the server)" : "")}' \
        "$1" "$2" | sort -rn | awk '{printf "  %6.2f s  pid %s %s\n", $1, $2, substr($0, index($0, $3))}'
}

count_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# start_server NAME: fresh server on a fresh port under `timeout`, pinned to
# CPU 0, waits for GET /health. Sets SERVER_PID, SERVER_TPID, SERVER_CMD.
start_server() {
    local name=$1 limit=$((SECS + 400)) prefix=() try
    if [[ $TOOL == callgrind ]]; then
        # Instrumentation starts switched off and is turned on for the
        # window only, so startup and the ramp cost nothing in the profile.
        prefix=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/$name.callgrind.out")
    fi
    for try in 1 2 3; do
        next_port
        local cmd=(taskset -c "$SRV_CPU" "${prefix[@]}" "$SERVER_BIN" --port "$PORT" --shards 1
            --cpus "$SRV_CPU" --admin-addr none)
        SERVER_CMD="${cmd[*]}"
        SERVER_CMD=${SERVER_CMD//$WORK\/corecast /target\/release\/corecast }
        SERVER_CMD=${SERVER_CMD//$WORK\//}
        echo "$SERVER_CMD"
        RUST_LOG=warn timeout -k 5 "$limit" "${cmd[@]}" >>"$WORK/$name.server.log" 2>&1 &
        SERVER_TPID=$!
        if wait_health; then return 0; fi
        echo "profile.sh: server start $try failed; log:" >&2
        tail -n 20 "$WORK/$name.server.log" >&2
        stop_server
    done
    return 1
}

wait_health() {
    local _
    # valgrind starts the server ~50x slower.
    for _ in $(seq 600); do
        kill -0 "$SERVER_TPID" 2>/dev/null || return 1
        [[ -z $SERVER_PID ]] && SERVER_PID=$(pgrep -P "$SERVER_TPID" | head -1)
        if [[ -n $SERVER_PID ]] && curl -sf -m 1 "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# wait_connections NAME FDS: until the server holds FDS open fds (every bench
# connection up), at most 150 s; fails if the bench exits first.
wait_connections() {
    local name=$1 want=$2 _
    for _ in $(seq 1500); do
        [[ $(count_fds "$SERVER_PID") -ge $want ]] && return 0
        if ! kill -0 "$BENCH_TPID" 2>/dev/null; then
            cat "$WORK/$name.bench.err" >&2
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# count_syscalls NAME: syscalls of the server per second over COUNT_SECS,
# into $WORK/NAME.stat (perf stat -x, CSV); empty if tracepoints are missing.
count_syscalls() {
    COUNT_CMD="perf stat -x, -e $COUNT_EVENTS -p $SERVER_PID -- sleep $COUNT_SECS"
    timeout -k 5 $((COUNT_SECS + 30)) perf stat -x, -e "$COUNT_EVENTS" -p "$SERVER_PID" \
        -o "$WORK/$name.stat" -- sleep "$COUNT_SECS" >/dev/null 2>&1 || : >"$WORK/$name.stat"
}

# syscall_rates NAME: the counts as rates, and per delivery (fan-out) or per
# round trip (echo) using the bench's own rate from NAME.json.
syscall_rates() {
    python3 - "$WORK/$1.stat" "$OUT/$1.json" "$COUNT_SECS" <<'PY'
import json, sys
stat, bench, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = []
for line in open(stat):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        rows.append((f[2].split(":")[-1].replace("sys_enter_", "") or f[2], float(f[0]) / secs))
if not rows:
    print("no counts (tracepoints unavailable or perf stat failed)")
    sys.exit(0)
try:
    j = json.load(open(bench))
except (OSError, ValueError):
    j = {}
if j.get("bench") == "fanout":
    per, one, many = j.get("delivered_per_s"), "delivery", "deliveries"
else:
    per, one, many = j.get("round_trips_per_s"), "round trip", "round trips"
if per:
    print(f"(per {one}: divided by the bench's {per:,.0f} {many}/s over its whole run)")
for ev, rate in rows:
    ev = "all syscalls" if ev == "sys_enter" else ev
    extra = f"  = {rate / per:.4f} per {one}" if per else ""
    print(f"{rate:14,.0f}/s  {ev}{extra}")
PY
}

# ---- reports ----

# The lines every report opens with: when, what ran, and what else did.
run_header() {
    local rc=$1 steady=$2
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $GIT_DESC"
    echo "kernel: $(uname -r)"
    echo "server: $SERVER_CMD"
    echo "bench: $BENCH_CMD"
    echo "profile: $PERF_CMD"
    echo "bench exit: $rc; sampled in steady phase: $steady"
    echo "loadavg at start, at end: $LOAD_START; $(cat /proc/loadavg)"
    echo "CPU time per process during the sampled window (/proc/PID/stat; others are other jobs on this VM):"
    echo "$BUSY"
}

report_perf() {
    local name=$1 rc=$2 steady=$3
    local data=$WORK/$name.perf.data
    echo "-- $name: perf script | inferno"
    perf script -i "$data" 2>"$WORK/$name.script.err" >"$WORK/$name.script"
    "$TOOLS/bin/inferno-collapse-perf" --all "$WORK/$name.script" >"$OUT/$name.folded"
    "$TOOLS/bin/inferno-flamegraph" --title "corecast $name (perf -F $FREQ, ${SECS}s, server on 1 CPU)" \
        "$OUT/$name.folded" >"$OUT/$name.svg"
    {
        echo "# corecast profile: $name"
        run_header "$rc" "$steady"
        echo "event: $(perf evlist -i "$data" 2>/dev/null | head -1)"
        echo "samples: $(grep -c '^[^[:space:]]' "$WORK/$name.script" || true)"
        echo
        echo "## syscalls (${COUNT_SECS}s right after the sampled window, load still on): $COUNT_CMD"
        syscall_rates "$name"
        section "CPU by dso (self)" perf report -i "$data" --stdio --no-children --sort dso -g none
        section "CPU by thread (self)" perf report -i "$data" --stdio --no-children --sort comm -g none
        section "top 40 symbols by self time" top_n 40 perf report -i "$data" --stdio --no-children --sort sym,dso -g none
        section "top 40 symbols by children (inclusive) time" top_n 40 perf report -i "$data" --stdio --children --sort sym,dso -g none
        echo
        echo "## groups (from $name.folded: self = leaf frame, incl = anywhere on the stack)"
        groups "$OUT/$name.folded"
    } >"$OUT/$name.txt"
    if [[ $(stat -c %s "$OUT/$name.folded") -gt 1048576 ]]; then
        gzip -9f "$OUT/$name.folded"
    fi
    if [[ $KEEP_DATA == 1 ]]; then cp "$data" "$OUT/"; fi
    rm -f "$data" "$WORK/$name.script"
    grep -A3 '^## groups' "$OUT/$name.txt" | tail -n 3 || true
}

# section TITLE CMD...: one titled block of command output, '#' comments and
# blank lines dropped.
section() {
    local title=$1; shift
    echo
    echo "## $title"
    "$@" 2>/dev/null | grep -v '^#' | grep -v '^[[:space:]]*$' || true
}

# groups FOLDED: the CPU split that docs/profile.md discusses, computed from
# the folded stacks (weights are cpu-clock nanoseconds, so shares are of the
# server's sampled CPU time). Kernel frames end in _[k] (--all).
groups() {
    python3 - "$1" "$SECS" <<'PY'
import re, sys
from collections import Counter, defaultdict

path, secs = sys.argv[1], float(sys.argv[2])
stacks = []
for line in open(path):
    stack, _, n = line.rstrip("\n").rpartition(" ")
    stacks.append((stack.split(";")[1:], int(n)))  # frame 0 is the thread name
total = sum(n for _, n in stacks) or 1
pct = lambda v: f"{100.0 * v / total:6.2f}%"
# inferno also tags the vdso's frames _[k]; they run in user mode.
kern = lambda f: f.endswith("_[k]") and not f.startswith("__vdso_")
# Without the tag and glibc's symbol version (cfree@GLIBC_2.2.5).
name = lambda f: re.sub(r"@.*$", "", f[:-4] if f.endswith("_[k]") else f)

def has(frames, names):
    return any(kern(f) and f[:-4] in names for f in frames)

print(f"sampled CPU time: {total / 1e9:.3f} s over {secs:g} s = {total / 1e9 / secs:.2f} CPUs busy")
print()
print("### where the time goes, by the first rule its stack matches (sums to 100%)")
RULES = [
    ("TCP send, receiver's softirq part: tcp_sendmsg -> loopback xmit -> net_rx_action "
     "(on loopback the receiving socket's processing runs on the sender's CPU)",
     lambda fr: has(fr, {"tcp_sendmsg", "tcp_sendmsg_locked"}) and has(fr, {"net_rx_action", "process_backlog"})),
    ("TCP send, sender's part: tcp_sendmsg outside that softirq",
     lambda fr: has(fr, {"tcp_sendmsg", "tcp_sendmsg_locked"})),
    ("sendmsg syscall around tcp_sendmsg: entry, fdget, msghdr/iovec copy, socket layers",
     lambda fr: has(fr, {"__x64_sys_sendmsg", "__sys_sendmsg", "___sys_sendmsg", "____sys_sendmsg"})),
    ("recv syscalls (recvfrom/recvmsg/read, tcp_recvmsg)",
     lambda fr: has(fr, {"__x64_sys_recvfrom", "__sys_recvfrom", "__x64_sys_recvmsg", "__sys_recvmsg",
                         "tcp_recvmsg", "ksys_read"})),
    ("epoll_wait / epoll_ctl syscalls", lambda fr: has(fr, {"do_epoll_wait", "do_epoll_ctl"})),
    ("io_uring_enter (glommio's ring: the shard's epoll fd poll, timers, accept)",
     lambda fr: has(fr, {"__do_sys_io_uring_enter", "__x64_sys_io_uring_enter", "io_uring_enter"})),
    ("other syscalls", lambda fr: has(fr, {"entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "do_syscall_64"})),
    ("other kernel (interrupts, page faults, scheduler) with no syscall on the stack",
     lambda fr: bool(fr) and kern(fr[-1])),
    ("user space (corecast, its crates, libc, vdso): leaf frame not in the kernel", lambda fr: True),
]
rule_t = Counter()
for fr, n in stacks:
    for title, test in RULES:
        if test(fr):
            rule_t[title] += n
            break
for title, _ in RULES:
    print(f"{pct(rule_t[title])}  {title}")

# Self-time groups: the leaf frame's symbol. Patterns are anchored regexes.
SELF_GROUPS = [
    ("kernel: syscall entry/exit (entry_SYSCALL_64, do_syscall_64, exit to user mode, dispatch)", True,
     r"entry_SYSCALL_64.*|do_syscall_64|x64_sys_call|syscall_(enter|exit)_.*|exit_to_user_mode.*|"
     r"syscall_return_via_sysret|entry_SYSRETQ.*|__x64_sys_.*|fpregs_assert_state_consistent|"
     r"switch_fpu_return|clear_bhb_loop|srso_.*|entry_untrain_ret|__x86_return_thunk"),
    ("kernel: fd lookup (fdget, fget, fput, sockfd_lookup_light)", True,
     r"fdget.*|__fdget.*|__fget.*|fget.*|fput.*|sockfd_lookup_light"),
    ("kernel: socket call setup (msghdr/iovec copy, __sys_sendmsg/recvfrom, sock_* and inet_* "
     "dispatch, LSM hooks)", True,
     r"_{0,4}sys_sendmsg|sendmsg_copy_msghdr|copy_msghdr_from_user|__copy_msghdr.*|_?_?import_iovec|"
     r"copy_iovec_from_user|iovec_from_user|import_ubuf|_?_?sock_sendmsg.*|sock_sendmsg_nosec|"
     r"inet_sendmsg|inet_send_prepare|__sys_recvfrom|sock_recvmsg.*|inet_recvmsg|"
     r"security_socket_.*|bpf_lsm_socket_.*|_copy_from_user|__check_object_size|check_heap_object|"
     r"move_addr_to_user"),
    ("libc syscall wrappers (sendmsg/recv/epoll_wait, the cancellation toggles; with cpu-clock "
     "this also holds the kernel's irq-off exit path)", False,
     r"__libc_sendmsg|__libc_recv.*|__libc_recvfrom|recv|recvfrom|sendmsg|__GI___pthread_(en|dis)able_asynccancel|"
     r"epoll_wait|__GI_epoll_wait|syscall|__GI___syscall.*|io_uring_enter.*"),
    ("user: allocator (malloc/free and Rust's alloc shims)", False,
     r"malloc|free|cfree|_int_malloc|_int_free.*|_int_realloc|realloc|calloc|unlink_chunk.*|"
     r"malloc_consolidate|__libc_(malloc|free|calloc|realloc)|tcache_.*|__rust_(alloc|dealloc|realloc)|"
     r"alloc::raw_vec::.*|alloc::alloc::.*"),
    ("user: clock reads (vdso clock_gettime, Instant::now, latency::now_ns)", False,
     r"__vdso_clock_gettime|clock_gettime|__clock_gettime.*|<?std::time::.*|<?std::sys::.*time.*|"
     r"corecast::latency::now_ns"),
    ("user: glommio task wake/schedule/run (executor, wakers)", False,
     r"<?glommio::(task|executor)::.*|core::task::.*"),
    ("user: glommio other (reactor, io_uring ring, channels, timers)", False, r"<?glommio::.*"),
    ("user: bytes refcounts (Bytes clone/drop)", False, r"<?bytes::.*"),
    ("user: hdrhistogram (latency recording)", False, r"<?hdrhistogram::.*"),
    ("user: JSON (serde_json)", False, r"<?serde(_json|_core)?::.*"),
    ("user: memcpy/memmove/memcmp/memset", False, r"__mem.*|mem(cpy|move|cmp|set).*"),
    ("user: corecast's own code", False, r"<?corecast::.*"),
]
compiled = [(t, k, re.compile(p)) for t, k, p in SELF_GROUPS]
group_t, group_syms = Counter(), defaultdict(Counter)
leftover = Counter()
for fr, n in stacks:
    leaf = fr[-1] if fr else "[none]"
    for title, is_kern, rx in compiled:
        if kern(leaf) == is_kern and rx.fullmatch(name(leaf)):
            group_t[title] += n
            group_syms[title][name(leaf)] += n
            break
    else:
        leftover["kernel, other" if kern(leaf) else "user, other"] += n
print()
print("### self time by group (leaf frame; each group lists its largest symbols)")
for title, _, _ in compiled:
    syms = ", ".join(f"{s} {100.0 * v / total:.2f}" for s, v in group_syms[title].most_common(8))
    print(f"{pct(group_t[title])}  {title}")
    if syms:
        print(f"           {syms}")
print(f"{pct(leftover['kernel, other'])}  kernel, other (the TCP/IP stack, skbs, wakeups: see the rules above)")
print(f"{pct(leftover['user, other'])}  user, other")
print()
removable = sum(group_t[t] for t, _, _ in compiled[:2]) + group_t[compiled[3][0]]
print(f"{pct(removable)}  syscall entry/exit + fd lookup + libc wrappers: the per-call cost that "
      "batched io_uring submission with registered fds could at most remove")
print(f"{pct(group_t[compiled[2][0]])}  socket call setup: kept by io_uring's sendmsg/recv ops "
      "(they copy the msghdr and run the same socket layers)")

# A few kernel functions the docs name, inclusive; these overlap each other.
PICKS = [
    ("sock_def_readable", "waking the reading socket's owner (the bench's epoll, on the other CPU) for "
     "each skb queued to it; the wakeup runs with interrupts off, so cpu-clock charges it to "
     "_raw_spin_unlock_irqrestore"),
    ("skb_defer_free_flush", "freeing this CPU's skbs that the bench consumed on the other CPU"),
    ("tcp_stream_alloc_skb", "allocating the skbs the sends fill"),
    ("_copy_from_iter", "copying the frames' bytes from user memory into skbs"),
    ("__inet_lookup_established", "socket lookup for each received segment (the loopback receive)"),
    ("sk_reset_timer", "re-arming TCP timers (retransmit, delayed ACK, loss probe)"),
    ("tcp_recvmsg", "reading (recv) inside the kernel"),
    ("do_epoll_wait", "epoll_wait on the shard's epoll set"),
]
print()
print("### selected kernel functions, inclusive (these overlap)")
for fn, why in PICKS:
    v = sum(n for fr, n in stacks if has(fr, {fn}))
    print(f"{pct(v)}  {fn}: {why}")
PY
}

# top_n N CMD...: the first N lines of CMD's output that are not comments or
# blank. awk reads to the end (head would stop early, and the producer's
# SIGPIPE would fail the pipeline under pipefail).
top_n() { local n=$1; shift; "$@" 2>/dev/null | grep -v '^#' | grep -v '^[[:space:]]*$' | awk -v n="$n" 'NR <= n'; }

# cg_top N ARGS...: the first N count lines of callgrind_annotate ARGS.
cg_top() {
    local n=$1; shift
    callgrind_annotate "$@" 2>/dev/null | grep -E '^ *[0-9,]+ +\(' | sed "s#$WORK/##g" | awk -v n="$n" 'NR <= n'  # not head: see top_n
}

report_callgrind() {
    local name=$1 rc=$2 steady=$3
    # callgrind_control -d writes FILE.1 next to --callgrind-out-file.
    local out=$WORK/$name.callgrind.out.1
    [[ -s $out ]] || die "callgrind wrote no profile for $name"
    {
        echo "# corecast profile: $name (callgrind instruction counts, reduced load)"
        run_header "$rc" "$steady"
        echo "note: user-space instructions only (valgrind sees no kernel time), at the reduced load above"
        section "top 40 functions by self instructions (the first line is the total)" \
            cg_top 41 --inclusive=no "$out"
        section "top 40 functions by inclusive instructions (the first line is the total)" \
            cg_top 41 --inclusive=yes "$out"
    } >"$OUT/$name.txt"
}

main "$@"
