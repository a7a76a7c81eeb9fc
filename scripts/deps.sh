#!/usr/bin/env bash
# deps.sh: installs the real services and tools the tests start themselves,
# when they are missing: Redis 7 (`redis-server`, Debian) for the scale-out
# tests, nginx (Debian) for the load-balancer test, Chromium (Debian
# `chromium`) for the --demo page's browser test, and Node.js with npm
# (Debian `nodejs`, `npm`) for the tests that run the `centrifuge` SDK:
# tests/sdk (the Centrifugo SDK tests: the SDK and `ws`) and tests/browser
# (the --demo page in Chromium: the SDK and playwright-core), whose
# packages it installs with `npm ci` unless the lockfile is already
# installed. Never starts or enables a system service: the tests run their
# own instances on free ports and stop them. Quiet when all is present.
#
# Usage: scripts/deps.sh
#
# Needs root and apt-get to install; without them it only says what is
# missing, and the tests that need it fail with a message naming it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

# npm_install DIR: `npm ci` in tests/DIR unless the lockfile it installed
# last time (kept as node_modules/.corecast-lock) is the current one. A
# failure is reported, not fatal: the tests that need the packages fail
# naming them.
npm_install() {
    local dir=$root/tests/$1
    command -v npm >/dev/null 2>&1 || return 0
    if cmp -s "$dir/package-lock.json" "$dir/node_modules/.corecast-lock"; then
        return 0
    fi
    echo "deps.sh: npm ci in tests/$1 (pinned by its package-lock.json)" >&2
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
        cp "$dir/package-lock.json" "$dir/node_modules/.corecast-lock"
    else
        echo "deps.sh: npm ci in tests/$1 failed" >&2
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    :
elif [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
else
    echo "deps.sh: installing ${missing[*]} (Debian packages)" >&2
    apt-get update -qq
    # policy-rc.d 101 keeps the packages' postinst from starting system services.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
    fi
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    [ "$created_policy" = 1 ] && rm -f "$policy"
    # Belt and braces: stop anything a postinst started anyway.
    pkill -x redis-server 2>/dev/null || true
    pkill -x nginx 2>/dev/null || true
fi

npm_install sdk
npm_install browser
exit 0
