#!/usr/bin/env bash
# shellcheck disable=SC2016  # single-quoted code is expanded by the inner bash
# test_cap.sh: tests for the --cap PCT support of scripts/compare.sh and
# scripts/bench.sh and its cgroup helpers in scripts/lib.sh (issue 10).
#
# Side-effect free and root-free: the helpers run against fake cgroup
# trees in a temporary directory (CORECAST_CGROUP_ROOT), and the scripts
# only as far as their argument checks and the cgroup preflight, which end
# them before any build, sysctl or server. The one test that needs an
# unprivileged user (the refusal without root) is skipped unless this runs
# as root with setpriv available. Runs in a few seconds.
# Ends with the line "N passed, M failed"; exits 1 if anything failed.
#
# Usage: bash tests/scripts/test_cap.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROOT
readonly LIB="$ROOT/scripts/lib.sh"
readonly COMPARE="$ROOT/scripts/compare.sh"
readonly BENCH="$ROOT/scripts/bench.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

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
        test_add_caps_takes_repeats_and_lists \
        test_add_caps_refuses_bad_values \
        test_quota_is_pct_thousandths_of_the_period \
        test_detect_prefers_v1_cpu_controller \
        test_detect_v2_hybrid_and_unified \
        test_detect_refuses_without_cpu_controller \
        test_v1_group_gets_period_and_quota_and_every_thread \
        test_v2_group_gets_cpu_max_and_the_controller \
        test_groups_are_unique_and_removed_on_exit \
        test_cgroup_path_of_reads_proc_cgroup \
        test_steady_cpu_uses_the_steady_window \
        test_scripts_refuse_bad_caps_before_building \
        test_scripts_refuse_without_cpu_controller \
        test_compare_compressed_only_needs_out \
        test_preflight_refuses_non_root \
        test_cap_files_are_shellcheck_clean; do
        "$t" || true
    done

    if ((${#skipped[@]} > 0)); then
        echo "skipped: ${skipped[*]}"
    fi
    echo "$passed passed, $failed failed"
    ((failed == 0))
}

# in_lib CODE: runs CODE in a fresh bash that has sourced lib.sh, with
# `set -u` as the scripts have it; output in $out, status in $rc.
in_lib() {
    run bash -c 'set -u; . "$1"; eval "$2"' _ "$LIB" "$1"
}

# fake_v1 DIR / fake_v2 DIR [CONTROLLERS]: fake cgroup trees.
fake_v1() {
    mkdir -p "$1/cpu" "$1/unified"
    echo -1 >"$1/cpu/cpu.cfs_quota_us"
    echo 100000 >"$1/cpu/cpu.cfs_period_us"
    echo hugetlb >"$1/unified/cgroup.controllers"
}
fake_v2() {
    mkdir -p "$1"
    echo "${2:-cpuset cpu io memory pids}" >"$1/cgroup.controllers"
    : >"$1/cgroup.subtree_control"
}

# ---- argument parsing -------------------------------------------------------

test_add_caps_takes_repeats_and_lists() {
    begin "add_caps: repeated flags and comma/space lists, repeats dropped, leading zeros read as decimal"
    in_lib 'add_caps 25 && add_caps 40 && add_caps "25,10" && add_caps "08 100" && echo "caps=${CAPS[*]}"'
    expect_rc 0 && expect_out '^caps=25 40 10 8 100$'
    end
}

test_add_caps_refuses_bad_values() {
    begin "add_caps: 0, 101, -5, 2.5, x, empty and a glob are refused with a message"
    local v
    for v in 0 101 -5 2.5 x "" "*" "25,abc"; do
        in_lib "add_caps '$v'"
        if ! { expect_rc 1 && expect_out "bad --cap value"; }; then break; fi
    done
    end
}

test_quota_is_pct_thousandths_of_the_period() {
    begin "quota: PCT x 1000 us per 100000 us period"
    in_lib 'echo "$CAP_PERIOD_US $(cap_quota_us 25) $(cap_quota_us 40) $(cap_quota_us 1) $(cap_quota_us 100)"'
    expect_rc 0 && expect_out '^100000 25000 40000 1000 100000$'
    end
}

# ---- cgroup selection -------------------------------------------------------

test_detect_prefers_v1_cpu_controller() {
    begin "detect: v1 cpu controller (this project's machines: cgroup2 mounted too, without cpu)"
    local r=$tmp/detect-v1
    fake_v1 "$r"
    in_lib "cgroup_detect '$r' && echo \"\$CG_VERSION \$CG_BASE\" && cgroup_describe"
    expect_rc 0 && expect_out "^v1 $r/cpu\$" && expect_out 'cgroup v1.*cpu.cfs_quota_us'
    end
}

test_detect_v2_hybrid_and_unified() {
    begin "detect: v2 at ROOT/unified (hybrid) or ROOT (unified) when cgroup.controllers lists cpu"
    local r=$tmp/detect-v2
    fake_v2 "$r/hybrid/unified" "memory cpu"
    fake_v2 "$r/pure"
    in_lib "cgroup_detect '$r/hybrid' && echo \"\$CG_VERSION \$CG_BASE\""
    expect_rc 0 && expect_out "^v2 $r/hybrid/unified\$" &&
        in_lib "cgroup_detect '$r/pure' && echo \"\$CG_VERSION \$CG_BASE\" && cgroup_describe" &&
        expect_rc 0 && expect_out "^v2 $r/pure\$" && expect_out 'cgroup v2.*cpu.max'
    end
}

test_detect_refuses_without_cpu_controller() {
    begin "detect/preflight: no cpu controller (cpuset is not cpu) is refused clearly"
    local r=$tmp/detect-none
    fake_v2 "$r/unified" "cpuset hugetlb"
    in_lib "cgroup_detect '$r'"
    expect_rc 1 &&
        run env CORECAST_CGROUP_ROOT="$r" bash -c 'set -u; . "$1"; cap_preflight' _ "$LIB" &&
        expect_rc 1 && expect_out 'no cpu controller'
    end
}

# ---- groups -----------------------------------------------------------------

test_v1_group_gets_period_and_quota_and_every_thread() {
    begin "v1: group under cpu/ with period 100000 and quota PCT*1000; pid and every thread moved"
    local r=$tmp/v1-group pid
    fake_v1 "$r"
    # A process with several threads: this test's own bash has one, so use
    # a sleeping child and check every entry of its /proc/PID/task.
    sleep 30 &
    pid=$!
    run env CORECAST_CGROUP_ROOT="$r" bash -c '
        set -u; . "$1"
        cap_preflight && cgroup_create 25 && cgroup_move "$2" || exit 1
        echo "dir=$CG_DIR"
        echo "period=$(<"$CG_DIR/cpu.cfs_period_us") quota=$(<"$CG_DIR/cpu.cfs_quota_us")"
        echo "procs=$(<"$CG_DIR/cgroup.procs")"
        echo "tasks=$(tr "\n" " " <"$CG_DIR/tasks")"
        echo "threads=$(ls "/proc/$2/task" | tr "\n" " ")"' _ "$LIB" "$pid"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local tasks threads
    tasks=$(sed -n 's/^tasks=//p' <<<"$out")
    threads=$(sed -n 's/^threads=//p' <<<"$out")
    expect_rc 0 && expect_out "^dir=$r/cpu/corecast-cap25-[0-9]+\$" &&
        expect_out '^period=100000 quota=25000$' && expect_out "^procs=$pid\$" &&
        expect_equal "$threads" "$tasks" "every thread written to tasks"
    end
}

test_v2_group_gets_cpu_max_and_the_controller() {
    begin "v2: cpu.max \"PCT*1000 100000\", +cpu handed down, pid through cgroup.procs"
    local r=$tmp/v2-group
    fake_v2 "$r"
    run env CORECAST_CGROUP_ROOT="$r" bash -c '
        set -u; . "$1"
        cap_preflight && cgroup_create 40 && cgroup_move $$ || exit 1
        echo "dir=$CG_DIR"
        echo "max=$(<"$CG_DIR/cpu.max") subtree=$(<"$CG_BASE/cgroup.subtree_control")"
        echo "procs=$(<"$CG_DIR/cgroup.procs") self=$$"
        [[ -e $CG_DIR/tasks ]] && echo "v1 tasks file written"' _ "$LIB"
    expect_out "^dir=$r/corecast-cap40-[0-9]+\$" && expect_out '^max=40000 100000 subtree=\+cpu$' &&
        expect_out '^procs=([0-9]+) self=\1$' && expect_no_out 'v1 tasks'
    end
}

test_groups_are_unique_and_removed_on_exit() {
    begin "groups: one per cap and script, named apart, removed by an EXIT trap"
    local r=$tmp/cleanup
    fake_v1 "$r"
    run env CORECAST_CGROUP_ROOT="$r" bash -c '
        set -u; . "$1"
        trap cgroup_remove_all EXIT
        cap_preflight && cgroup_create 25 && cgroup_create 40 || exit 1
        ls "$CG_BASE" | grep corecast-cap
        cgroup_create 25 && echo "made a second group of the same name"
        exit 0' _ "$LIB"
    expect_out '^corecast-cap25-[0-9]+$' && expect_out '^corecast-cap40-[0-9]+$' &&
        expect_out 'cannot create' && expect_no_out 'second group' &&
        expect_equal "" "$(find "$r/cpu" -mindepth 1 -maxdepth 1 -type d)" "groups left behind"
    end
}

test_cgroup_path_of_reads_proc_cgroup() {
    begin "cgroup_path_of: the cpu line in v1 (also cpu,cpuacct; not cpuacct or cpuset), the 0:: line in v2"
    local f=$tmp/proc-cgroup
    printf '%s\n' '4:memory:/m' '3:cpuset:/s' '2:cpuacct:/a' '1:cpu:/corecast-cap25-7' '0::/u' >"$f.v1"
    printf '%s\n' '5:cpu,cpuacct:/combined' '3:cpuset:/s' >"$f.comb"
    printf '%s\n' '0::/corecast-cap40-9' >"$f.v2"
    in_lib "cgroup_path_of v1 <'$f.v1'; cgroup_path_of v1 <'$f.comb'; cgroup_path_of v2 <'$f.v2'; cgroup_path_of v2 <'$f.comb' || echo none"
    expect_rc 0 && expect_equal $'/corecast-cap25-7\n/combined\n/corecast-cap40-9\nnone' "$out" "paths"
    end
}

test_steady_cpu_uses_the_steady_window() {
    begin "steady_cpu: CPU s/s from 1 s after every connection is held to 0.5 s before the run ends"
    local f=$tmp/samples
    # 1,000 connections held from t=1.5; the run is 3 s; 10 ticks per 0.5 s
    # inside the window (0.2 s/s at 100 Hz), a burst outside it (ramp).
    printf '%s\n' '# header' '1.0 0 10' '1.5 90 1010' '2.0 100 1010' '2.5 110 1010' \
        '3.0 120 1010' '3.5 130 1010' '4.0 140 1010' '4.5 900 1010' >"$f"
    in_lib "steady_cpu '$f' 10 1000 3 100; steady_cpu '$f' 10 5000 3 100; echo end"
    expect_rc 0 && expect_equal $'0.200\nend' "$out" "window CPU"
    end
}

# ---- the scripts ------------------------------------------------------------

test_scripts_refuse_bad_caps_before_building() {
    begin "compare.sh/bench.sh: bad --cap exits 2; --cap-only needs --cap (and --out for compare)"
    run "$COMPARE" --cap 0
    expect_rc 2 && expect_out "bad --cap value '0'" &&
        run "$COMPARE" --cap && expect_rc 2 && expect_out 'bad --cap value' &&
        run "$COMPARE" --cap-only && expect_rc 2 && expect_out '--cap-only needs --cap' &&
        run env CORECAST_CGROUP_ROOT="$tmp/none" "$COMPARE" --cap 25 --cap-only &&
        expect_rc 2 && expect_out 'give --out' &&
        run "$BENCH" --cap 200 && expect_rc 2 && expect_out "bad --cap value '200'" &&
        run "$BENCH" --cap-only && expect_rc 2 && expect_out '--cap-only needs --cap' &&
        run "$COMPARE" --help && expect_rc 0 && expect_out '--cap PCT' &&
        run "$BENCH" --help && expect_rc 0 && expect_out '--cap PCT'
    end
}

test_scripts_refuse_without_cpu_controller() {
    begin "compare.sh/bench.sh --cap: no cpu controller is refused (exit 1) before any build"
    local r=$tmp/no-controller
    fake_v2 "$r/unified" hugetlb
    run env CORECAST_CGROUP_ROOT="$r" "$COMPARE" --cap 25 --out "$tmp/cmp-out"
    expect_rc 1 && expect_out 'no cpu controller' && expect_no_out 'building' &&
        expect_missing "$tmp/cmp-out" &&
        run env CORECAST_CGROUP_ROOT="$r" "$BENCH" --cap 25 --out "$tmp/bench-out" &&
        expect_rc 1 && expect_out 'no cpu controller' && expect_no_out 'building' &&
        expect_missing "$tmp/bench-out"
    end
}

test_compare_compressed_only_needs_out() {
    begin "compare.sh --compressed-only without --out exits 2 before any build; --help names it"
    run "$COMPARE" --compressed-only
    expect_rc 2 && expect_out 'give --out' && expect_no_out 'building' &&
        run "$COMPARE" --help && expect_rc 0 && expect_out '--compressed-only'
    end
}

test_preflight_refuses_non_root() {
    begin "preflight: refused without root on the real tree"
    if [[ $EUID != 0 ]]; then
        run bash -c 'set -u; . "$1"; cap_preflight' _ "$LIB"
        expect_rc 1 && expect_out 'needs root'
    elif ! command -v setpriv >/dev/null || ! setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null ||
        ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -r "$LIB"; then
        skip "needs setpriv and a checkout user nobody can read"
        return 0
    else
        run setpriv --reuid=nobody --regid=nogroup --clear-groups \
            env -u CORECAST_CGROUP_ROOT bash -c 'set -u; . "$1"; cap_preflight' _ "$LIB"
        expect_rc 1 && expect_out '--cap needs root'
    fi
    end
}

test_cap_files_are_shellcheck_clean() {
    begin "shellcheck finds nothing in lib.sh, compare.sh, bench.sh and this file"
    if ! command -v shellcheck >/dev/null; then
        skip "shellcheck is not installed"
        return 0
    fi
    run shellcheck -x "$LIB" "$COMPARE" "$BENCH" "${BASH_SOURCE[0]}"
    expect_rc 0
    end
}

# ---- helpers ----------------------------------------------------------------

# Test bookkeeping and expectations: tests/scripts/harness.sh.
# shellcheck source-path=SCRIPTDIR source=harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

main "$@"
