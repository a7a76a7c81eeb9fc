#!/usr/bin/env bash
# demo-screenshot.sh: retakes docs/demo.png, the picture of the --demo chat
# page in the docs: alice's page in the browser test (tests/it/demo.rs,
# tests/browser/chat.mjs) once she came back online and recovered the
# messages she missed, with bob beside her in the room.
#
# Usage: scripts/demo-screenshot.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/deps.sh
DEMO_SCREENSHOT="$root/docs/demo.png" \
    cargo test --test it -- --exact demo::page::two_browsers_chat_and_recover_after_going_offline
echo "docs/demo.png: $(wc -c < docs/demo.png) bytes"
