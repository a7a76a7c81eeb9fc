#!/usr/bin/env bash
# check-tuning.sh: read-only check of whether this machine's limits allow N
# concurrent corecast connections. Prints each limit as OK, WARN or LOW
# with the exact command that fixes it. Exits 1 if anything blocks N.
# Runs unprivileged. docs/tuning.md explains every limit.
set -euo pipefail

readonly PROG=check-tuning.sh
# Descriptors corecast keeps for itself. Keep in sync with FD_RESERVE_BASE
# and FD_RESERVE_PER_SHARD in src/config/mod.rs.
readonly FD_RESERVE_BASE=64
readonly FD_RESERVE_PER_SHARD=96
# glommio refuses to start below this RLIMIT_MEMLOCK (its sys/uring.rs).
readonly MIN_MEMLOCK=$((512 * 1024))
# glommio registers --io-memory in each of its 3 rings (main, poll, latency).
readonly RINGS_PER_SHARD=3
# Kernel slab per established socket: the total slab growth per socket
# measured with 105,000 connections on Linux 6.18 (4.9-5.1 KiB; the objects
# themselves sum to ~3.7 KiB). See docs/tuning.md, "Memory math".
readonly KERNEL_BYTES_PER_SOCKET=5222
# corecast heap per idle /ws connection: 427 B, the highest reading of the
# same run (docs/benchmarks.md).
readonly HEAP_BYTES_PER_CONN=427
# What sysctl/99-corecast.conf and the systemd unit set, used in the fixes.
readonly CONF_NR_OPEN=2097152
readonly CONF_FILE_MAX=4194304
readonly CONF_SOMAXCONN=65535
readonly FULL_PORT_RANGE_WIDTH=64512 # "1024 65535"

usage() {
    cat <<EOF
Usage: $PROG -n N [--shards S] [--io-memory SIZE] [--pid PID] [--same-host]

Checks, without changing anything, whether this machine can hold N
concurrent corecast connections. Each limit is printed as:
  OK    enough for N
  WARN  N fits, but bursts (reconnect storms, mass close, fan-out) degrade
  LOW   blocks N
Each WARN and LOW line is followed by the exact command that fixes it.
Limits checked: per-process open files (soft/hard), fs.nr_open, fs.file-max,
fs.epoll.max_user_watches, net.core.somaxconn, the ephemeral port range
(for a load generator on this box), RLIMIT_MEMLOCK and kernel.io_uring_disabled (io_uring),
net.ipv4.tcp_mem and memory against an estimate for N sockets,
nf_conntrack_max (if loaded), tcp_max_orphans and tcp_max_tw_buckets.

Options:
  -n N              target number of concurrent connections (required)
  --shards S        corecast shards (default: CPUs this shell may run on, $(nproc))
  --io-memory SIZE  corecast's --io-memory (default 64KiB; K/M/G suffixes)
  --pid PID         check the limits of a running process (/proc/PID/limits)
                    instead of those a corecast started from this shell gets
  --same-host       the load generator runs on this machine too: count two
                    sockets and two descriptors per connection
  --proc-sys DIR    read kernel settings under DIR instead of /proc/sys (tests)
  -h, --help        show this help

Exit status: 0 if nothing blocks N, 1 if something does (a LOW line), 2 on
a usage error. Most fixes at once: sudo scripts/tune.sh
EOF
}

main() {
    parse_args "$@"
    local who="limits a corecast started from this shell gets"
    if [[ -n $pid ]]; then
        who="limits of pid $pid"
    fi
    echo "corecast tuning check: N=$n connections, $shards shard(s), $who"
    if ((same_host)); then
        echo "(load generator on this host: 2 sockets and 2 descriptors per connection)"
    fi
    printf '%-6s %-34s %s\n' STATUS LIMIT VALUE

    check_nofile
    check_nr_open
    check_file_max
    check_epoll_watches
    check_somaxconn
    check_port_range
    check_memlock
    check_io_uring
    check_tcp_mem
    check_memory
    check_conntrack
    check_orphans_and_time_wait
    summary
}

