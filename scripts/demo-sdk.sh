#!/usr/bin/env bash
# demo-sdk.sh: refreshes demo/centrifuge.js, the centrifuge SDK's browser
# build that the binary serves at /demo/centrifuge.js, from the npm package
# tests/browser/package-lock.json pins (its dist/centrifuge.js, byte for
# byte, with the package's license beside it). tests/it/demo.rs fails when
# the committed copy and the installed package differ, so the two cannot
# drift apart silently.
#
# Usage: scripts/demo-sdk.sh
# Another SDK version: (cd tests/browser && npm install --save-exact
# centrifuge@X.Y.Z), then this script, then rebuild and run the tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
browser="$root/tests/browser"

(cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
cp "$browser/package-lock.json" "$browser/node_modules/.corecast-lock"
package="$browser/node_modules/centrifuge"
cp "$package/dist/centrifuge.js" "$root/demo/centrifuge.js"
cp "$package/LICENSE" "$root/demo/centrifuge.LICENSE"
version=$(node -p "require('$package/package.json').version")
echo "demo/centrifuge.js is centrifuge $version's dist/centrifuge.js ($(wc -c < "$root/demo/centrifuge.js") bytes)"
