#!/usr/bin/env bash
# Runs every test: unit and integration tests of the workspace (the
# integration tests start the real corecast binary on 127.0.0.1), then the
# shell tests of the tuning scripts. Needs only a Rust toolchain and bash.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace
bash tests/scripts/test_tuning.sh
