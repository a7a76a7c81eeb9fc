#!/usr/bin/env bash
# Smoke-tests the benchmark's reference peers (bench/peers/), one at a time,
# on free loopback ports. Needs scripts/peers-install.sh to have run.
set -euo pipefail

case "${1:-}" in
    -h | --help)
        cat <<'EOF'
usage: scripts/peers-smoke.sh [PEER...]

PEER: python_websockets, socketify, node_ws (default: all three, in order).
For each: start it with --port P, wait for "listening port=P", check
GET /health, /echo (text + binary), /ws greeting, subscribe, publish with
id (ack + delivery to two subscribers), heartbeat and two error codes, then
SIGTERM it with a client still connected and check it exits 0.
One line per check, then "N passed, M failed"; exit status 1 on failure.
Bounded: every wait has a timeout, the whole run is killed after 58 s.
EOF
        exit 0
        ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=$ROOT/bench/peers
VPY=$PEERS/.venv/bin/python

if [[ ! -x $VPY || ! -d $PEERS/node_ws/node_modules/ws ]]; then
    echo "peers-smoke: peers not installed; run scripts/peers-install.sh first" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# smoke.py bounds every wait itself; this is the backstop (its peers get
# SIGKILL if it dies, via PR_SET_PDEATHSIG).
rc=0
timeout -k 2 58 "$VPY" "$PEERS/smoke.py" "$@" || rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "peers-smoke: timed out after 58 s"
    echo "0 passed, 1 failed"
fi
exit "$rc"
