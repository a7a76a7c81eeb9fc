#!/usr/bin/env bash
# deps.sh: installs the real services the tests start themselves, when they
# are missing: Redis 7 (`redis-server`, Debian) for the scale-out tests and
# nginx (Debian) for the load-balancer test. Never starts or enables a system
# service: the tests run their own instances on free ports and stop them.
#
# Usage: scripts/deps.sh
#
# Needs root and apt-get to install; without them it only says what is
# missing, and the tests that need it fail with a message naming it.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
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
exit 0
