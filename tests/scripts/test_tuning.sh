#!/usr/bin/env bash
# test_tuning.sh: tests for scripts/tune.sh, scripts/check-tuning.sh,
# sysctl/99-corecast.conf and scripts/corecast.service.
#
# Side-effect free: tune.sh only ever runs with --dry-run, or with --prefix
# and --proc-sys pointing into a temporary directory, so /etc and the live
# sysctls are never written. Runs in a few seconds. The tests that switch
# to an unprivileged user need root, setpriv and a checkout that user can
# reach, and are skipped without them.
# Ends with the line "N passed, M failed"; exits 1 if anything failed.
#
# Usage: bash tests/scripts/test_tuning.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROOT
readonly TUNE="$ROOT/scripts/tune.sh"
readonly CHECK="$ROOT/scripts/check-tuning.sh"
readonly CONF="$ROOT/sysctl/99-corecast.conf"
readonly UNIT="$ROOT/scripts/corecast.service"
readonly LIMITS="$ROOT/scripts/limits.d/99-corecast.conf"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Readable by the unprivileged user some tests switch to.
chmod 755 "$tmp"

passed=0
failed=0
skipped=()
# Output and exit status of the last `run`.
out=
rc=0

main() {
    local t
    # `|| true` also turns off errexit inside each test, so a failed
    # expectation is recorded by `end` instead of ending the script.
    for t in \
        test_tune_help_and_usage_errors \
        test_tune_dry_run_on_this_machine_changes_nothing \
        test_tune_dry_run_into_prefix_changes_nothing \
        test_tune_applies_then_second_run_changes_nothing \
        test_tune_never_lowers_a_higher_ceiling \
        test_tune_with_prefix_leaves_the_kernel_alone \
        test_tune_reports_a_setting_it_cannot_write \
        test_tune_refuses_non_root_but_allows_dry_run \
        test_check_help_and_usage_errors \
        test_check_small_n_passes_here \
        test_check_huge_n_fails_with_low_lines \
        test_check_runs_unprivileged \
        test_check_flags_low_sysctls_with_fixes \
        test_check_passes_1m_after_tune_values \
        test_check_reads_a_running_process \
        test_sysctl_conf_has_a_comment_per_key \
        test_constants_match_corecast_source \
        test_unit_file_has_required_settings \
        test_scripts_are_shellcheck_clean; do
        "$t" || true
    done

    if ((${#skipped[@]} > 0)); then
        echo "skipped: ${skipped[*]}"
    fi
    echo "$passed passed, $failed failed"
    ((failed == 0))
}

# ---- tune.sh ---------------------------------------------------------------

test_tune_help_and_usage_errors() {
    begin "tune.sh --help prints usage; unknown flags exit 2"
    run "$TUNE" --help
    expect_rc 0 && expect_out 'Usage: tune.sh' && expect_out '--dry-run' && expect_out '--prefix' &&
        run "$TUNE" --bogus && expect_rc 2 && expect_out "unknown argument '--bogus'" &&
        run "$TUNE" --prefix && expect_rc 2
    end
}

test_tune_dry_run_on_this_machine_changes_nothing() {
    begin "tune.sh --dry-run against the real /etc and /proc/sys only reads"
    local before after
    before=$(snapshot_etc)
    run "$TUNE" --dry-run
    after=$(snapshot_etc)
    expect_rc 0 && expect_out 'live values under /proc/sys' &&
        expect_out 'nothing was changed|nothing to change' &&
        expect_equal "$before" "$after" "/etc changed during a dry run"
    end
}

test_tune_dry_run_into_prefix_changes_nothing() {
    begin "tune.sh --dry-run --prefix --proc-sys says what it would do and does nothing"
    local proc="$tmp/dry-proc" before
    make_fake_proc "$proc"
    before=$(tree_sum "$proc")
    run "$TUNE" --dry-run --prefix "$tmp/dry-root" --proc-sys "$proc"
    expect_rc 0 && expect_out 'would set +fs.nr_open: 1048576 -> 2097152' &&
        expect_out 'would create .*/etc/sysctl.d/99-corecast.conf' &&
        expect_out 'would run +systemctl daemon-reload' &&
        expect_out 'dry run: [0-9]+ change\(s\) would be made; nothing was changed' &&
        expect_missing "$tmp/dry-root" &&
        expect_equal "$before" "$(tree_sum "$proc")" "dry run wrote to the fake /proc/sys"
    end
}

test_tune_applies_then_second_run_changes_nothing() {
    begin "tune.sh --prefix --proc-sys applies everything; a second run changes nothing"
    local proc="$tmp/apply-proc" root="$tmp/apply-root" files_before
    make_fake_proc "$proc"
    run "$TUNE" --prefix "$root" --proc-sys "$proc"
    if ! {
        expect_rc 0 && expect_out 'set +net.core.somaxconn: 4096 -> 65535' &&
        expect_out 'set +net.ipv4.tcp_mem: 287901 383869 575802 -> 1048576 1572864 2097152' &&
        expect_out 'ok +net.ipv4.tcp_wmem = 4096 16384 4194304' &&
        expect_out 'skip +net.netfilter.nf_conntrack_max: not on this kernel \(nf_conntrack is not loaded\)' &&
        expect_out 'created +.*/etc/security/limits.d/99-corecast.conf' &&
        expect_out 'skipped +systemctl daemon-reload' &&
        expect_out 'change\(s\) made' &&
        expect_file_line "$proc/net/core/somaxconn" '65535' &&
        expect_file_line "$proc/net/ipv4/tcp_mem" '1048576 1572864 2097152' &&
        expect_file_line "$proc/net/ipv4/ip_local_port_range" '1024 65535' &&
        expect_file_line "$root/etc/sysctl.d/99-corecast.conf" 'net.ipv4.tcp_rmem = 4096 16384 4194304' &&
        expect_file_line "$root/etc/sysctl.d/99-corecast.conf" 'net.netfilter.nf_conntrack_max = 2097152' &&
        expect_file_line "$root/etc/systemd/system/corecast.service.d/limits.conf" 'LimitNOFILE=1048576' &&
        expect_file_line "$root/etc/systemd/system/corecast.service.d/limits.conf" 'LimitMEMLOCK=64M' &&
        expect_same_file "$LIMITS" "$root/etc/security/limits.d/99-corecast.conf"
    }; then
        end
        return
    fi
    files_before=$(tree_sum "$root" "$proc")
    run "$TUNE" --prefix "$root" --proc-sys "$proc"
    expect_rc 0 && expect_out 'nothing to change; everything is already in place' &&
        expect_no_out '^ +(set|created|updated|would|FAILED) ' &&
        expect_equal "$files_before" "$(tree_sum "$root" "$proc")" "second run modified files"
    end
}

test_tune_never_lowers_a_higher_ceiling() {
    begin "tune.sh keeps a ceiling that is already higher, in the kernel and the installed file"
    local proc="$tmp/high-proc" root="$tmp/high-root"
    make_fake_proc "$proc"
    echo 9223372036854775807 >"$proc/fs/file-max"
    echo 100000 >"$proc/net/core/somaxconn"
    printf '3000000\t100\t4000000\n' >"$proc/net/ipv4/tcp_mem"
    run "$TUNE" --prefix "$root" --proc-sys "$proc"
    expect_rc 0 &&
        expect_out 'ok +fs.file-max = 9223372036854775807 \(higher than the file.s 4194304; kept\)' &&
        expect_file_line "$proc/fs/file-max" '9223372036854775807' &&
        expect_file_line "$proc/net/core/somaxconn" '100000' &&
        expect_file_line "$proc/net/ipv4/tcp_mem" '3000000 1572864 4000000' &&
        expect_file_line "$root/etc/sysctl.d/99-corecast.conf" 'fs.file-max = 9223372036854775807' &&
        expect_file_line "$root/etc/sysctl.d/99-corecast.conf" 'net.ipv4.tcp_mem = 3000000 1572864 4000000' &&
        run "$TUNE" --prefix "$root" --proc-sys "$proc" && expect_out 'nothing to change'
    end
}

test_tune_with_prefix_leaves_the_kernel_alone() {
    begin "tune.sh --prefix (or CORECAST_TUNE_PREFIX) installs files and leaves the kernel alone"
    run "$TUNE" --prefix "$tmp/prefix-only"
    expect_rc 0 && expect_out 'running kernel left alone: --prefix .* given' &&
        expect_no_out '^ +(set|ok|skip) +(fs|net)\.' &&
        expect_file_line "$tmp/prefix-only/etc/sysctl.d/99-corecast.conf" 'fs.nr_open = 2097152' &&
        CORECAST_TUNE_PREFIX="$tmp/env-prefix" run "$TUNE" --no-sysctl &&
        expect_rc 0 && expect_out 'running kernel left alone: --no-sysctl given' &&
        expect_file_line "$tmp/env-prefix/etc/security/limits.d/99-corecast.conf" '\* +hard +nofile +1048576'
    end
}

test_tune_reports_a_setting_it_cannot_write() {
    begin "tune.sh exits 1 and says FAILED when the kernel refuses a value"
    local proc="$tmp/fail-proc"
    make_fake_proc "$proc"
    # Reads as text, and any write fails with EIO (or EACCES): a stand-in
    # for a sysctl the kernel refuses, without touching a real one.
    ln -sf /proc/version "$proc/net/ipv4/tcp_tw_reuse"
    run "$TUNE" --prefix "$tmp/fail-root" --proc-sys "$proc"
    expect_rc 1 && expect_out 'FAILED +net.ipv4.tcp_tw_reuse: cannot write 1' &&
        expect_out '1 change\(s\) failed'
    end
}

test_tune_refuses_non_root_but_allows_dry_run() {
    begin "tune.sh refuses to run without root (exit 1), except with --dry-run"
    if ! can_switch_user; then
        skip "$no_switch"
        return
    fi
    local proc="$tmp/nonroot-proc"
    make_fake_proc "$proc"
    run as_nobody "$TUNE" --prefix "$tmp/nonroot-root"
    expect_rc 1 && expect_out 'must be run as root' && expect_out '--dry-run' &&
        expect_missing "$tmp/nonroot-root" &&
        run as_nobody "$TUNE" --dry-run --prefix "$tmp/nonroot-root" --proc-sys "$proc" &&
        expect_rc 0 && expect_out 'nothing was changed' && expect_missing "$tmp/nonroot-root"
    end
}

# ---- check-tuning.sh -------------------------------------------------------

test_check_help_and_usage_errors() {
    begin "check-tuning.sh --help prints usage; a missing or bad -n exits 2"
    run "$CHECK" --help
    expect_rc 0 && expect_out 'Usage: check-tuning.sh -n N' &&
        run "$CHECK" && expect_rc 2 && expect_out '-n N is required' &&
        run "$CHECK" -n abc && expect_rc 2 && expect_out "not 'abc'" &&
        run "$CHECK" -n 10 --shards 0 && expect_rc 2 &&
        run "$CHECK" -n 10 --pid 999999999 && expect_rc 2 && expect_out 'no such process'
    end
}

test_check_small_n_passes_here() {
    begin "check-tuning.sh -n 100 passes on this machine"
    run "$CHECK" -n 100 --shards 1
    expect_rc 0 && expect_out '^OK +open files, hard' && expect_out '^OK +fs.nr_open' &&
        expect_out '^OK +net.ipv4.tcp_mem \(pages\)' && expect_no_out '^LOW ' &&
        expect_out 'Result: nothing blocks N=100'
    end
}

test_check_huge_n_fails_with_low_lines() {
    begin "check-tuning.sh -n 5000000 exits 1 with LOW lines and fixes"
    run "$CHECK" -n 5000000
    if ! { expect_rc 1 && expect_out '^LOW ' && expect_out '^ +fix: ' &&
        expect_out 'Result: N=5000000 is blocked'; }; then
        end
        return
    fi
    # The multi-process hint appears whenever the hard limit is the blocker.
    if (($(ulimit -Hn) < 5000000)); then
        expect_out 'N=5000000 needs [0-9]+ processes at a [0-9]+ fd limit' &&
            expect_out 'separate pub/sub domain'
    fi
    end
}

test_check_runs_unprivileged() {
    begin "check-tuning.sh works as an unprivileged user"
    if ! can_switch_user; then
        skip "$no_switch"
        return
    fi
    run as_nobody "$CHECK" -n 100 --shards 1
    expect_rc 0 && expect_out 'Result: nothing blocks' && expect_no_out 'Permission denied' &&
        run as_nobody "$CHECK" -n 5000000 && expect_rc 1 && expect_out '^LOW '
    end
}

test_check_flags_low_sysctls_with_fixes() {
    begin "check-tuning.sh marks low kernel settings with the exact fix command"
    local proc="$tmp/low-proc"
    make_fake_proc "$proc"
    echo 128 >"$proc/net/core/somaxconn"
    echo 1024 >"$proc/fs/nr_open"
    echo 1000 >"$proc/fs/epoll/max_user_watches"
    echo 2 >"$proc/kernel/io_uring_disabled"
    printf '100\t200\t300\n' >"$proc/net/ipv4/tcp_mem"
    mkdir -p "$proc/net/netfilter"
    echo 1000 >"$proc/net/netfilter/nf_conntrack_max"
    echo 0 >"$proc/net/netfilter/nf_conntrack_count"
    run "$CHECK" -n 50000 --shards 1 --proc-sys "$proc"
    expect_rc 1 &&
        expect_out '^LOW +fs.nr_open +1024 < 50160' && expect_out 'fix: sudo sysctl -w fs.nr_open=2097152' &&
        expect_out '^LOW +fs.epoll.max_user_watches +1000 < 50000' &&
        expect_out 'fix: sudo sysctl -w fs.epoll.max_user_watches=50000' &&
        expect_out '^WARN +net.core.somaxconn +128 < 50000' &&
        expect_out 'fix: sudo sysctl -w net.core.somaxconn=65535 and start corecast with --backlog 50000' &&
        expect_out '^LOW +kernel.io_uring_disabled +2' &&
        expect_out '^LOW +net.ipv4.tcp_mem \(pages\) +max 300' &&
        expect_out 'fix: sudo sysctl -w net.ipv4.tcp_mem="50000 75000 100000"' &&
        expect_out '^LOW +net.netfilter.nf_conntrack_max +1000 < N' &&
        expect_out 'fix: sudo sysctl -w net.netfilter.nf_conntrack_max=100000' &&
        expect_out 'sudo scripts/tune.sh'
    end
}

test_check_passes_1m_after_tune_values() {
    begin "after tune.sh's values, no kernel setting blocks 1M connections"
    local proc="$tmp/1m-proc"
    make_fake_proc "$proc"
    run "$TUNE" --prefix "$tmp/1m-root" --proc-sys "$proc"
    if ! expect_rc 0; then
        end
        return
    fi
    run "$CHECK" -n 1000000 --shards 2 --proc-sys "$proc"
    # Per-process limits and RAM depend on the machine; kernel settings must not.
    expect_no_out '^(LOW|WARN) +(fs|net|kernel)\.' &&
        expect_out '^OK +net.ipv4.tcp_mem \(pages\) +pressure 1572864, max 2097152' &&
        run "$CHECK" -n 1000000 --shards 2 --same-host --proc-sys "$proc" &&
        expect_no_out '^LOW +(fs|net|kernel)\.'
    end
}

test_check_reads_a_running_process() {
    begin "check-tuning.sh --pid reads a running process's limits"
    # The child lowers its soft limits, which cannot go above the hard ones.
    if ! limit_at_least -Hn 1024 || ! limit_at_least -Hl 256; then
        skip "hard limits too low for the child (nofile $(ulimit -Hn), needs 1024; memlock $(ulimit -Hl) KiB, needs 256)"
        return
    fi
    bash -c 'ulimit -Sn 1024 && ulimit -Sl 256 && exec sleep 10' &
    local pid=$! i
    # Wait (up to 5 s) until the child has lowered its limits and exec'd.
    for ((i = 0; i < 50; i++)); do
        grep -Eq '^Max locked memory +262144 ' "/proc/$pid/limits" 2>/dev/null && break
        sleep 0.1
    done
    run "$CHECK" -n 5000 --shards 1 --pid "$pid"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    expect_rc 1 && expect_out "limits of pid $pid" &&
        expect_out '^LOW +open files \(RLIMIT_NOFILE, soft\) +1024 < 5160' &&
        expect_out 'N=5000 needs 6 processes at a 1024 fd limit' &&
        expect_out '^LOW +RLIMIT_MEMLOCK \(io_uring\) +256 KiB < 512 KiB'
    end
}

# ---- the files themselves --------------------------------------------------

test_sysctl_conf_has_a_comment_per_key() {
    begin "sysctl/99-corecast.conf: every key parses and has a comment above it"
    local line prev="" bad="" keys=0
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ ^[a-z] ]]; then
            keys=$((keys + 1))
            [[ $line =~ ^[a-z0-9_.-]+\ =\ [0-9][0-9\ ]*$ ]] || bad+=" unparsable:'$line'"
            [[ $prev == \#* ]] || bad+=" uncommented:'${line%% *}'"
        fi
        prev=$line
    done <"$CONF"
    expect_equal "" "$bad" "bad lines" && expect_file_line "$CONF" '# Units: counts are counts; tcp_mem is in PAGES.*' &&
        expect_equal 1 "$((keys >= 14))" "only $keys keys"
    end
}

test_constants_match_corecast_source() {
    begin "check-tuning.sh's fd reserve matches src/config/mod.rs; TimeoutStopSec > --shutdown-timeout"
    local src="$ROOT/src/config/mod.rs" base per timeout stop
    base=$(sed -n 's/.*const FD_RESERVE_BASE: u64 = \([0-9]*\);.*/\1/p' "$src" 2>/dev/null || true)
    per=$(sed -n 's/.*const FD_RESERVE_PER_SHARD: u64 = \([0-9]*\);.*/\1/p' "$src" 2>/dev/null || true)
    timeout=$(grep -o 'CORECAST_SHUTDOWN_TIMEOUT", default_value = "[0-9]*s"' "$src" 2>/dev/null | grep -o '[0-9]*s"' | tr -d 's"' || true)
    if [[ -z $base || -z $per || -z $timeout ]]; then
        # The file is ours: constants that moved must fail this, not skip it
        # (a skip hid the move of config.rs to config/mod.rs).
        fail "could not find FD_RESERVE_BASE, FD_RESERVE_PER_SHARD or --shutdown-timeout's default in $src"
        end
        return
    fi
    stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$UNIT")
    out="src/config/mod.rs: FD_RESERVE_BASE=$base FD_RESERVE_PER_SHARD=$per --shutdown-timeout=${timeout}s; unit: TimeoutStopSec=$stop"
    expect_file_line "$CHECK" "readonly FD_RESERVE_BASE=$base" &&
        expect_file_line "$CHECK" "readonly FD_RESERVE_PER_SHARD=$per" &&
        expect_equal 1 "$((${stop:-0} > timeout))" "TimeoutStopSec=${stop:-?} is not above the ${timeout}s --shutdown-timeout"
    end
}

test_unit_file_has_required_settings() {
    begin "scripts/corecast.service has the limits, restart, stop and env settings"
    local key
    for key in 'ExecStart=/usr/local/bin/corecast' 'LimitNOFILE=[0-9]+' 'LimitMEMLOCK=[0-9]+[KMG]?' \
        'Restart=on-failure' 'KillSignal=SIGTERM' 'TimeoutStopSec=[0-9]+s?' 'EnvironmentFile=-?/etc/corecast/corecast.env'; do
        if ! expect_file_line "$UNIT" "$key"; then
            end
            return
        fi
    done
    if command -v systemd-analyze >/dev/null; then
        # Verify a copy whose ExecStart exists, so only real unit errors show.
        sed 's#^ExecStart=.*#ExecStart=/bin/true#' "$UNIT" >"$tmp/corecast.service"
        run systemd-analyze verify "$tmp/corecast.service"
        expect_rc 0 && expect_no_out 'Unknown|unknown|Failed|error'
    fi
    end
}

test_scripts_are_shellcheck_clean() {
    begin "shellcheck finds nothing in the scripts"
    if ! command -v shellcheck >/dev/null; then
        skip "shellcheck is not installed"
        return
    fi
    # Every project script, not only the tuning ones.
    # -x: follow `. lib.sh` (each script names it with a source directive).
    run shellcheck -x "$ROOT"/scripts/*.sh "$ROOT"/tests/scripts/*.sh
    expect_rc 0
    end
}

# ---- helpers ---------------------------------------------------------------

# Test bookkeeping and expectations: tests/scripts/harness.sh.
# shellcheck source-path=SCRIPTDIR source=harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

# A fake /proc/sys with the kernel defaults of a 24 GiB machine and no
# nf_conntrack, so results don't depend on this machine's settings.
make_fake_proc() {
    local d=$1
    mkdir -p "$d/fs/epoll" "$d/net/core" "$d/net/ipv4" "$d/kernel"
    echo 2466183 >"$d/fs/file-max"
    echo 5491533 >"$d/fs/epoll/max_user_watches"
    echo 1048576 >"$d/fs/nr_open"
    printf '400\t0\t2466183\n' >"$d/fs/file-nr"
    echo 4096 >"$d/net/core/somaxconn"
    echo 1000 >"$d/net/core/netdev_max_backlog"
    echo 2048 >"$d/net/ipv4/tcp_max_syn_backlog"
    printf '32768\t60999\n' >"$d/net/ipv4/ip_local_port_range"
    echo 2 >"$d/net/ipv4/tcp_tw_reuse"
    printf '287901\t383869\t575802\n' >"$d/net/ipv4/tcp_mem"
    printf '4096\t131072\t33554432\n' >"$d/net/ipv4/tcp_rmem"
    printf '4096\t16384\t4194304\n' >"$d/net/ipv4/tcp_wmem"
    echo 131072 >"$d/net/ipv4/tcp_max_orphans"
    echo 131072 >"$d/net/ipv4/tcp_max_tw_buckets"
    echo 0 >"$d/kernel/io_uring_disabled"
    chmod -R a+rX "$d"
}

# Content and modification time of every file under the given trees.
tree_sum() {
    find "$@" -type f -printf '%p %T@\n' -exec md5sum {} \; | sort
}

# What a dry run must leave alone in /etc.
snapshot_etc() {
    local f
    for f in /etc/sysctl.d/99-corecast.conf /etc/security/limits.d/99-corecast.conf \
        /etc/systemd/system/corecast.service.d/limits.conf; do
        if [[ -e $f ]]; then stat -c '%n %Y %s' "$f"; else echo "$f absent"; fi
    done
}

# Whether the tests can run the scripts as user nobody; if not, says why in
# no_switch. A checkout nobody cannot reach (say under /root, mode 700)
# would otherwise fail those tests with exit 126 instead of skipping them.
no_switch=
can_switch_user() {
    if [[ $EUID -ne 0 ]] || ! command -v setpriv >/dev/null; then
        no_switch="needs root and setpriv"
        return 1
    fi
    # shellcheck disable=SC2016  # expanded by the inner bash
    if ! as_nobody bash -c '[[ -x $1 && -r $1 && -x $2 && -r $2 && -r $3 && -r $4 && -x $5 ]]' _ \
        "$TUNE" "$CHECK" "$CONF" "$LIMITS" "$tmp" 2>/dev/null; then
        no_switch="user nobody cannot run the scripts in $ROOT/scripts or enter $tmp (a directory on the way closed to others?)"
        return 1
    fi
}

# limit_at_least FLAG MIN: `ulimit FLAG` is unlimited or at least MIN.
limit_at_least() {
    local v
    v=$(ulimit "$1")
    [[ $v == unlimited ]] || ((v >= $2))
}

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
}

main "$@"
