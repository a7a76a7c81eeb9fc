#!/usr/bin/env bash
# scale-out.sh: the Redis-mode (docs/scaling.md) figures, on one box: many
# processes on one Redis, a model of several hosts in network namespaces,
# and what embedded mode (no --redis) costs now against the build before
# Redis mode. Needs root (sysctls, namespaces), redis-server and redis-cli.
#
#   scripts/scale-out.sh [--quick] [--only big,hosts,embedded] [--old-bin PATH] [--out DIR]
#
#   big       6 corecast processes (--shards 1, each its own port, all on
#             one local redis-server), 17,000 subscribers of one channel on
#             each (6 corecast-bench processes: one per 20,000 fds), then ONE
#             POST /api/publish on process 1's admin port; each bench counts
#             who got it (received, missing, duplicates) and the latency from
#             the publish's stamp to receipt.               ~1.5 min
#   hosts     network namespaces on one bridge: 3 "hosts" with a corecast
#             each (all on CPU 0), Redis in a 4th, the bench in a 5th (Redis
#             and bench on CPU 1). Fan-out over the 3 hosts vs one corecast
#             without Redis (same CPU), rounds interleaved; Redis CPU per
#             publish; then a publish-rate sweep (1k-40k/s, fan-out 3) with
#             p99 and Redis CPU per rate.                   ~3 min
#   embedded  fan-out 5,000 subscribers x 1 channel at 40 publishes/s, one
#             shard pinned to CPU 0, bench on CPU 1: server CPU per
#             delivery of the build before Redis mode (git d20781f) vs this
#             build, and this build in Redis mode (redis on CPU 1), rows
#             interleaved (old, new, redis, old, new, redis).  ~2.5 min
#   --quick   1,000 subscribers per process, short runs, one round. ~1.5 min
#   --old-bin the d20781f corecast binary; default: builds it in a worktree
#             under /tmp/cc-old (its own target dir; ~10 min the first time).
#
# Every process, namespace and veth it makes is removed on exit, also on
# Ctrl-C; every bench runs under `timeout` and a watchdog ends the whole
# script after 20 minutes. Results: DIR/meta.txt, summary.txt, one .json
# per bench run, server and redis logs (default DIR:
# target/scale-out-results/DATE).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/scripts/lib.sh"
QUICK=0 ONLY="" OUT="" OLD_BIN=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --only) ONLY=${2-}; shift ;;
        --old-bin) OLD_BIN=${2-}; shift ;;
        --out) OUT=${2-}; shift ;;
        -h|--help) usage_from_header "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "scale-out.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
((EUID == 0)) || { echo "scale-out.sh: needs root (sysctls, network namespaces)" >&2; exit 1; }
for tool in redis-server redis-cli jq ip curl; do
    command -v "$tool" >/dev/null || { echo "scale-out.sh: $tool not found" >&2; exit 1; }
