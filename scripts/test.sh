#!/usr/bin/env bash
# Runs every test: unit and integration tests of the workspace (the
# integration tests start the real corecast binary on 127.0.0.1), then every
# shell test in tests/scripts/ (tuning scripts, bench CLI, CPU caps). Needs
# only a Rust toolchain and bash.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace
for test in tests/scripts/test_*.sh; do
    bash "$test"
done
