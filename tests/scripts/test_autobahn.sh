#!/usr/bin/env bash
# test_autobahn.sh: scripts/autobahn.sh's command line and its skip path,
# and the unit tests of autobahn/compare.py (which decides pass or fail).
# Runs neither the suite nor a server, so it takes a second; the real run
# is `scripts/autobahn.sh` (CI: .ci/run).
# Ends with the line "N passed, M failed"; exits 1 if anything failed.
#
# Usage: bash tests/scripts/test_autobahn.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROOT

passed=0
failed=0
out=
rc=0

run() {
    rc=0
    out=$(timeout 60 "$@" 2>&1) || rc=$?
}

expect() {
    local name=$1 want_rc=$2 want_text=$3
    if [[ $rc == "$want_rc" && $out == *"$want_text"* ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name: exit $rc (want $want_rc), output:" >&2
        printf '%s\n' "$out" | head -8 >&2
    fi
}

run bash "$ROOT/scripts/autobahn.sh" --help
expect help_comes_from_the_header 0 "--quick"

run bash "$ROOT/scripts/autobahn.sh" --frobnicate
expect unknown_argument 2 "unknown argument --frobnicate"

run bash "$ROOT/scripts/autobahn.sh" --cases
expect cases_needs_a_list 2 "--cases needs a list"

# No Python 2.7: a loud skip, exit 0 (1 with --require), before any build.
run env AUTOBAHN_PYTHON=/nonexistent bash "$ROOT/scripts/autobahn.sh" --quick
expect skips_without_python 0 "SKIPPED: no Python 2.7"
run env AUTOBAHN_PYTHON=/nonexistent bash "$ROOT/scripts/autobahn.sh" --require
expect require_turns_the_skip_into_a_failure 1 "SKIPPED: no Python 2.7"

if command -v python3 >/dev/null 2>&1; then
    run python3 -m unittest discover -s "$ROOT/autobahn" -p 'test_*.py'
    expect compare_py_unit_tests 0 "OK"
    run python3 -c "import json, sys; json.load(open(sys.argv[1]))['cases']" "$ROOT/autobahn/expected.json"
    expect expected_json_parses 0 ""
else
    echo "skip compare.py tests (no python3)"
fi

if command -v shellcheck >/dev/null 2>&1; then
    run shellcheck -x "$ROOT/scripts/autobahn.sh" "$ROOT/tests/scripts/test_autobahn.sh"
    expect shellcheck_is_clean 0 ""
else
    echo "skip shellcheck (not installed)"
fi

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
