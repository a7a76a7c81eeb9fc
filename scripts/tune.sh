#!/usr/bin/env bash
# tune.sh: apply corecast's kernel settings (sysctl/99-corecast.conf) to the
# running kernel and install them, a limits.d file and a systemd drop-in so
# they survive a reboot. Idempotent: a second run changes nothing and says so.
# Run with --help for usage; docs/tuning.md explains every setting.
set -euo pipefail

readonly PROG=tune.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly SYSCTL_SRC="$SCRIPT_DIR/../sysctl/99-corecast.conf"
readonly LIMITS_SRC="$SCRIPT_DIR/limits.d/99-corecast.conf"
readonly SYSCTL_DEST=etc/sysctl.d/99-corecast.conf
readonly LIMITS_DEST=etc/security/limits.d/99-corecast.conf

usage() {
    cat <<EOF
Usage: $PROG [--dry-run] [--prefix DIR] [--proc-sys DIR] [--no-sysctl] [--unit NAME]

Applies corecast's kernel settings and installs its limits:
  1. every key in sysctl/99-corecast.conf, written to the running kernel
     (/proc/sys). Keys this kernel lacks are skipped with a message, and
     ceilings already higher than the file's value are kept, not lowered;
  2. PREFIX/$SYSCTL_DEST, the same settings at boot;
  3. PREFIX/$LIMITS_DEST, nofile/memlock hard limits for login sessions;
  4. PREFIX/etc/systemd/system/NAME.d/limits.conf, LimitNOFILE and
     LimitMEMLOCK (io_uring) for the service, then systemctl daemon-reload.
Running it again changes nothing and says so. Needs root unless --dry-run.

Options:
  --dry-run       print what would change; change nothing (no root needed)
  --prefix DIR    install the files under DIR instead of / (env CORECAST_TUNE_PREFIX).
                  With a prefix other than /, the running kernel is left alone
                  unless --proc-sys is given too.
  --proc-sys DIR  read and write kernel settings under DIR instead of /proc/sys
                  (env CORECAST_PROC_SYS; for tests and staging)
  --no-sysctl     only install the files; leave the running kernel alone
  --unit NAME     systemd unit the drop-in is for (default corecast.service)
  -h, --help      show this help

Exit status: 0 on success (whether or not anything changed), 1 if a setting
could not be applied or a file not installed, 2 on a usage error.
Check the result with: scripts/check-tuning.sh -n CONNECTIONS
EOF
}

main() {
    parse_args "$@"
    check_can_run
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT

    echo "$PROG: kernel settings from sysctl/99-corecast.conf${proc_sys:+ (live values under $proc_sys)}"
    if [[ -z $proc_sys ]]; then
        say "not applied" "running kernel left alone: $kernel_note"
    fi
    process_sysctl_file "$SYSCTL_SRC" "$work/sysctl.conf"

    echo "$PROG: files under ${prefix:-/}"
    install_file "$work/sysctl.conf" "$prefix/$SYSCTL_DEST"
    install_file "$LIMITS_SRC" "$prefix/$LIMITS_DEST"
    write_dropin >"$work/dropin.conf"
    local before_dropin=$n_changes
    install_file "$work/dropin.conf" "$prefix/etc/systemd/system/$unit.d/limits.conf"
    if ((n_changes > before_dropin)); then
        reload_systemd
    fi
    summary
}

# Settings, from the command line or the environment.
dry_run=0
prefix=${CORECAST_TUNE_PREFIX:-/}
proc_sys=${CORECAST_PROC_SYS:-}
no_sysctl=0
unit=corecast.service
# Why the running kernel is left alone, when it is.
kernel_note=
# Counters for the summary, and the value apply_key chose for the file.
n_changes=0
n_failures=0
target=
work=