done
CARGO_TARGET_DIR=$(cargo_target_dir "$ROOT")
export CARGO_TARGET_DIR
BIN=$CARGO_TARGET_DIR/release
OUT=${OUT:-$CARGO_TARGET_DIR/scale-out-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PORT=${SCALE_PORT:-18200}
# The commit before Redis mode, for the embedded comparison.
OLD_REV=d20781f

# Everything this script started, stopped by cleanup: processes (benches
# first, they watch servers), then namespaces (their veths and the bridge
# go with them).
PIDS=() NETNS=() WATCHDOG=""
cleanup() {
    local ns
    stop_pid INT 10 "${PIDS[@]}"
    PIDS=()
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    NETNS=()
    [[ -z $WATCHDOG ]] || { kill "$WATCHDOG" 2>/dev/null || true; wait "$WATCHDOG" 2>/dev/null || true; }
}
trap cleanup EXIT
trap 'echo "scale-out.sh: interrupted" >&2; exit 130' INT TERM
# The watchdog ends the script (and so, through the trap, everything it
# started) if something hangs past every step's own bound.
(sleep 1200 && kill -TERM $$) 2>/dev/null &
WATCHDOG=$!

say() { echo "$*" | tee -a "$OUT/summary.txt"; }

# spawn NS CMD...: starts CMD in the background, in network namespace NS
# ("" for this one); its pid (the command's own: ip netns exec execs it)
# goes into PIDS and the global SPAWNED.
spawn() {
    local ns=$1
    shift
    if [[ -n $ns ]]; then ip netns exec "$ns" "$@" & else "$@" & fi
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# in_ns NS CMD...: runs CMD in namespace NS ("" for this one).
in_ns() {
    local ns=$1
    shift
    if [[ -n $ns ]]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# wait_http NS URL PID: waits up to 10 s for URL to answer; fails if PID exits.
wait_http() {
    local i
    for i in $(seq 100); do
        kill -0 "$3" 2>/dev/null || { echo "scale-out.sh: pid $3 exited at startup ($2)" >&2; return 1; }
        in_ns "$1" curl -sf -o /dev/null "$2" && return 0
        sleep 0.1
        : "$i"
    done
    echo "scale-out.sh: $2 did not answer" >&2
    return 1
}

# start_redis NS ADDR PORT CPU: a throwaway redis-server (no persistence),
# pid in REDIS_PID once it answers.
start_redis() {
    local ns=$1 addr=$2 port=$3 cpu=$4 i
    spawn "$ns" taskset -c "$cpu" redis-server --bind "$addr" --port "$port" --save "" \
        --appendonly no --protected-mode no --daemonize no --logfile "$OUT/redis-$port.log"
    REDIS_PID=$SPAWNED
    for i in $(seq 100); do
        [[ $(in_ns "$ns" redis-cli -h "$addr" -p "$port" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
        : "$i"
    done
    echo "scale-out.sh: redis on $addr:$port did not answer" >&2
    return 1
}

# start_corecast NS BIN ADDR PORT ADMIN CPU [FLAGS...]: one single-shard
# server on CPU; pid in SERVER_PID once /health answers.
start_corecast() {
    local ns=$1 bin=$2 addr=$3 port=$4 admin=$5 cpu=$6
    shift 6
    spawn "$ns" env RUST_LOG=warn taskset -c "$cpu" "$bin" --addr "$addr" --port "$port" \
        --shards 1 --cpus "$cpu" --admin-addr "$admin" "$@"
    SERVER_PID=$SPAWNED
    # Its log is the script's stdout/stderr: a server's warnings are part of the record.
    wait_http "$ns" "http://$addr:$port/health" "$SERVER_PID"
}

# ticks PID: utime+stime of PID so far, in clock ticks.
ticks() {
    local line
    read -r line <"/proc/$1/stat"
    stat_ticks "$line"
    # shellcheck disable=SC2153  # set by stat_ticks (lib.sh)
    echo "$TICKS"
}

# bench NS NAME LIMIT ARGS...: one corecast-bench run in NS under timeout;
# its table goes to NAME.txt and its JSON line to NAME.json.
bench() {
    local ns=$1 name=$2 limit=$3 rc=0
    shift 3
    echo "--- $name: corecast-bench $*" >>"$OUT/summary.txt"
    in_ns "$ns" timeout --foreground "$limit" "$BIN/corecast-bench" "$@" --label "$name" \
        >"$OUT/$name.txt" 2>"$OUT/$name.err" || rc=$?
    tail -n1 "$OUT/$name.txt" >"$OUT/$name.json"
    [[ $rc == 0 ]] || say "    $name: exit $rc (see $name.txt)"
}

# publish_stamped ADDR PORT CHANNEL: one POST /api/publish whose data is
# {"sent_unix_us":NOW}, NOW taken after the connection is open and just
# before the request is written (bash builtins only, so no fork delays
# the write), so the latency the benches report starts at the request.
publish_stamped() {
    local fd body status
    exec {fd}<>"/dev/tcp/$1/$2"
    body="{\"channel\":\"$3\",\"data\":{\"sent_unix_us\":${EPOCHREALTIME/./}}}"
    printf 'POST /api/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$1" "${#body}" "$body" >&"$fd"
    read -r -t 5 status <&"$fd" || status="no answer"
    exec {fd}>&-
    echo "${status%$'\r'}"
}

# ---- part 1: 6 processes, one Redis, 100k subscribers, one publish
part_big() {
    local n_proc=6 per=17000 hold=60 i rport ports=() admins=() spids=() bpids=() ready
    ((QUICK)) && per=1000 hold=20
    say "== big: $n_proc processes x $per subscribers of one channel, one Redis, one publish"
    next_port; rport=$PORT
    start_redis "" 127.0.0.1 "$rport" 0-1
    for ((i = 0; i < n_proc; i++)); do
        next_port; ports+=("$PORT")
        next_port; admins+=("$PORT")
        start_corecast "" "$BIN/corecast" 127.0.0.1 "${ports[i]}" "127.0.0.1:${admins[i]}" $((i % 2)) \
            --max-connections 19000 --redis "redis://127.0.0.1:$rport" >>"$OUT/big-server.log" 2>&1
        spids+=("$SERVER_PID")
    done
    say "    servers: corecast --addr 127.0.0.1 --port P_i --shards 1 --cpus (i%2) --admin-addr 127.0.0.1:A_i --max-connections 19000 --redis redis://127.0.0.1:$rport"
    for ((i = 0; i < n_proc; i++)); do
        local args=(conns --url "ws://127.0.0.1:${ports[i]}/ws" -n "$per" --hold "$hold"
            --subscribe-shared --expect-message --source-ips "127.0.$((i + 1)).1-127.0.$((i + 1)).4"
            --cpus $(((i + 1) % 2)) --server-pid "${spids[i]}")
        echo "--- big-$i: corecast-bench ${args[*]}" >>"$OUT/summary.txt"
        timeout --foreground $((hold + 150)) "$BIN/corecast-bench" "${args[@]}" --label "big-$i" \
            >"$OUT/big-$i.txt" 2>"$OUT/big-$i.err" &
        bpids+=("$!")
        PIDS+=("$!")
    done
    # Every bench says `ready subscribed=N` once all its connections are.
    for ((i = 0; i < 1800; i++)); do
        ready=$(cat "$OUT"/big-*.err 2>/dev/null | grep -c '^ready subscribed=' || true)
        ((ready == n_proc)) && break
        sleep 0.1
    done
    say "    benches ready: $ready of $n_proc ($(cat "$OUT"/big-*.err | grep -h '^ready' | tr '\n' ' '))"
    say "    redis PUBSUB NUMSUB corecast.ch.conns-shared: $(redis-cli -p "$rport" pubsub numsub corecast.ch.conns-shared | tail -1)"
    say "    publish on process 0 (admin ${admins[0]}): $(publish_stamped 127.0.0.1 "${admins[0]}" conns-shared)"
    for i in "${!bpids[@]}"; do wait "${bpids[i]}" || true; done
    for ((i = 0; i < n_proc; i++)); do tail -n1 "$OUT/big-$i.txt" >"$OUT/big-$i.json"; done
    jq -rs '
        def ms: . / 1000 * 100 | round / 100;
        "    received \(map(.message.received) | add) of \(map(.message.subscribed) | add) subscribed ("
        + "\(map(.requested) | add) requested), missing \(map(.message.missing) | add), duplicates \(map(.message.duplicates) | add)",
        "    publish to receipt, per bench: p50 \(map(.message.latency.p50_us | ms) | join("/")) ms; p99 \(map(.message.latency.p99_us | ms) | join("/")) ms; max \(map(.message.latency.max_us | ms) | join("/")) ms",
        "    last receipt (max over all): \(map(.message.latency.max_us) | max | ms) ms; waited \(map(.message.waited_s * 100 | round / 100) | join("/")) s"
        ' "$OUT"/big-?.json | tee -a "$OUT/summary.txt"
    stop_pid INT 10 "${spids[@]}" "$REDIS_PID"
    big_reference "$per" "$hold"
}

# big_reference PER HOLD: the same single publish to PER subscribers of one
# process without Redis, for scale: how long one process's sweep takes.
big_reference() {
    local per=$1 hold=$2 port admin bpid i
    next_port; port=$PORT
    next_port; admin=$PORT
    start_corecast "" "$BIN/corecast" 127.0.0.1 "$port" "127.0.0.1:$admin" 0 \
        --max-connections 19000 >>"$OUT/big-server.log" 2>&1
    local args=(conns --url "ws://127.0.0.1:$port/ws" -n "$per" --hold "$hold" --subscribe-shared
        --expect-message --source-ips 127.0.7.1-127.0.7.4 --cpus 1 --server-pid "$SERVER_PID")
    echo "--- big-ref: corecast-bench ${args[*]}" >>"$OUT/summary.txt"
    timeout --foreground $((hold + 150)) "$BIN/corecast-bench" "${args[@]}" --label big-ref \
        >"$OUT/big-ref.txt" 2>"$OUT/big-ref.err" &
    bpid=$!
    PIDS+=("$bpid")
    for ((i = 0; i < 1800; i++)); do
        grep -q '^ready subscribed=' "$OUT/big-ref.err" && break
        sleep 0.1
    done
    say "    reference, one process without Redis, $per subscribers: publish $(publish_stamped 127.0.0.1 "$admin" conns-shared)"
    wait "$bpid" || true
    tail -n1 "$OUT/big-ref.txt" >"$OUT/big-ref.json"
    jq -r 'def ms: . / 1000 * 100 | round / 100;
        "    reference: received \(.message.received) of \(.message.subscribed), duplicates \(.message.duplicates); p50 \(.message.latency.p50_us | ms) ms, p99 \(.message.latency.p99_us | ms) ms, max \(.message.latency.max_us | ms) ms"
        ' "$OUT/big-ref.json" | tee -a "$OUT/summary.txt"
    stop_pid INT 10 "$SERVER_PID"
}

# ---- part 2: hosts in network namespaces
NS_PREFIX=cc$$
# make_hosts: a switch namespace with a bridge, and h1 h2 h3 r b (10.77.0.1-5)
# each with one veth into it.
make_hosts() {
    local sw=${NS_PREFIX}sw i=1 h
    ip netns add "$sw" && NETNS+=("$sw")
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    for h in h1 h2 h3 r b; do
        ip netns add "$NS_PREFIX$h" && NETNS+=("$NS_PREFIX$h")
        ip -n "$sw" link add "v$h" type veth peer name eth0 netns "$NS_PREFIX$h"
        ip -n "$sw" link set "v$h" master br0 up
        ip -n "$NS_PREFIX$h" addr add "10.77.0.$i/24" dev eth0
        ip -n "$NS_PREFIX$h" link set eth0 up
        ip -n "$NS_PREFIX$h" link set lo up
        i=$((i + 1))
    done
    ip netns exec "${NS_PREFIX}b" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
    for h in h1 h2 h3; do ip netns exec "$NS_PREFIX$h" sysctl -qw net.core.somaxconn=65535; done
}

part_hosts() {
    local secs=10 rounds=2 r i h rpid cluster=() single rates=(1000 5000 10000 20000 40000) rate t0 t1
    ((QUICK)) && secs=4 rounds=1 rates=(1000 10000 40000)
    say "== hosts: 3 corecast hosts + redis host + bench host (netns, one bridge)"
    make_hosts
    start_redis "${NS_PREFIX}r" 10.77.0.4 6379 1
    rpid=$REDIS_PID
    for i in 1 2 3; do
        h=${NS_PREFIX}h$i
        start_corecast "$h" "$BIN/corecast" 0.0.0.0 8080 127.0.0.1:9090 0 \
            --redis redis://10.77.0.4:6379 >>"$OUT/hosts-server.log" 2>&1
        cluster+=("$SERVER_PID")
    done
    start_corecast "${NS_PREFIX}h1" "$BIN/corecast" 0.0.0.0 8081 none 0 >>"$OUT/hosts-server.log" 2>&1
    single=$SERVER_PID
    say "    hosts 10.77.0.1-3: corecast --addr 0.0.0.0 --port 8080 --shards 1 --cpus 0 --redis redis://10.77.0.4:6379; single: 10.77.0.1:8081 without --redis; redis 10.77.0.4 on CPU 1; bench 10.77.0.5 on CPU 1"
    local urls3=(--url ws://10.77.0.1:8080/ws --url ws://10.77.0.2:8080/ws --url ws://10.77.0.3:8080/ws)
    local max=(fanout --subs 3000 --channels 10 --publishers 6 --size 64 --secs "$secs" --drain 2 --cpus 1)
    local fixed=(fanout --subs 3000 --channels 10 --publishers 6 --size 64 --rate 500 --secs "$secs" --drain 2 --cpus 1)
    for ((r = 1; r <= rounds; r++)); do
        t0=$(ticks "$rpid")
        bench "${NS_PREFIX}b" "hosts-cluster-max-$r" 120 "${max[@]}" "${urls3[@]}"
        t1=$(ticks "$rpid")
        echo "$((t1 - t0))" >"$OUT/hosts-cluster-max-$r.redis_ticks"
        bench "${NS_PREFIX}b" "hosts-single-max-$r" 120 "${max[@]}" --url ws://10.77.0.1:8081/ws
        t0=$(ticks "$rpid")
        bench "${NS_PREFIX}b" "hosts-cluster-fixed-$r" 120 "${fixed[@]}" "${urls3[@]}"
        t1=$(ticks "$rpid")
        echo "$((t1 - t0))" >"$OUT/hosts-cluster-fixed-$r.redis_ticks"
        bench "${NS_PREFIX}b" "hosts-single-fixed-$r" 120 "${fixed[@]}" --url ws://10.77.0.1:8081/ws
    done
    say "    run | published/s | delivered/s | p50 ms | p99 ms | max ms | lost/dup/reordered | redis us CPU per publish"
    for f in "$OUT"/hosts-*-{max,fixed}-?.json; do hosts_row "$f"; done
    say "    rate sweep: fanout --subs 300 --channels 100 --publishers 30 --size 64 --rate R (fan-out 3, one subscriber per host)"
    say "    rate | achieved/s | p50 ms | p99 ms | max ms | undelivered after 10 s drain/dup | redis CPU % of a core | redis us per publish | largest pub/sub client output buffer, bytes"
    for rate in "${rates[@]}"; do
        t0=$(ticks "$rpid")
        local w0=$EPOCHREALTIME
        omem_sampler "${NS_PREFIX}r" 10.77.0.4 6379 $((secs + 14)) >"$OUT/hosts-sweep-$rate.omem" &
        PIDS+=("$!")
        bench "${NS_PREFIX}b" "hosts-sweep-$rate" 120 fanout --subs 300 --channels 100 --publishers 30 \
            --size 64 --rate "$rate" --secs "$secs" --drain 10 --cpus 1 "${urls3[@]}"
        t1=$(ticks "$rpid")
        echo "$((t1 - t0))" >"$OUT/hosts-sweep-$rate.redis_ticks"
        wait "${PIDS[-1]}" || true
        sweep_row "$rate" "$((t1 - t0))" "$w0" "$EPOCHREALTIME" "$(sort -n "$OUT/hosts-sweep-$rate.omem" | tail -1)"
    done
    stop_pid INT 10 "${cluster[@]}" "$single" "$rpid"
    for h in "${NETNS[@]}"; do ip netns del "$h" 2>/dev/null || true; done
    NETNS=()
}

# hosts_row FILE: one table line of a hosts run (and its Redis CPU, if any).
hosts_row() {
    local f=$1 ticks="" hz
    hz=$(getconf CLK_TCK)
    [[ -f ${f%.json}.redis_ticks ]] && ticks=$(<"${f%.json}.redis_ticks")
    jq -r --arg ticks "$ticks" --argjson hz "$hz" '
        def r2: . * 100 | round / 100;
        "    \(.label) | \(.published_per_s | round) | \(.delivered_per_s | round) | \(.latency.p50_us / 1000 | r2) | \(.latency.p99_us / 1000 | r2) | \(.latency.max_us / 1000 | r2) | \(.lost)/\(.duplicated)/\(.out_of_order) | "
        + (if $ticks == "" then "-" else ($ticks | tonumber) / $hz * 1e6 / .published | r2 | tostring end)
        ' "$f" | tee -a "$OUT/summary.txt"
}

# omem_sampler NS ADDR PORT SECS: every 0.5 s for SECS, the largest output
# buffer (omem) of Redis's pub/sub clients, one number a line: how far the
# processes' subscriptions fall behind (Redis cuts one at 32 MB).
omem_sampler() {
    local i
    for ((i = 0; i < $4 * 2; i++)); do
        in_ns "$1" redis-cli -h "$2" -p "$3" client list 2>/dev/null \
            | awk '/ sub=[1-9]/ { for (f = 1; f <= NF; f++) if ($f ~ /^omem=/) { v = substr($f, 6); if (v > m) m = v } }
                   END { print m + 0 }'
        sleep 0.5
    done
}

# sweep_row RATE TICKS T0 T1 OMEM: one line of the rate sweep; Redis CPU over the
# bench's wall time (ramp and drain included, so the % is a lower bound of
# the publishing phase's).
sweep_row() {
    local f=$OUT/hosts-sweep-$1.json hz
    hz=$(getconf CLK_TCK)
    jq -r --argjson ticks "$2" --argjson hz "$hz" --arg omem "$5" --argjson wall "$(awk -v a="$3" -v b="$4" 'BEGIN { printf "%.3f", b - a }')" '
        def r2: . * 100 | round / 100;
        "    \(.rate) | \(.published_per_s | round) | \(.latency.p50_us / 1000 | r2) | \(.latency.p99_us / 1000 | r2) | \(.latency.max_us / 1000 | r2) | \(.lost)/\(.duplicated) | \($ticks / $hz / $wall * 100 | r2) | \($ticks / $hz * 1e6 / ([.published, 1] | max) | r2) | \($omem)"
        ' "$f" | tee -a "$OUT/summary.txt"
}

# ---- part 3: embedded mode before and after Redis mode
part_embedded() {
    local secs=15 rounds=2 r kind bin s0 s1 rt0 rt1 rport extra
    ((QUICK)) && secs=5 rounds=1
    if [[ -z $OLD_BIN ]]; then
        OLD_BIN=/tmp/cc-old/target/release/corecast
        if [[ ! -x $OLD_BIN ]]; then
            [[ -d /tmp/cc-old ]] || git -C "$ROOT" worktree add --detach /tmp/cc-old "$OLD_REV"
            say "    building $OLD_REV in /tmp/cc-old (own target dir)"
            (cd /tmp/cc-old && CARGO_TARGET_DIR=/tmp/cc-old/target timeout 1500 cargo build --release -q -p corecast)
        fi
    fi
    say "== embedded: fan-out 5,000 x 1 at 40 pub/s, ${secs}s; old = $OLD_BIN ($OLD_REV), new = $BIN/corecast"
    say "    server: taskset -c 0 corecast --addr 127.0.0.1 --port P --shards 1 --cpus 0 --admin-addr none [--redis redis://127.0.0.1:R (redis-server on CPU 1)]"
    say "    bench:  corecast-bench fanout --url ws://127.0.0.1:P/ws --subs 5000 --channels 1 --publishers 1 --size 64 --rate 40 --secs $secs --drain 2 --cpus 1"
    next_port; rport=$PORT
    start_redis "" 127.0.0.1 "$rport" 1
    say "    row | deliveries | server us CPU per delivery | redis us CPU per delivery | p50 ms | p99 ms | lost/dup/reordered"
    for ((r = 1; r <= rounds; r++)); do
        for kind in old new redis; do
            bin=$BIN/corecast extra=()
            [[ $kind == old ]] && bin=$OLD_BIN
            [[ $kind == redis ]] && extra=(--redis "redis://127.0.0.1:$rport")
            next_port
            start_corecast "" "$bin" 127.0.0.1 "$PORT" none 0 "${extra[@]}" >>"$OUT/embedded-server.log" 2>&1
            s0=$(ticks "$SERVER_PID") rt0=$(ticks "$REDIS_PID")
            bench "" "embedded-$kind-$r" 120 fanout --url "ws://127.0.0.1:$PORT/ws" --subs 5000 --channels 1 \
                --publishers 1 --size 64 --rate 40 --secs "$secs" --drain 2 --cpus 1
            s1=$(ticks "$SERVER_PID") rt1=$(ticks "$REDIS_PID")
            stop_pid INT 10 "$SERVER_PID"
            embedded_row "$OUT/embedded-$kind-$r.json" $((s1 - s0)) $((rt1 - rt0))
        done
    done
    stop_pid INT 10 "$REDIS_PID"
}

# embedded_row FILE SERVER_TICKS REDIS_TICKS: one row of part 3.
embedded_row() {
    jq -r --argjson st "$2" --argjson rt "$3" --argjson hz "$(getconf CLK_TCK)" '
        def r3: . * 1000 | round / 1000;
        "    \(.label) | \(.delivered) | \($st / $hz * 1e6 / ([.delivered, 1] | max) | r3) | \($rt / $hz * 1e6 / ([.delivered, 1] | max) | r3) | \(.latency.p50_us / 1000 | r3) | \(.latency.p99_us / 1000 | r3) | \(.lost)/\(.duplicated)/\(.out_of_order)"
        ' "$1" | tee -a "$OUT/summary.txt"
}

echo "== building release binaries"
(cd "$ROOT" && cargo build --release -q -p corecast -p corecast-bench)
raise_sysctls "net.ipv4.ip_local_port_range=1024 65535" net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535 net.core.netdev_max_backlog=16384 fs.file-max=4194304
{
    meta_lines "$ROOT" "$(nproc)"
    echo "redis: $(redis-server --version)"
    echo "mode: $([[ $QUICK == 1 ]] && echo quick || echo full), parts: ${ONLY:-big,hosts,embedded}"
} >"$OUT/meta.txt"
tee -a "$OUT/summary.txt" <"$OUT/meta.txt"
want big && part_big
want hosts && part_hosts
want embedded && part_embedded
say "results: $OUT"
