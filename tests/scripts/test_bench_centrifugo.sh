#!/usr/bin/env bash
# test_bench_centrifugo.sh: `corecast-bench --encoding centrifugo` and
# `centrifugo-protobuf` against a real server that requires a token: the
# bench's /ws connections go to /connection/websocket, connect with their
# own token, subscribe and publish in Centrifugo's protocol, and fan-out
# delivers every message once, in order; `conns --expect-message` counts a
# `POST /api/publish` at every Centrifugo subscriber.
#
# Needs the corecast and corecast-bench binaries: builds them (debug)
# unless CORECAST_BIN and CORECAST_BENCH point at them. Every step is under
# `timeout`; the server is stopped on exit. Ends with "N passed, M failed".
#
# Usage: bash tests/scripts/test_bench_centrifugo.sh
set -euo pipefail

# shellcheck source=tests/scripts/bench_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_server.sh"
secret="bench-centrifugo-test-secret"
# --require-auth: a connect without the connection's token would be refused.
start_server --jwt-hmac-secret "$secret" --require-auth

for encoding in centrifugo centrifugo-protobuf; do
    rc=0
    timeout 60 "$CORECAST_BENCH" fanout --url "ws://127.0.0.1:$port/ws" --jwt-hmac-secret "$secret" \
        --encoding "$encoding" --subs 20 --channels 2 --publishers 2 --rate 400 --secs 1 \
        >"$tmp/bench.out" 2>"$tmp/bench.err" || rc=$?
    json=$(tail -n 1 "$tmp/bench.out")
    check "fanout_${encoding}_exits_zero" test "$rc" = 0
    check "fanout_${encoding}_ok" grep -q '"ok":true' <<<"$json"
    check "fanout_${encoding}_says_its_encoding" grep -q "\"encoding\":\"$encoding\"" <<<"$json"
    check "fanout_${encoding}_lost_nothing" grep -q '"lost":0,' <<<"$json"
    check "fanout_${encoding}_delivered" grep -Eq '"delivered":[1-9][0-9]*,' <<<"$json"
done
# The deliveries were Centrifugo pushes: the server converted publications.
converted=$(curl -sf "http://127.0.0.1:$admin/metrics" |
    awk '/^corecast_converted_frames_total/ {n += $NF} END {print n + 0}')
check publications_were_converted_to_pushes test "$converted" -gt 0

n=20
timeout 30 "$CORECAST_BENCH" conns --url "ws://127.0.0.1:$port/ws" --jwt-hmac-secret "$secret" \
    --encoding centrifugo-protobuf -n "$n" --hold 20 --subscribe-shared --expect-message \
    >"$tmp/bench.out" 2>"$tmp/bench.err" &
bench=$!
for _ in $(seq 200); do
    grep -q '^ready subscribed=' "$tmp/bench.err" && break
    sleep 0.05
done
check conns_ready grep -q "^ready subscribed=$n\$" "$tmp/bench.err"
curl -sf -d "{\"channel\":\"conns-shared\",\"data\":{\"sent_unix_us\":${EPOCHREALTIME/./}}}" \
    "http://127.0.0.1:$admin/api/publish" >/dev/null
rc=0
wait "$bench" || rc=$?
json=$(tail -n 1 "$tmp/bench.out")
check conns_exits_zero test "$rc" = 0
check conns_counts_every_receipt grep -q "\"received\":$n," <<<"$json"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
