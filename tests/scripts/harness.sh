# shellcheck shell=bash
# Shared by the shell tests in tests/scripts/ (sourced, not run: it does
# not match test_*.sh). Each test script sets passed=0, failed=0,
# skipped=() and calls these.

# Test bookkeeping: `begin` names the test, expectations record the first
# failure, `end` counts it.
current=
failure=
begin() {
    current=$1
    failure=
    out=
}
end() {
    if [[ -n $failure ]]; then
        failed=$((failed + 1))
        echo "FAIL $current"
        echo "     $failure"
        printf '%s\n' "$out" | tail -n 25 | sed 's/^/     | /'
    else
        passed=$((passed + 1))
        echo "ok   $current"
    fi
}
skip() {
    skipped+=("[$current: $1]")
    echo "skip $current ($1)"
}
fail() {
    [[ -n $failure ]] || failure=$1
    return 1
}

# Runs a command, keeping its combined output in $out and status in $rc.
# Always succeeds, so it can sit in an && chain before the expectations.
run() {
    set +e
    out=$("$@" 2>&1)
    rc=$?
    set -e
    return 0
}

expect_rc() {
    ((rc == $1)) || fail "exit status $rc, expected $1"
}
expect_out() {
    grep -Eq -- "$1" <<<"$out" || fail "output lacks /$1/"
}
expect_no_out() {
    ! grep -Eq -- "$1" <<<"$out" || fail "output has /$1/: $(grep -E -m1 -- "$1" <<<"$out")"
}
expect_equal() {
    [[ $1 == "$2" ]] || fail "$3 (expected '$1', got '$2')"
}
expect_missing() {
    [[ ! -e $1 ]] || fail "$1 exists"
}
expect_same_file() {
    cmp -s "$1" "$2" || fail "$2 differs from $1"
}
# The file has a whole line matching the regex (tabs read as spaces).
expect_file_line() {
    [[ -r $1 ]] || {
        fail "cannot read $1"
        return 1
    }
    # Not `tr <file | grep -q`: grep -q exits at the first match, tr then
    # dies of SIGPIPE on its next write, and pipefail reports that as a miss.
    local text
    text=$(<"$1")
    grep -Eqx -- "$2" <<<"${text//$'\t'/ }" || fail "$1 has no line /$2/"
}
