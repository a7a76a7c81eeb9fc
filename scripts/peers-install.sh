#!/usr/bin/env bash
# Installs what the benchmark's reference peers (bench/peers/) need, from the
# package registries only. Idempotent: a second run checks and changes nothing.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/peers-install.sh [--help]

Installs the reference peer servers' dependencies (bench/peers/):
  1. Debian packages, only if missing: libuv1 (socketify loads libuv.so.1),
     python3-venv (only if the Python has no working venv/ensurepip),
     nodejs + npm (only if node/npm are not on PATH).
  2. A Python venv at bench/peers/.venv with the pinned versions in
     bench/peers/requirements.txt (websockets, uvloop, socketify, ...).
     Reinstalled only when requirements.txt or the Python changed.
  3. `npm ci` in bench/peers/node_ws (ws, pinned by package-lock.json).
     Rerun only when package-lock.json changed.

Environment:
  PYTHON   Python interpreter for the venv (default: python3; needs >= 3.11,
           which websockets 17 requires)

Run as root or with sudo available for the apt step (skipped when nothing is
missing). Then: scripts/peers-smoke.sh
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) echo "peers-install: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=$ROOT/bench/peers
VENV=$PEERS/.venv
NODE_DIR=$PEERS/node_ws
PY=${PYTHON:-python3}
changed=0

say() { echo "peers-install: $*"; }
die() { echo "peers-install: error: $*" >&2; exit 1; }

# ---- 1. Debian packages ---------------------------------------------------
have_deb() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *'install ok installed'* ]]; }

command -v "$PY" >/dev/null || die "no $PY on PATH (set PYTHON=...)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$("$PY" --version 2>&1) is too old: websockets 17 needs Python >= 3.11 (set PYTHON=...)"

missing=()
if command -v dpkg-query >/dev/null; then
    have_deb libuv1 || missing+=(libuv1)
else
    say "no dpkg: make sure libuv.so.1 is installed (socketify needs it)"
fi
if [[ ! -x $VENV/bin/python ]] && ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "missing ${missing[*]}: run as root or install sudo"
        SUDO=(sudo)
    fi
    say "apt: installing ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    # Through env: sudo's env_reset would drop a DEBIAN_FRONTEND set before it.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    changed=1
else
    say "apt: libuv1 present, nothing to install"
fi

# ---- 2. Python venv ---------------------------------------------------------
py_id=$("$PY" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')
want="$(sha256sum "$PEERS/requirements.txt" | cut -d' ' -f1) $py_id"
stamp=$VENV/.peers-installed

if [[ -x $VENV/bin/python ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
    say "venv: $VENV is broken (its Python is gone); recreating"
    rm -rf "$VENV"
fi
if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]] &&
    "$VENV/bin/python" -c 'import websockets, uvloop, socketify' 2>/dev/null; then
    say "venv: $VENV up to date"
else
    if [[ ! -x $VENV/bin/python ]]; then
        say "venv: creating $VENV with $("$PY" --version 2>&1)"
        "$PY" -m venv "$VENV"
    fi
    say "venv: pip install -r bench/peers/requirements.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$PEERS/requirements.txt"
    "$VENV/bin/python" -c 'import websockets, uvloop, socketify' ||
        die "the venv's packages do not import (see above)"
    echo "$want" >"$stamp"
    changed=1
fi

# ---- 3. node ws -------------------------------------------------------------
lock_sum=$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)
nstamp=$NODE_DIR/node_modules/.peers-installed
if [[ -f $nstamp && $(cat "$nstamp") == "$lock_sum $(node --version)" ]]; then
    say "npm: bench/peers/node_ws/node_modules up to date"
else
    say "npm: npm ci in bench/peers/node_ws"
    # --ignore-scripts: bufferutil's install script would only compile when
    # its shipped prebuilt binary does not fit; the prebuilt one is used.
    (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_sum $(node --version)" >"$nstamp"
    changed=1
fi

# ---- summary ----------------------------------------------------------------
versions=$("$VENV/bin/python" - <<'EOF'
import sys
from importlib.metadata import version
print(f"python {sys.version.split()[0]}, " + ", ".join(
    f"{p} {version(p)}" for p in ("websockets", "uvloop", "socketify", "cffi")))
EOF
)
libuv=$(dpkg-query -W -f='${Version}' libuv1 2>/dev/null || echo '?')
ws=$(cd "$NODE_DIR" && node -p 'require("ws/package.json").version')
say "versions: $versions; libuv1 $libuv; node $(node --version), ws $ws"
if ((changed)); then
    say "done"
else
    say "nothing changed"
fi
