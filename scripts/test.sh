#!/usr/bin/env bash
# Runs every test: unit and integration tests of the workspace (the
# integration tests start the real corecast binary on 127.0.0.1), then every
# shell test in tests/scripts/ (tuning scripts, bench CLI, CPU caps). Needs
# a Rust toolchain and bash; scripts/deps.sh first installs the services the
# tests start themselves (redis-server, nginx) and Node.js with the
# Centrifugo SDK the /connection/websocket tests run, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

cargo test --workspace
for test in tests/scripts/test_*.sh; do
    bash "$test"
done
