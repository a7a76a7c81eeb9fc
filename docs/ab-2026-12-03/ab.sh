#!/bin/bash
# A/B: three server builds, interleaved, one fresh pinned single-shard server per run.
set -u
OUT=/work/measure/ab-yield; mkdir -p $OUT
P=18755
run() { # bin label bench-args...
  local bin=$1 label=$2; shift 2
  taskset -c 0 /tmp/ab/corecast-$bin --port $P --addr 127.0.0.1 --shards 1 --cpus 0 --admin-addr none >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.05; done
  local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  timeout 120 taskset -c 1 /tmp/ab/corecast-bench "$@" --cpus 1 --label $label > $OUT/$label.out 2>&1
  local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null
  python3 - "$(grep '^{' $OUT/$label.out | tail -1)" $t1 $t0 $label <<'PY' | tee -a $OUT/results.txt
import json, sys
d = json.loads(sys.argv[1]); t = (int(sys.argv[2]) - int(sys.argv[3])) / 100.0
n = d.get('delivered') or d.get('answered') or 1
rate = d.get('delivered_per_s') or d.get('round_trips_per_s')
print(f"{sys.argv[4]:24s} ok={d['ok']} n={n:>9} per_s={rate:>10.0f} cpu_s={t:.2f} us_per_msg={t*1e6/n:.2f}")
PY
}
for r in 1 2 3; do
  for b in A B C; do
    run $b fan5000-$b-$r fanout --url ws://127.0.0.1:$P/ws --drain 2 --subs 5000 --channels 1 --publishers 1 --size 64 --rate 20 --secs 10
  done
  for b in A B C; do
    run $b fan100-$b-$r fanout --url ws://127.0.0.1:$P/ws --drain 2 --subs 1000 --channels 100 --publishers 4 --size 64 --rate 2000 --secs 10
  done
  for b in A B C; do
    run $b echo-$b-$r echo --url ws://127.0.0.1:$P/echo -c 100 --size 64 --secs 8
  done
done
