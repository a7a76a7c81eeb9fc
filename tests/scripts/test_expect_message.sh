#!/usr/bin/env bash
# test_expect_message.sh: `corecast-bench conns --subscribe-shared
# --expect-message` against a real server: it prints `ready subscribed=N`
# once every connection is subscribed, then counts one `POST /api/publish`
# at every subscriber (received, duplicates) and its latency from the
# data's `sent_unix_us` stamp; it ends as soon as all have it, not at
# --hold. Also: the flag is refused without --subscribe-shared.
#
# Needs the corecast and corecast-bench binaries: builds them (debug)
# unless CORECAST_BIN and CORECAST_BENCH point at them. Every step is under
# `timeout`; the server is stopped on exit. Ends with "N passed, M failed".
#
# Usage: bash tests/scripts/test_expect_message.sh
set -euo pipefail

# shellcheck source=tests/scripts/bench_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_server.sh"
# shellcheck disable=SC2119 # no extra server arguments here
start_server

n=40
timeout 30 "$CORECAST_BENCH" conns --url "ws://127.0.0.1:$port/ws" -n "$n" --hold 20 \
    --subscribe-shared --expect-message >"$tmp/bench.out" 2>"$tmp/bench.err" &
bench=$!
for _ in $(seq 200); do
    grep -q '^ready subscribed=' "$tmp/bench.err" && break
    sleep 0.05
done
check ready_line_names_the_subscribed grep -q "^ready subscribed=$n\$" "$tmp/bench.err"
t0=$SECONDS
curl -sf -d "{\"channel\":\"conns-shared\",\"data\":{\"sent_unix_us\":${EPOCHREALTIME/./}}}" \
    "http://127.0.0.1:$admin/api/publish" >/dev/null
rc=0
wait "$bench" || rc=$?
json=$(tail -n 1 "$tmp/bench.out")
check exits_zero_when_all_received test "$rc" = 0
check ends_well_before_hold test $((SECONDS - t0)) -lt 10
check counts_every_receipt grep -q "\"received\":$n," <<<"$json"
check no_duplicates grep -q '"duplicates":0,' <<<"$json"
check one_latency_per_subscriber grep -q "\"latency\":{\"count\":$n," <<<"$json"

# Nothing published: the run says who is missing and fails (exit 2) at --hold.
timeout 30 "$CORECAST_BENCH" conns --url "ws://127.0.0.1:$port/ws" -n 5 --hold 1 \
    --subscribe-shared --expect-message >"$tmp/bench.out" 2>"$tmp/bench.err" && rc=0 || rc=$?
check missing_message_fails test "$rc" = 2
check missing_message_is_counted grep -q '"missing":5,' "$tmp/bench.out"

rc=0
timeout 10 "$CORECAST_BENCH" conns --url "ws://127.0.0.1:1/ws" -n 1 --expect-message >"$tmp/bench.out" 2>&1 || rc=$?
check needs_subscribe_shared grep -q "subscribe-shared" "$tmp/bench.out"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
