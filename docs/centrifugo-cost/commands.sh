#!/bin/bash
# What a Centrifugo-protocol client costs the server against a /ws client:
# idle memory per connection and CPU per delivery, one fresh pinned
# single-shard server per run, rows interleaved, three rounds. Server
# utime+stime over the whole bench run (ramp and drain included) divided by
# deliveries; RSS growth divided by connections (corecast-bench conns
# --server-pid). Every client authenticates (a user each), since a
# Centrifugo client must connect with a token first.
# Usage: docs/centrifugo-cost/commands.sh OUT_DIR [mem|cpu]   (release builds
# in target/release; both parts unless one is named: RSS per connection is
# not disturbed by CPU load, CPU per delivery wants a quiet machine)
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${1:?usage: commands.sh OUT_DIR [mem|cpu]}
PART=${2:-both}
mkdir -p "$OUT"
P=18655
S=centrifugo-cost-secret
start() {
    taskset -c 0 target/release/corecast --port $P --addr 127.0.0.1 --shards 1 --cpus 0 \
        --admin-addr none --jwt-hmac-secret $S >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.05; done
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null; }
cpu() { # label -- fanout args
    local label=$1; shift
    start
    local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    timeout 120 taskset -c 1 target/release/corecast-bench fanout --url ws://127.0.0.1:$P/ws --cpus 1 \
        --drain 2 --jwt-hmac-secret $S --label "$label" "$@" >"$OUT/$label.out" 2>&1
    local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
    stop
    python3 - "$(grep '^{' "$OUT/$label.out" | tail -1)" "$t1" "$t0" "$label" <<'PY' | tee -a "$OUT/results.txt"
import json, sys
d = json.loads(sys.argv[1]); t = (int(sys.argv[2]) - int(sys.argv[3])) / 100.0
print(f"{sys.argv[4]:30s} ok={d['ok']} delivered={d['delivered']:>9} lost={d['lost']} dup={d['duplicated']} "
      f"ooo={d['out_of_order']} cpu_s={t:.2f} us_per_delivery={t * 1e6 / max(d['delivered'], 1):.2f}")
PY
}
mem() { # label -- conns args
    local label=$1; shift
    start
    timeout 120 taskset -c 1 target/release/corecast-bench conns -n 8000 --hold 5 --url ws://127.0.0.1:$P/ws \
        --cpus 1 --server-pid "$pid" --jwt-hmac-secret $S --label "$label" "$@" >"$OUT/$label.out" 2>&1
    stop
    python3 - "$(grep '^{' "$OUT/$label.out" | tail -1)" "$label" <<'PY' | tee -a "$OUT/results.txt"
import json, sys
d = json.loads(sys.argv[1])
per = d.get("server_rss_per_conn") or d.get("server", {}).get("rss_per_conn")
print(f"{sys.argv[2]:30s} ok={d.get('ok')} open={d.get('open', d.get('opened'))} server_rss_per_conn={per}")
PY
}
for r in 1 2 3; do
    for enc in json centrifugo centrifugo-protobuf; do
        [[ $PART == cpu ]] || mem "mem-$enc-$r" --encoding $enc
    done
    [[ $PART == mem ]] && continue
    for enc in json centrifugo centrifugo-protobuf; do
        cpu "f100-$enc-$r" --subs 1000 --channels 100 --publishers 4 --size 64 --rate 2000 --secs 10 --encoding $enc
        cpu "f5000-$enc-$r" --subs 5000 --channels 1 --publishers 1 --size 64 --rate 20 --secs 10 --encoding $enc
    done
done
