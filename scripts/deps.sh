#!/usr/bin/env bash
# deps.sh: installs the real services and tools the tests start themselves,
# when they are missing: Redis 7 (`redis-server`, Debian) for the scale-out
# tests, nginx (Debian) for the load-balancer test, and the npm packages
# pinned in tests/browser/package-lock.json (`npm ci`, again only when that
# lockfile changed; the --demo SDK check reads them). Never starts or
# enables a system service: the tests run their own instances on free ports
# and stop them. Quiet when all is present.
#
# Usage: scripts/deps.sh
#
# Needs root and apt-get to install; without them it only says what is
# missing, and the tests that need it fail with a message naming it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

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

# tests/browser's npm packages (centrifuge, playwright-core), exactly as
# locked. The stamp is the lockfile they were installed from.
browser="$root/tests/browser"
stamp="$browser/node_modules/.corecast-installed-lock"
if command -v npm >/dev/null 2>&1 && ! cmp -s "$browser/package-lock.json" "$stamp"; then
    echo "deps.sh: npm ci in tests/browser (pinned by its package-lock.json)" >&2
    if (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
        cp "$browser/package-lock.json" "$stamp"
    else
        echo "deps.sh: npm ci in tests/browser failed; the tests that need them fail naming it" >&2
    fi
fi
exit 0
