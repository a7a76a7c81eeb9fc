#!/usr/bin/env python3
"""history-memory.py: server memory per stored history publication (issue 12).

Starts one single-shard corecast (release build) whose `h:` namespace keeps
every publication for an hour, publishes WARMUP then N publications of a
JSON string of SIZE bytes through the admin API (POST /api/publish, one
keep-alive connection), and prints the server's VmRSS growth per
publication; with --plain the channel keeps no history (the baseline: RSS
should not grow). Bounded: N publications, then the server is stopped.

  scripts/history-memory.py [--n 100000] [--size 64] [--plain] [--bin PATH]
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--n", type=int, default=100_000, help="publications measured")
ap.add_argument("--size", type=int, default=64, help="bytes of each JSON payload")
ap.add_argument("--plain", action="store_true", help="a channel without history")
ap.add_argument("--bin", default=os.path.join(root, "target/release/corecast"))
args = ap.parse_args()

cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
cfg.write('[namespaces.h]\nhistory_size = 10000000\nhistory_ttl = "1h"\n[namespaces.p]\n')
cfg.close()
server = subprocess.Popen(
    ["taskset", "-c", "0", args.bin, "--port", "0", "--addr", "127.0.0.1", "--shards", "1",
     "--cpus", "0", "--admin-addr", "127.0.0.1:0", "--config", cfg.name],
    stderr=subprocess.PIPE,
)
try:
    admin = None
    for raw in server.stderr:
        line = raw.decode(errors="replace")
        m = re.search(r"listening .* admin=(\S+)", line)
        if m:
            admin = m.group(1)
            break
    if admin is None:
        raise SystemExit("history-memory.py: the server did not start")
    host, port = admin.rsplit(":", 1)

    def rss():
        with open(f"/proc/{server.pid}/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0]) * 1024

    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"channel": "p:m" if args.plain else "h:m", "data": "x" * (args.size - 2)})

    def publish(n):
        for _ in range(n):
            conn.request("POST", "/api/publish", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"history-memory.py: publish answered {response.status}")

    publish(2_000)  # Warm-up: allocator arenas, tables.
    before, started = rss(), time.time()
    publish(args.n)
    after = rss()
    print(f"history={'off' if args.plain else 'on'} publications={args.n} size={args.size} "
          f"rss_growth={after - before} per_publication={(after - before) / args.n:.1f} "
          f"secs={time.time() - started:.1f}")
finally:
    server.kill()
    server.wait()
    os.unlink(cfg.name)