# Settings, from the command line.
n=
shards=
io_memory=$((64 * 1024))
pid=
same_host=0
proc_sys=/proc/sys
# Results, for the summary.
n_ok=0
n_warn=0
n_low=0
sysctl_fix=0

parse_args() {
    while (($# > 0)); do
        case $1 in
            -n | --connections)
                (($# >= 2)) || die_usage "$1 needs a number"
                n=$2
                shift
                ;;
            --connections=*) n=${1#*=} ;;
            -n*) n=${1#-n} ;;
            --shards)
                (($# >= 2)) || die_usage "--shards needs a number"
                shards=$2
                shift
                ;;
            --shards=*) shards=${1#*=} ;;
            --io-memory)
                (($# >= 2)) || die_usage "--io-memory needs a size"
                io_memory=$(parse_size "$2")
                shift
                ;;
            --io-memory=*) io_memory=$(parse_size "${1#*=}") ;;
            --pid)
                (($# >= 2)) || die_usage "--pid needs a process id"
                pid=$2
                shift
                ;;
            --pid=*) pid=${1#*=} ;;
            --same-host) same_host=1 ;;
            --proc-sys)
                (($# >= 2)) || die_usage "--proc-sys needs a directory"
                proc_sys=$2
                shift
                ;;
            --proc-sys=*) proc_sys=${1#*=} ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die_usage "unknown argument '$1'" ;;
        esac
        shift
    done
    [[ -n $n ]] || die_usage "-n N is required (the number of connections to check for)"
    [[ $n =~ ^[1-9][0-9]{0,11}$ ]] || die_usage "-n wants a whole number from 1 to 10^12, not '$n'"
    shards=${shards:-$(nproc)}
    [[ $shards =~ ^[1-9][0-9]{0,3}$ ]] || die_usage "--shards wants a whole number from 1 to 9999, not '$shards'"
    if [[ -n $pid && ! -r /proc/$pid/limits ]]; then
        die_usage "--pid $pid: no such process (cannot read /proc/$pid/limits)"
    fi
    [[ -d $proc_sys ]] || die_usage "--proc-sys $proc_sys is not a directory"
}

die_usage() {
    echo "$PROG: $1" >&2
    echo "Try '$PROG --help'." >&2
    exit 2
}

# "64KiB", "1M", "4096" -> bytes (K/M/G are powers of 1024, as in corecast).
parse_size() {
    local s=$1
    if [[ ! $s =~ ^([0-9]{1,12})[[:space:]]*([KkMmGg]?)(i?[Bb])?$ ]]; then
        die_usage "not a size: '$s' (try 65536, 64KiB or 1MiB)"
    fi
    local num=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2],,}
    case $unit in
        k) echo $((10#$num << 10)) ;;
        m) echo $((10#$num << 20)) ;;
        g) echo $((10#$num << 30)) ;;
        *) echo $((10#$num)) ;;
    esac
}

# Prints one result line and any further lines (fixes, notes) under it.
report() {
    local status=$1 name=$2 detail=$3
    shift 3
    case $status in
        OK) n_ok=$((n_ok + 1)) ;;
        WARN) n_warn=$((n_warn + 1)) ;;
        LOW) n_low=$((n_low + 1)) ;;
    esac
    printf '%-6s %-34s %s\n' "$status" "$name" "$detail"
    local line
    for line in "$@"; do
        printf '       %s\n' "$line"
    done
}

# Value of a sysctl with whitespace collapsed, or "" if this kernel lacks it.
read_sysctl() {
    local path="$proc_sys/${1//.//}"
    local -a words
    [[ -r $path ]] || return 0
    read -r -a words <"$path" || true
    printf '%s\n' "${words[*]}"
}

ceil_div() {
    echo $((($1 + $2 - 1) / $2))
}

max() {
    if (($1 > $2)); then echo "$1"; else echo "$2"; fi
}

# Bytes as "1.5 GiB" / "384.0 MiB" / "12.0 KiB".
human() {
    awk -v b="$1" 'BEGIN {
        split("B KiB MiB GiB TiB", u, " "); i = 1
        while (b >= 1024 && i < 5) { b /= 1024; i++ }
        printf(b == int(b) ? "%d %s" : "%.1f %s", b, u[i])
    }'
}

# One of: soft/hard RLIMIT values in bytes or count, "unlimited" as -1.
# $1: the /proc/PID/limits row name; $2: the ulimit flag; $3: ulimit's unit.
read_limit() {
    local row=$1 flag=$2 unit=$3 soft hard v
    if [[ -n $pid ]]; then
        read -r soft hard < <(awk -v row="$row" 'index($0, row) == 1 {
            sub(row, ""); print $1, $2 }' "/proc/$pid/limits")
        unit=1
    else
        soft=$(ulimit -S "$flag")
        hard=$(ulimit -H "$flag")
    fi
    for v in soft hard; do
        if [[ ${!v} == unlimited ]]; then
            printf -v "$v" '%s' -1
        else
            printf -v "$v" '%s' $((${!v} * unit))
        fi
    done
    echo "$soft $hard"
}

reserve() {
    echo $((FD_RESERVE_BASE + FD_RESERVE_PER_SHARD * shards))
}

# Sockets on this host: one per connection, two with a local load generator.
n_sockets() {
    echo $((n * (same_host + 1)))
}

check_nofile() {
    local soft hard reserve need limit
    read -r soft hard < <(read_limit "Max open files" -n 1)
    reserve=$(reserve)
    need=$((n + reserve))
    # A running corecast has already raised soft to hard, and sized
    # --max-connections from it; a new one will raise soft itself.
    local name="open files, hard (RLIMIT_NOFILE)" restart=
    if [[ -n $pid ]]; then
        limit=$soft
        name="open files (RLIMIT_NOFILE, soft)"
        restart="; restart corecast after raising it"
    else
        limit=$hard
    fi
    if ((limit == -1 || limit >= need)); then
        report OK "$name" "$limit >= $need (N + $reserve reserved for $shards shards)"
    else
        local per_process=$((limit - reserve)) notes=()
        if ((per_process > 0)); then
            notes+=("or:  N=$n needs $(ceil_div "$n" "$per_process") processes at a $limit fd limit ($per_process connections each,"
                "     same --port via SO_REUSEPORT); each process is a separate pub/sub domain: a publish"
                "     reaches only the subscribers of the process it arrived at")
        fi
        report LOW "$name" "$limit < $need needed (N + $reserve reserved for $shards shards)" \
            "fix: ulimit -n $need   (as root, in the shell that starts corecast; needs fs.nr_open >= $need$restart)" \
            "     or LimitNOFILE=$(max "$need" 1048576) in corecast.service (sudo scripts/tune.sh installs a drop-in)" \
            "${notes[@]}"
    fi
    if [[ -n $pid ]]; then
        return
    fi
    if ((soft == -1 || soft >= need)); then
        report OK "open files, soft" "$soft >= $need"
    elif ((hard == -1 || hard >= need)); then
        report OK "open files, soft" "$soft (corecast raises soft to hard at startup;" \
            "a load generator may not: ulimit -Sn \"\$(ulimit -Hn)\" in its shell)"
    else
        report LOW "open files, soft" "$soft < $need; corecast raises it to the hard limit, which is too low (above)"
    fi
}

check_nr_open() {
    local nr_open need
    nr_open=$(read_sysctl fs.nr_open)
    need=$((n + $(reserve)))
    if [[ -z $nr_open ]]; then
        report OK "fs.nr_open" "not on this kernel"
    elif ((nr_open >= need)); then
        report OK "fs.nr_open" "$nr_open >= $need (caps what RLIMIT_NOFILE may be raised to)"
    else
        sysctl_fix=1
        report LOW "fs.nr_open" "$nr_open < $need: no process may have $need descriptors" \
            "fix: sudo sysctl -w fs.nr_open=$(max "$need" "$CONF_NR_OPEN")"
    fi
}

check_file_max() {
    local file_max in_use need
    file_max=$(read_sysctl fs.file-max)
    in_use=$(read_sysctl fs.file-nr)
    in_use=${in_use%% *}
    need=$((${in_use:-0} + n * (same_host + 1) + $(reserve)))
    if [[ -z $file_max ]]; then
        report OK "fs.file-max" "not on this kernel"
    elif [[ ${#file_max} -ge 19 ]] || ((file_max >= need)); then
        report OK "fs.file-max" "$file_max >= $need (${in_use:-0} open now + N's descriptors)"
    else
        sysctl_fix=1
        report LOW "fs.file-max" "$file_max < $need (${in_use:-0} open now + N's descriptors)" \
            "fix: sudo sysctl -w fs.file-max=$(max "$need" "$CONF_FILE_MAX")"
    fi
}

# Every upgraded connection is one watch in its shard's epoll set; the limit
# is per user, so a load generator run by the same user counts too.
check_epoll_watches() {
    local watches need
    watches=$(read_sysctl fs.epoll.max_user_watches)
    need=$((n * (same_host + 1)))
    if [[ -z $watches ]]; then
        report OK "fs.epoll.max_user_watches" "not on this kernel"
    elif ((watches >= need)); then
        report OK "fs.epoll.max_user_watches" "$watches >= $need (one per connection, per user)"
    else
        sysctl_fix=1
        report LOW "fs.epoll.max_user_watches" "$watches < $need: connections past it are dropped after the upgrade" \
            "fix: sudo sysctl -w fs.epoll.max_user_watches=$need"
    fi
}

check_somaxconn() {
    local somaxconn burst want
    somaxconn=$(read_sysctl net.core.somaxconn)
    [[ -n $somaxconn ]] || return 0
    # After a restart every client reconnects at once: up to N/shards SYNs
    # land on each shard's listener before it accepts them.
    burst=$(ceil_div "$n" "$shards")
    want=$(max 4096 "$burst")
    if ((want > CONF_SOMAXCONN)); then
        want=$CONF_SOMAXCONN
    fi
    if ((somaxconn >= want)); then
        report OK "net.core.somaxconn" "$somaxconn >= $want (accept queue per shard listener)"
    else
        sysctl_fix=1
        report WARN "net.core.somaxconn" "$somaxconn < $want: a reconnect burst of $burst per shard overflows the accept queue" \
            "fix: sudo sysctl -w net.core.somaxconn=$CONF_SOMAXCONN and start corecast with --backlog $want (CORECAST_BACKLOG)"
    fi
}

check_port_range() {
    local range lo hi width ips
    range=$(read_sysctl net.ipv4.ip_local_port_range)
    [[ -n $range ]] || return 0
    read -r lo hi <<<"$range"
    width=$((hi - lo + 1))
    ips=$(ceil_div "$n" "$width")
    local name="ip_local_port_range (clients)"
    if ((n <= width)); then
        report OK "$name" "$lo-$hi: $width ports per source IP >= N (matters only for a load generator)"
    elif ((width < FULL_PORT_RANGE_WIDTH)); then
        sysctl_fix=1
        report WARN "$name" "$lo-$hi: $width ports per source IP; a load generator on one box needs $ips source IPs" \
            "fix: sudo sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\" (then $(ceil_div "$n" "$FULL_PORT_RANGE_WIDTH") source IPs: $(ip_span "$(ceil_div "$n" "$FULL_PORT_RANGE_WIDTH")"))"
    else
        report OK "$name" "$lo-$hi: $width ports per source IP; a load generator needs $ips source IPs: $(ip_span "$ips")"
    fi
}

# "127.0.0.1-127.0.0.K", or how many 127/8 addresses for larger K.
ip_span() {
    if (($1 <= 254)); then echo "127.0.0.1-127.0.0.$1"; else echo "$1 addresses in 127.0.0.0/8"; fi
}

check_memlock() {
    local soft hard limit registered want_kib
    read -r soft hard < <(read_limit "Max locked memory" -l 1024)
    if [[ -n $pid ]]; then limit=$soft; else limit=$hard; fi
    registered=$((shards * RINGS_PER_SHARD * io_memory))
    want_kib=$(max 65536 "$(ceil_div "$(max "$registered" "$MIN_MEMLOCK")" 1024)")
    local fix="fix: ulimit -l $want_kib   (KiB, as root) or LimitMEMLOCK=$((want_kib / 1024))M in corecast.service"
    if ((limit == -1)); then
        report OK "RLIMIT_MEMLOCK (io_uring)" "unlimited"
    elif ((limit < MIN_MEMLOCK)); then
        report LOW "RLIMIT_MEMLOCK (io_uring)" "$(human "$limit") < 512 KiB: glommio refuses to start" "$fix"
    elif ((limit < registered)); then
        report WARN "RLIMIT_MEMLOCK (io_uring)" "$(human "$limit") < $(human "$registered") ($shards shards x 3 rings x $(human "$io_memory") io-memory):" \
            "glommio starts but skips registering its buffers (charged per user, not per process)" "$fix"
    else
        report OK "RLIMIT_MEMLOCK (io_uring)" "$(human "$limit") >= 512 KiB (glommio's minimum) and >= $(human "$registered") registered ($shards shards x 3 rings x $(human "$io_memory"))"
    fi
}

check_io_uring() {
    local disabled group
    disabled=$(read_sysctl kernel.io_uring_disabled)
    if [[ -z $disabled ]]; then
        report OK "kernel.io_uring_disabled" "not on this kernel (before 6.6): io_uring is available"
    elif ((disabled == 0)); then
        report OK "kernel.io_uring_disabled" "0: io_uring is available to every user"
    elif ((disabled == 1)); then
        group=$(read_sysctl kernel.io_uring_group)
        if [[ $EUID -eq 0 ]] || [[ " $(id -G) " == *" ${group:--1} "* ]]; then
            report OK "kernel.io_uring_disabled" "1: io_uring only for root and group ${group:-?}; $(id -un) qualifies"
        else
            sysctl_fix=1
            report LOW "kernel.io_uring_disabled" "1: io_uring only for root and group ${group:-?}; $(id -un) does not qualify" \
                "fix: sudo sysctl -w kernel.io_uring_disabled=0   (or run corecast as a member of group ${group:-?})"
        fi
    else
        sysctl_fix=1
        report LOW "kernel.io_uring_disabled" "$disabled: io_uring is disabled for everyone; corecast cannot start" \
            "fix: sudo sysctl -w kernel.io_uring_disabled=0"
    fi
}

check_tcp_mem() {
    local tcp_mem lo pressure hi page need
    tcp_mem=$(read_sysctl net.ipv4.tcp_mem)
    [[ -n $tcp_mem ]] || return 0
    read -r lo pressure hi <<<"$tcp_mem"
    page=$(getconf PAGESIZE)
    # An idle socket charges 0 pages; one with a message queued charges at
    # least 1. A fan-out to every subscriber charges that on every socket.
    need=$(n_sockets)
    local fix estimate
    fix="fix: sudo sysctl -w net.ipv4.tcp_mem=\"$(max "$lo" "$need") $(max "$pressure" $((need * 3 / 2))) $(max "$hi" $((need * 2)))\"   (pages of $page B)"
    estimate="one queued message on each of $need sockets = $need pages ($(human $((need * page))))"
    if ((hi < need)); then
        sysctl_fix=1
        report LOW "net.ipv4.tcp_mem (pages)" "max $hi ($(human $((hi * page)))) < $estimate" "$fix"
    elif ((pressure < need)); then
        sysctl_fix=1
        report WARN "net.ipv4.tcp_mem (pages)" "pressure $pressure ($(human $((pressure * page)))) < $estimate;" \
            "buffers shrink to the minimum during such a burst" "$fix"
    else
        report OK "net.ipv4.tcp_mem (pages)" "pressure $pressure, max $hi >= $estimate"
    fi
}

check_memory() {
    local available page sockets kernel heap burst base
    available=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    [[ -n $available ]] || return 0
    available=$((available * 1024))
    page=$(getconf PAGESIZE)
    sockets=$(n_sockets)
    kernel=$((sockets * KERNEL_BYTES_PER_SOCKET))
    heap=$((n * HEAP_BYTES_PER_CONN))
    burst=$((sockets * page))
    base=$((kernel + heap))
    local detail
    detail="$(human "$kernel") kernel for $sockets sockets + $(human "$heap") corecast heap"
    if ((base > available)); then
        report LOW "memory (estimate)" "$detail > $(human "$available") available" \
            "fix: more RAM, or spread N over several machines (estimate: docs/tuning.md, Memory math)"
    elif ((base + burst > available)); then
        report WARN "memory (estimate)" "$detail + up to $(human "$burst") queued in a fan-out > $(human "$available") available"
    else
        report OK "memory (estimate)" "$detail + up to $(human "$burst") queued <= $(human "$available") available"
    fi
}

check_conntrack() {
    local max count
    max=$(read_sysctl net.netfilter.nf_conntrack_max)
    if [[ -z $max ]]; then
        report OK "net.netfilter.nf_conntrack_max" "nf_conntrack not loaded: connections are not tracked"
        return
    fi
    count=$(read_sysctl net.netfilter.nf_conntrack_count)
    if ((max >= n)); then
        report OK "net.netfilter.nf_conntrack_max" "$max >= N ($count tracked now)"
    else
        sysctl_fix=1
        report LOW "net.netfilter.nf_conntrack_max" "$max < N: when full, new connections are dropped" \
            "fix: sudo sysctl -w net.netfilter.nf_conntrack_max=$((n * 2))   (closed connections keep entries 120 s)" \
            "note: ${count:-0} tracked now; if that stays 0 under load, no firewall rule tracks these connections"
    fi
}

check_orphans_and_time_wait() {
    local key value what
    for key in net.ipv4.tcp_max_orphans net.ipv4.tcp_max_tw_buckets; do
        value=$(read_sysctl "$key")
        [[ -n $value ]] || continue
        if [[ $key == *orphans ]]; then
            what="closing N at once (shutdown) resets the excess instead of closing cleanly"
        else
            what="after closing N at once, the excess skips TIME_WAIT (a log line per socket)"
        fi
        if ((value >= n)); then
            report OK "$key" "$value >= N"
        else
            sysctl_fix=1
            report WARN "$key" "$value < N: $what" "fix: sudo sysctl -w $key=$(max "$n" 1048576)"
        fi
    done
}

summary() {
    echo
    if ((n_low > 0)); then
        echo "Result: N=$n is blocked: $n_low LOW, $n_warn WARN, $n_ok OK. Fix the LOW lines first."
    else
        echo "Result: nothing blocks N=$n: $n_low LOW, $n_warn WARN, $n_ok OK."
    fi
    if ((sysctl_fix)); then
        echo "The sysctl fixes above, all at once and kept across reboots: sudo scripts/tune.sh"
    fi
    if ((n_low > 0)); then
        exit 1
    fi
}

main "$@"
