#!/bin/bash
# One fresh pinned server per run; server utime+stime over the whole bench run / deliveries.
cd /work/main
P=18555
run() { # label server-args -- bench-args
  local label=$1; shift; local sargs=(); while [[ $1 != -- ]]; do sargs+=("$1"); shift; done; shift
  taskset -c 0 target/release/corecast --port $P --addr 127.0.0.1 --shards 1 --cpus 0 --admin-addr none "${sargs[@]}" > /dev/null 2>&1 &
  local pid=$!
  for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.05; done
  local t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  taskset -c 1 target/release/corecast-bench fanout --url ws://127.0.0.1:$P/ws --cpus 1 --drain 2 --label $label "$@" > /work/measure/ab2/$label.out 2>&1
  local t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null
  local line=$(grep '^{' /work/measure/ab2/$label.out | tail -1)
  python3 -c "
import json,sys; d=json.loads(sys.argv[1]); t=(int(sys.argv[2])-int(sys.argv[3]))/100.0
print(f\"{sys.argv[4]:28s} delivered={d['delivered']:>9} lost={d['lost']} dup={d['duplicated']} ooo={d['out_of_order']} cpu_s={t:.2f} us_per_delivery={t*1e6/max(d['delivered'],1):.2f}\")" "$line" $t1 $t0 $label | tee -a /work/measure/ab2/results.txt
}
for r in 1 2 3; do
  run z5000-plain-$r --compression on -- --subs 5000 --channels 1 --publishers 1 --size 1024 --text-data --rate 20 --secs 10
  run z5000-deflate-$r --compression on -- --subs 5000 --channels 1 --publishers 1 --size 1024 --text-data --rate 20 --secs 10 --compression
  run enc100-json-$r -- --subs 1000 --channels 100 --publishers 4 --size 64 --rate 2000 --secs 10
  run enc100-msgpack-$r -- --subs 1000 --channels 100 --publishers 4 --size 64 --rate 2000 --secs 10 --encoding msgpack
  run enc5000-json-$r -- --subs 5000 --channels 1 --publishers 1 --size 64 --rate 20 --secs 10
  run enc5000-msgpack-$r -- --subs 5000 --channels 1 --publishers 1 --size 64 --rate 20 --secs 10 --encoding msgpack
done