parse_args() {
    while (($# > 0)); do
        case $1 in
            --dry-run) dry_run=1 ;;
            --prefix)
                (($# >= 2)) || die_usage "--prefix needs a directory"
                prefix=$2
                shift
                ;;
            --prefix=*) prefix=${1#*=} ;;
            --proc-sys)
                (($# >= 2)) || die_usage "--proc-sys needs a directory"
                proc_sys=$2
                shift
                ;;
            --proc-sys=*) proc_sys=${1#*=} ;;
            --no-sysctl) no_sysctl=1 ;;
            --unit)
                (($# >= 2)) || die_usage "--unit needs a unit name"
                unit=$2
                shift
                ;;
            --unit=*) unit=${1#*=} ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die_usage "unknown argument '$1'" ;;
        esac
        shift
    done
    [[ -n $prefix ]] || die_usage "--prefix must not be empty (use / for the real system)"
    [[ $unit == *.service ]] || unit="$unit.service"
    # "/" becomes "", so paths are "$prefix/etc/...".
    prefix=${prefix%/}
    # Where kernel settings are read and written; empty leaves them alone.
    if ((no_sysctl)); then
        proc_sys=
        kernel_note="--no-sysctl given"
    elif [[ -z $proc_sys && -n $prefix ]]; then
        kernel_note="--prefix $prefix given (add --proc-sys /proc/sys to apply them too)"
    elif [[ -z $proc_sys ]]; then
        proc_sys=/proc/sys
    fi
}

# Refuses to go on without root (unless only printing) or without the
# files this script installs.
check_can_run() {
    if ((dry_run == 0)) && [[ $EUID -ne 0 ]]; then
        echo "$PROG: must be run as root: it writes kernel settings and files under ${prefix}/etc." >&2
        echo "$PROG: run it with sudo, or see what it would do with: $0 --dry-run" >&2
        exit 1
    fi
    local src
    for src in "$SYSCTL_SRC" "$LIMITS_SRC"; do
        if [[ ! -r $src ]]; then
            echo "$PROG: cannot read $src (run tune.sh from a corecast checkout)" >&2
            exit 1
        fi
    done
}

die_usage() {
    echo "$PROG: $1" >&2
    echo "Try '$PROG --help'." >&2
    exit 2
}

# Prints one status line: a fixed-width tag, then the message.
say() {
    printf '  %-12s %s\n' "$1" "$2"
}

# Reads the sysctl file $1, applies each key to the running kernel when
# that is enabled, and writes the file to install to $2: the same text, with
# a ceiling that is already higher in the kernel replaced by the live value,
# so that boot does not lower it.
process_sysctl_file() {
    local src=$1 out=$2 line key value ceiling=0
    {
        echo "# Installed by corecast scripts/tune.sh from sysctl/99-corecast.conf."
        echo "# Edit that file and run tune.sh again rather than editing this copy."
    } >"$out"
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ ^[[:space:]]*(#|$) ]]; then
            [[ $line == *"[ceiling]"* ]] && ceiling=1
            printf '%s\n' "$line" >>"$out"
            continue
        fi
        if [[ ! $line =~ ^[[:space:]]*([A-Za-z0-9_.-]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])[[:space:]]*$ ]]; then
            echo "$PROG: $src: cannot parse line: $line" >&2
            exit 1
        fi
        key=${BASH_REMATCH[1]}
        value=$(normalize "${BASH_REMATCH[2]}")
        target=$value
        if [[ -n $proc_sys ]]; then
            apply_key "$key" "$value" "$ceiling"
        fi
        if [[ $target != "$value" ]]; then
            {
                printf '# tune.sh: the kernel already had %s, higher than the %s in\n' "$target" "$value"
                printf '# sysctl/99-corecast.conf; kept so that boot does not lower it.\n'
            } >>"$out"
        fi
        printf '%s = %s\n' "$key" "$target" >>"$out"
        ceiling=0
    done <"$src"
}

# Applies one key to the kernel (or says what it would do). Sets the global
# `target` to the value the installed file should carry: the file's value,
# or for a ceiling the larger of it and the live one.
apply_key() {
    local key=$1 value=$2 ceiling=$3 path live err after
    path="$proc_sys/${key//.//}"
    target=$value
    if [[ ! -e $path ]]; then
        if [[ $key == net.netfilter.* ]]; then
            say "skip" "$key: not on this kernel (nf_conntrack is not loaded); run $PROG again once it is (e.g. after the firewall starts)"
        else
            say "skip" "$key: not on this kernel ($path does not exist)"
        fi
        return
    fi
    live=$(normalize "$(<"$path")")
    if ((ceiling)); then
        target=$(elementwise_max "$live" "$value")
    fi
    if [[ $live == "$target" ]]; then
        if [[ $target == "$value" ]]; then
            say "ok" "$key = $live"
        else
            say "ok" "$key = $live (higher than the file's $value; kept)"
        fi
        return
    fi
    n_changes=$((n_changes + 1))
    if ((dry_run)); then
        say "would set" "$key: $live -> $target"
    elif ! err=$({ printf '%s\n' "$target" >"$path"; } 2>&1); then
        say "FAILED" "$key: cannot write $target: ${err##*: }"
        n_failures=$((n_failures + 1))
    else
        after=$(normalize "$(<"$path")")
        if [[ $after == "$target" ]]; then
            say "set" "$key: $live -> $target"
        else
            say "FAILED" "$key: wrote $target but the kernel reports $after"
            n_failures=$((n_failures + 1))
        fi
    fi
}

# Collapses runs of whitespace (the kernel prints tabs) to single spaces.
normalize() {
    local -a words
    read -r -a words <<<"$1"
    printf '%s\n' "${words[*]}"
}

# "a b c" vs "x y z": the larger of each pair. A non-numeric or differently
# shaped live value is not comparable, so the file's value wins.
elementwise_max() {
    local -a live wanted out=()
    read -r -a live <<<"$1"
    read -r -a wanted <<<"$2"
    if ((${#live[@]} != ${#wanted[@]})); then
        printf '%s\n' "$2"
        return
    fi
    local i
    for i in "${!wanted[@]}"; do
        if [[ ! ${live[i]} =~ ^[0-9]{1,18}$ || ! ${wanted[i]} =~ ^[0-9]{1,18}$ ]]; then
            # Beyond 18 digits bash arithmetic could overflow; such a live
            # value (e.g. fs.file-max = 2^63-1) is larger than any we set.
            if [[ ${live[i]} =~ ^[0-9]{19,}$ && ${wanted[i]} =~ ^[0-9]{1,18}$ ]]; then
                out+=("${live[i]}")
                continue
            fi
            printf '%s\n' "$2"
            return
        fi
        if ((10#${live[i]} > 10#${wanted[i]})); then
            out+=("${live[i]}")
        else
            out+=("${wanted[i]}")
        fi
    done
    printf '%s\n' "${out[*]}"
}

write_dropin() {
    cat <<EOF
# Installed by corecast scripts/tune.sh: limits for $unit.
# LimitNOFILE: one descriptor per connection plus corecast's reserve
# (64 + 96 per shard); 1048576 serves 1M connections. Must not exceed
# fs.nr_open, or the unit fails to start.
# LimitMEMLOCK: glommio needs at least 512 KiB for io_uring and registers
# --io-memory (64 KiB) in 3 rings per shard; 64M leaves room for many shards.
[Service]
LimitNOFILE=1048576
LimitMEMLOCK=64M
EOF
}

# Installs $1 as $2 (mode 644) unless $2 already has exactly that content.
install_file() {
    local src=$1 dest=$2
    if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
        say "ok" "$dest (up to date)"
        return
    fi
    n_changes=$((n_changes + 1))
    if ((dry_run)); then
        if [[ -f $dest ]]; then
            say "would update" "$dest:"
            diff -u "$dest" "$src" | sed 's/^/      /' || true
        else
            say "would create" "$dest"
        fi
        return
    fi
    local verb=created
    [[ -f $dest ]] && verb=updated
    if mkdir -p "$(dirname "$dest")" && cp "$src" "$dest.tmp.$$" &&
        chmod 644 "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"; then
        say "$verb" "$dest"
    else
        rm -f "$dest.tmp.$$"
        say "FAILED" "cannot write $dest"
        n_failures=$((n_failures + 1))
    fi
}

reload_systemd() {
    if ((dry_run)); then
        say "would run" "systemctl daemon-reload"
    elif [[ -n $prefix ]]; then
        say "skipped" "systemctl daemon-reload (files went under $prefix, not /)"
    elif [[ ! -d /run/systemd/system ]]; then
        say "skipped" "systemctl daemon-reload (systemd is not running here)"
    elif systemctl daemon-reload; then
        say "ran" "systemctl daemon-reload; 'systemctl restart ${unit%.service}' applies the new limits"
    else
        say "FAILED" "systemctl daemon-reload"
        n_failures=$((n_failures + 1))
    fi
}

summary() {
    if ((n_failures > 0)); then
        echo "$PROG: $n_failures change(s) failed (see FAILED above); $((n_changes - n_failures)) made." >&2
        exit 1
    fi
    if ((n_changes == 0)); then
        echo "$PROG: nothing to change; everything is already in place."
    elif ((dry_run)); then
        echo "$PROG: dry run: $n_changes change(s) would be made; nothing was changed."
    else
        echo "$PROG: $n_changes change(s) made. New logins get the limits; restart corecast to use them."
    fi
}

main "$@"
