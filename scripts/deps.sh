#!/usr/bin/env bash
# deps.sh: installs the real services the tests start themselves, when they
# are missing: Redis 7 (`redis-server`, Debian) for the scale-out tests,
# nginx (Debian) for the load-balancer test, and Node.js with npm (Debian
# `nodejs`, `npm`) for the Centrifugo SDK tests, whose packages (the
# `centrifuge` SDK and `ws`, pinned by tests/sdk/package-lock.json) it
# installs with `npm ci` unless that lockfile is already installed. Never
# starts or enables a system service: the tests run their own instances on
# free ports and stop them.
#
# Usage: scripts/deps.sh
#
# Needs root and apt-get to install; without them it only says what is
# missing, and the tests that need it fail with a message naming it.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

root=$(cd "$(dirname "$0")/.." && pwd)

# npm_install: `npm ci` in tests/sdk unless the lockfile it installed last
# time (kept as node_modules/.corecast-lock) is the current one.
npm_install() {
    local dir=$root/tests/sdk
    command -v npm >/dev/null 2>&1 || return 0
    if cmp -s "$dir/package-lock.json" "$dir/node_modules/.corecast-lock"; then
        return 0
    fi
    echo "deps.sh: npm ci in tests/sdk (centrifuge SDK for the Centrifugo tests)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$dir/package-lock.json" "$dir/node_modules/.corecast-lock"
}

if [ ${#missing[@]} -eq 0 ]; then
    npm_install
    exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    npm_install
    exit 0
fi
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
npm_install
exit 0
