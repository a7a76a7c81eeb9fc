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

# ---- CPU caps (--cap PCT): a cgroup per cap whose CPU quota is PCT% of one
# CPU. cgroup v1 (a child of the cpu controller's mount: cpu.cfs_period_us
# 100000, cpu.cfs_quota_us PCT*1000) is used where the machine has it, else
# cgroup v2 (cpu.max "PCT*1000 100000" in a cgroup2 mount whose
# cgroup.controllers lists cpu). $CORECAST_CGROUP_ROOT (default
# /sys/fs/cgroup) lets the tests use a fake tree; with it set, the root check
# is skipped. Globals: CAPS (the caps asked for), CG_VERSION (v1 or v2),
# CG_BASE (where groups are made), CG_DIR (the group made last), CG_DIRS
# (every group still to remove).

# The CFS period: 100 ms, the kernel's default, so a 25% cap is 25 ms of
# CPU in every 100 ms.
CAP_PERIOD_US=100000
CAPS=() CG_VERSION="" CG_BASE="" CG_DIR="" CG_DIRS=()

# add_caps LIST: appends to CAPS each cap in LIST (comma- or space-separated
# whole percentages of one CPU, 1-100), skipping repeats. Prints an error
# and returns 1 at the first bad value; an empty LIST is bad.
add_caps() {
    local pct seen=0 c dup list=()
    read -r -a list <<<"${1//,/ }"
    for pct in "${list[@]}"; do
        seen=1
        if [[ ! $pct =~ ^[0-9]+$ ]] || ((10#$pct < 1 || 10#$pct > 100)); then
            echo "bad --cap value '$pct': a whole percentage of one CPU, 1-100" >&2
            return 1
        fi
        pct=$((10#$pct)) dup=0
        for c in "${CAPS[@]}"; do [[ $c != "$pct" ]] || dup=1; done
        ((dup)) || CAPS+=("$pct")
    done
    ((seen)) || { echo "bad --cap value '$1': a whole percentage of one CPU, 1-100" >&2; return 1; }
}

# cap_quota_us PCT: the CFS quota, in microseconds per CAP_PERIOD_US, of a
# PCT% cap.
cap_quota_us() { echo $(($1 * CAP_PERIOD_US / 100)); }

# cgroup_detect ROOT: sets CG_VERSION and CG_BASE from the cgroup mounts
# under ROOT: v1 if ROOT/cpu has cpu.cfs_quota_us, else v2 at ROOT/unified
# (hybrid) or ROOT (unified) if its cgroup.controllers lists cpu. Returns 1
# when there is no cpu controller to use.
cgroup_detect() {
    local root=$1 dir words=()
    CG_VERSION="" CG_BASE=""
    if [[ -f $root/cpu/cpu.cfs_quota_us ]]; then
        CG_VERSION=v1 CG_BASE=$root/cpu
        return 0
    fi
    for dir in "$root/unified" "$root"; do
        [[ -f $dir/cgroup.controllers ]] || continue
        read -r -a words <"$dir/cgroup.controllers" || true
        if [[ " ${words[*]} " == *" cpu "* ]]; then
            CG_VERSION=v2 CG_BASE=$dir
            return 0
        fi
    done
    return 1
}

# cap_preflight: refuses (message on stderr, status 1) unless this is root
# (or a fake tree) and a cpu controller can be written; sets CG_VERSION and
# CG_BASE.
cap_preflight() {
    local root=${CORECAST_CGROUP_ROOT:-/sys/fs/cgroup}
    if [[ -z ${CORECAST_CGROUP_ROOT:-} ]] && ((EUID != 0)); then
        echo "--cap needs root: it creates a cgroup and moves the servers into it" >&2
        return 1
    fi
    if ! cgroup_detect "$root"; then
        echo "--cap: no cpu controller: neither $root/cpu/cpu.cfs_quota_us (cgroup v1) nor cpu in cgroup.controllers of $root/unified or $root (cgroup v2)" >&2
        return 1
    fi
    if [[ ! -w $CG_BASE ]]; then
        echo "--cap: cannot create a cgroup in $CG_BASE (not writable)" >&2
        return 1
    fi
}

# cgroup_describe: one line naming the cgroup version and files used.
cgroup_describe() {
    case $CG_VERSION in
        v1) echo "cgroup v1, cpu controller at $CG_BASE (cpu.cfs_period_us $CAP_PERIOD_US, cpu.cfs_quota_us PCT*1000)" ;;
        v2) echo "cgroup v2 at $CG_BASE (cpu.max \"PCT*1000 $CAP_PERIOD_US\")" ;;
        *) echo "no cgroup" ;;
    esac
}

# cgroup_create PCT: makes a group under CG_BASE named after PCT and this
# shell's pid (unique among running scripts), sets its quota to PCT% of one
# CPU, sets CG_DIR and adds it to CG_DIRS. Returns 1 (message on stderr)
# if any step fails; a group made before the failure is still in CG_DIRS.
cgroup_create() {
    local pct=$1 dir quota words=()
    dir=$CG_BASE/corecast-cap$pct-$$
    quota=$(cap_quota_us "$pct")
    mkdir "$dir" || { echo "--cap: cannot create $dir" >&2; return 1; }
    CG_DIRS+=("$dir")
    CG_DIR=$dir
    if [[ $CG_VERSION == v1 ]]; then
        { echo "$CAP_PERIOD_US" >"$dir/cpu.cfs_period_us" && echo "$quota" >"$dir/cpu.cfs_quota_us"; } 2>/dev/null
    else
        # A v2 child has cpu.max only once its parent hands the controller down.
        read -r -a words <"$CG_BASE/cgroup.subtree_control" 2>/dev/null || true
        if [[ " ${words[*]} " != *" cpu "* ]]; then
            echo +cpu 2>/dev/null >"$CG_BASE/cgroup.subtree_control"
        fi
        echo "$quota $CAP_PERIOD_US" 2>/dev/null >"$dir/cpu.max"
    fi || { echo "--cap: cannot set the quota of $dir" >&2; return 1; }
}

# cgroup_move PID [DIR]: moves process PID and each of its threads into DIR
# (default CG_DIR); threads it starts later are born there. v1: the process
# through cgroup.procs, then every /proc/PID/task/* through tasks; v2 moves
# a process's threads together, through cgroup.procs. Returns 1 if PID
# could not be moved (a thread that exits meanwhile is not an error).
cgroup_move() {
    local pid=$1 dir=${2:-$CG_DIR} task
    echo "$pid" 2>/dev/null >>"$dir/cgroup.procs" || {
        echo "--cap: cannot move pid $pid into $dir" >&2
        return 1
    }
    [[ $CG_VERSION == v1 ]] || return 0
    for task in "/proc/$pid/task/"*; do
        [[ -e $task ]] || continue
        echo "${task##*/}" 2>/dev/null >>"$dir/tasks" || true
    done
}

# cgroup_path_of VERSION: reads a /proc/PID/cgroup file on stdin and prints
# the path of its cpu group (v1: the line whose controller list has cpu;
# v2: the "0::" line).
cgroup_path_of() {
    local line id ctl path
    while IFS= read -r line; do
        id=${line%%:*} line=${line#*:}
        ctl=${line%%:*} path=${line#*:}
        if [[ $1 == v1 && ",$ctl," == *,cpu,* ]] || [[ $1 == v2 && $id == 0 && -z $ctl ]]; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

# cgroup_verify PID [DIR]: true if every thread of PID is in DIR (default
# CG_DIR); else prints the threads that are not, on stderr.
cgroup_verify() {
    local pid=$1 dir=${2:-$CG_DIR} want task path bad=()
    want=/${dir#"$CG_BASE"/}
    for task in "/proc/$pid/task/"*; do
        [[ -r $task/cgroup ]] || continue
        path=$(cgroup_path_of "$CG_VERSION" <"$task/cgroup") || path="?"
        [[ $path == "$want" ]] || bad+=("${task##*/}:$path")
    done
    ((${#bad[@]} == 0)) && return 0
    echo "--cap: threads of $pid outside $want: ${bad[*]}" >&2
    return 1
}

# cgroup_stat [DIR]: DIR's (default CG_DIR) cpu.stat as one line of
# key=value (periods, throttled periods and time), read without forking.
cgroup_stat() {
    local dir=${1:-$CG_DIR} k v fields=()
    [[ -r $dir/cpu.stat ]] || return 0
    while read -r k v; do fields+=("$k=$v"); done <"$dir/cpu.stat"
    echo "${fields[*]}"
}

# cgroup_remove DIR: moves whatever is still in DIR back to its parent,
# removes DIR and drops it from CG_DIRS. A fake tree (tests) holds plain
# files, which rmdir cannot remove, so there it is removed with rm.
cgroup_remove() {
    local dir=$1 pid keep=() d
    if [[ -d $dir ]]; then
        if [[ -r $dir/cgroup.procs ]]; then
            while read -r pid; do
                echo "$pid" 2>/dev/null >"${dir%/*}/cgroup.procs" || true
            done <"$dir/cgroup.procs"
        fi
        if ! rmdir "$dir" 2>/dev/null; then
            if [[ -n ${CORECAST_CGROUP_ROOT:-} ]]; then
                rm -rf -- "$dir"
            else
                echo "warning: could not remove cgroup $dir" >&2
            fi
        fi
    fi
    for d in "${CG_DIRS[@]}"; do [[ $d == "$dir" ]] || keep+=("$d"); done
    CG_DIRS=("${keep[@]}")
}

# cgroup_remove_all: removes every group in CG_DIRS (for EXIT traps).
cgroup_remove_all() {
    local d
    for d in "${CG_DIRS[@]}"; do cgroup_remove "$d"; done
}

# steady_cpu FILE BASE EXPECT SECS [HZ]: CPU-seconds per second of a server
# over a run's steady window, from a samples FILE of "t ticks fds" lines
# (t: $EPOCHREALTIME, ticks: utime+stime, fds: open descriptors). The
# window opens 1 s after the fds first reach BASE + 98% of EXPECT (every
# connection held) and closes 0.5 s before SECS after that, as in
# compare.sh. Prints nothing when the window has fewer than two samples.
steady_cpu() {
    awk -v base="$2" -v expect="$3" -v secs="$4" -v hz="${5:-$(getconf CLK_TCK)}" '
        /^#/ || NF < 3 { next }
        { t[n] = $1; k[n] = $2; f[n] = $3; n++ }
        END {
            for (i = 0; i < n; i++) if (f[i] - base >= 0.98 * expect) { ready = t[i]; break }
            if (ready == "") exit
            t0 = ready + 1; t1 = ready + secs - 0.5
            for (i = 0; i < n; i++) if (t[i] >= t0 && t[i] <= t1) { if (a == "") a = i; b = i }
            if (a == "" || b == a || t[b] <= t[a]) exit
            printf "%.3f\n", (k[b] - k[a]) / hz / (t[b] - t[a])
        }' "$1"
}
