# shellcheck shell=bash
# lib.sh: the helpers that bench.sh, compare.sh and profile.sh share. Sourced,
# never run; it defines functions only and changes no shell option. Helpers
# that read or set a global say which one.

# usage_from_header FILE: the comment block at the top of FILE, up to its
# `set -...` line, without the "# " prefixes (the script's --help).
usage_from_header() {
    awk 'NR > 1 && /^set /{exit} NR > 1 {sub(/^# ?/, ""); print}' "$1"
}

# cargo_target_dir ROOT: cargo's target directory as an absolute path:
# $CARGO_TARGET_DIR when set (a relative one is taken from the current
# directory, as cargo takes it), else ROOT/target. The scripts export the
# result as CARGO_TARGET_DIR, so the cargo they run from ROOT builds the
# binaries where they look for them.
cargo_target_dir() {
    local dir=${CARGO_TARGET_DIR:-$1/target}
    [[ $dir == /* ]] || dir=$PWD/$dir
    echo "$dir"
}

# want NAME: true if NAME is in the comma-separated global ONLY, or ONLY is
# empty (run everything).
want() { [[ -z $ONLY ]] || [[ ",$ONLY," == *",$1,"* ]]; }

# next_port: advances the global PORT to the next port that no local socket
# uses in any state. The benches' ephemeral ports span 1024-65535, so a fixed
# port can still be held by a TIME_WAIT socket from the previous run.
next_port() {
    PORT=$((PORT + 1))
    while [[ -n $(ss -Htan "( sport = :$PORT )" 2>/dev/null) ]]; do PORT=$((PORT + 1)); done
}

# stop_pid SIGNAL SECS PID...: sends SIGNAL to every PID (empty ones are
# skipped), waits up to SECS for each to exit, KILLs what is left, then reaps
# those that are children of this shell. All are signalled before any is
# waited for, so several servers drain in parallel.
stop_pid() {
    local sig=$1 secs=$2 pid
    shift 2
    for pid in "$@"; do
        [[ -z $pid ]] || kill -"$sig" "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        [[ -n $pid ]] || continue
        timeout "$secs" tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# git_desc ROOT: the commit checked out at ROOT, plus a note when anything
# that goes into the binaries or the measurement (src, bench, scripts,
# vendor, Cargo files) differs from it, staged or not; "unknown" outside git.
# Docs and results do not count, so writing them does not mark a run.
git_desc() {
    local sha rc=0
    sha=$(git -C "$1" rev-parse HEAD 2>/dev/null) || { echo unknown; return 0; }
    git -C "$1" diff --quiet HEAD -- src bench scripts vendor Cargo.toml Cargo.lock 2>/dev/null || rc=$?
    case $rc in
        0) echo "$sha" ;;
        1) echo "$sha (code modified since this commit: src, bench, scripts, vendor or Cargo files)" ;;
        *) echo "$sha (could not check for changes since this commit)" ;;
    esac
}

# meta_lines ROOT NCPU: the machine lines every results directory's meta.txt
# opens with. NCPU is passed in because a script that pinned itself to one
# CPU sees 1 from a plain `nproc`.
meta_lines() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git_desc "$1")"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $2 CPUs"
    echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "kernel: $(uname -r)"
    echo "nofile: soft $(ulimit -Sn) hard $(ulimit -Hn)"
}

# raise_sysctls [--proc-sys DIR] KEY=VALUE...: raises each kernel setting to
# at least VALUE and never lowers it: a live value that is already higher
# (systemd sets fs.file-max to 2^63-1) is kept. Multi-number values compare
# number by number; net.ipv4.ip_local_port_range is a range, so its low end
# only goes down and its high end only up. Prints a warning for a setting it
# cannot read or write. DIR (default /proc/sys) lets a test use a fake tree.
raise_sysctls() {
    local dir=/proc/sys kv key value path live words target
    if [[ ${1:-} == --proc-sys ]]; then dir=$2; shift 2; fi
    for kv in "$@"; do
        key=${kv%%=*} value=${kv#*=} words=()
        path=$dir/${key//.//}
        # Not $(<path): under errexit bash 5.2 exits when that cannot open
        # the file, whatever follows it. read also turns the kernel's tabs
        # into the single spaces the values are written with.
        read -r -a words 2>/dev/null <"$path" || true
        live="${words[*]}"
        if [[ -z $live ]]; then
            echo "warning: could not set $kv (cannot read $path)"
            continue
        fi
        target=$(raised_value "$key" "$live" "$value")
        [[ $target == "$live" ]] && continue
        { printf '%s\n' "$target" >"$path"; } 2>/dev/null \
            || echo "warning: could not set $key=$target (live: $live)"
    done
}

# raised_value KEY LIVE WANTED: the value raise_sysctls writes. A live value
# that cannot be compared (another shape, not numbers) gets WANTED.
raised_value() {
    local key=$1 live wanted raised=() i
    read -r -a live <<<"$2"
    read -r -a wanted <<<"$3"
    if ((${#live[@]} != ${#wanted[@]})); then echo "$3"; return; fi
    for i in "${!wanted[@]}"; do
        if [[ ! ${live[i]} =~ ^[0-9]+$ || ! ${wanted[i]} =~ ^[0-9]+$ ]]; then echo "$3"; return; fi
        if [[ $key == net.ipv4.ip_local_port_range && $i == 0 ]]; then
            if num_lt "${wanted[i]}" "${live[i]}"; then raised+=("${wanted[i]}"); else raised+=("${live[i]}"); fi
        else
            if num_lt "${live[i]}" "${wanted[i]}"; then raised+=("${wanted[i]}"); else raised+=("${live[i]}"); fi
        fi
    done
    echo "${raised[*]}"
}

# num_lt A B: A < B for unsigned decimal numbers of any length. Bash
# arithmetic is 64-bit signed, so numbers of 19 or more digits (2^63-1 has
# 19) are compared by length first, and as strings at equal length.
num_lt() {
    local a=${1#"${1%%[1-9]*}"} b=${2#"${2%%[1-9]*}"}
    if ((${#a} != ${#b})); then ((${#a} < ${#b})); return; fi
    if ((${#a} <= 18)); then ((10#${a:-0} < 10#${b:-0})); return; fi
    [[ $a < $b ]]
}

# stat_ticks LINE: utime+stime (clock ticks) from one /proc/PID/stat LINE,
# into the global TICKS. A bash builtin only, so samplers can call it
# without forking. The command name may hold spaces and ")", hence the cut
# after the last ") ".
stat_ticks() {
    local s=${1##*) }
    # shellcheck disable=SC2086
    set -- $s
    # shellcheck disable=SC2034  # the caller reads it
    TICKS=$((${12} + ${13}))
}
