#!/usr/bin/env python3
"""Compares an Autobahn|Testsuite run with autobahn/expected.json.

Python 3 (the suite itself runs under 2.7; this only reads its index.json).

    compare.py check EXPECTED INDEX [--cases PATTERNS]
        Prints the counts per behavior and every case whose behavior is worse
        than expected (or missing from the run), then exits 1 if there was
        one. A case better than expected is printed as a note: update
        EXPECTED. PATTERNS are the comma-separated case patterns the run was
        given (wstest's syntax, e.g. "1.*,6.4.*"); only expected cases they
        match must be in the run.
    compare.py update EXPECTED INDEX
        Rewrites EXPECTED's cases from the run, keeping its other keys.

The order, best first: OK = INFORMATIONAL < NON-STRICT < UNIMPLEMENTED <
FAILED < anything else (an unknown word, or no result).
"""
import argparse
import fnmatch
import json
import sys

# The suite's words for a case's behavior, ranked: a run fails when a case
# ranks higher than its expectation. INFORMATIONAL cases only report what
# the server did, so they rank with OK.
RANK = {"OK": 0, "INFORMATIONAL": 0, "NON-STRICT": 1, "UNIMPLEMENTED": 2, "FAILED": 3}
# Rank of a word not in RANK, or of a case the run did not report.
WORST = 4
# The agent name scripts/autobahn.sh gives the server in its spec.
AGENT = "corecast"


def case_key(case_id):
    """Sort key: "9.10.2" after "9.2.1" (numeric, part by part)."""
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def rank(behavior):
    return RANK.get(behavior, WORST)


def load_results(index_path, agent=AGENT):
    """The run's cases: id -> the suite's record (behavior, behaviorClose,
    duration, remoteCloseCode, reportfile)."""
    with open(index_path) as f:
        index = json.load(f)
    if agent not in index:
        raise SystemExit("compare.py: %s has no results for agent %r" % (index_path, agent))
    return index[agent]


def load_expected(path):
    with open(path) as f:
        return json.load(f)


def selected(case_id, patterns):
    return any(fnmatch.fnmatchcase(case_id, p) for p in patterns)


def compare(expected_cases, results, patterns=("*",)):
    """Returns (worse, better): lists of (case, got, expected) in case order.
    A selected expected case missing from results is worse ("MISSING"); a
    case the expectations lack is expected to be OK."""
    worse, better = [], []
    ids = set(results) | {c for c in expected_cases if selected(c, patterns)}
    for case in sorted(ids, key=case_key):
        want = expected_cases.get(case, "OK")
        got = results[case]["behavior"] if case in results else "MISSING"
        if rank(got) > rank(want):
            worse.append((case, got, want))
        elif rank(got) < rank(want):
            better.append((case, got, want))
    return worse, better


def counts(results):
    """Behavior -> number of cases, best first."""
    out = {}
    for record in results.values():
        out[record["behavior"]] = out.get(record["behavior"], 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (rank(kv[0]), kv[0])))


def summary_line(results):
    total_ms = sum(r.get("duration", 0) for r in results.values())
    parts = ", ".join("%s %d" % kv for kv in counts(results).items())
    return "%d cases (%s), %.1f s of case time" % (len(results), parts, total_ms / 1000.0)


def describe(case, got, want, results):
    line = "%s: %s (expected %s)" % (case, got, want)
    record = results.get(case)
    if record:
        line += ", close %s, remote code %s, report %s" % (
            record.get("behaviorClose"),
            record.get("remoteCloseCode"),
            record.get("reportfile"),
        )
    return line


def check(args):
    expected = load_expected(args.expected)["cases"]
    results = load_results(args.index)
    patterns = [p for p in args.cases.split(",") if p]
    worse, better = compare(expected, results, patterns)
    print("autobahn: " + summary_line(results))
    for case, got, want in better:
        print("autobahn: better than expected, update %s: %s: %s (expected %s)"
              % (args.expected, case, got, want))
    for case, got, want in worse:
        print("autobahn: WORSE " + describe(case, got, want, results))
    if worse:
        print("autobahn: %d case(s) worse than %s" % (len(worse), args.expected))
        return 1
    print("autobahn: no case worse than %s" % args.expected)
    return 0


def update(args):
    doc = load_expected(args.expected)
    results = load_results(args.index)
    doc["cases"] = {c: results[c]["behavior"] for c in sorted(results, key=case_key)}
    with open(args.expected, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("autobahn: wrote %s: %s" % (args.expected, summary_line(results)))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check")
    p.add_argument("expected")
    p.add_argument("index")
    p.add_argument("--cases", default="*")
    p.set_defaults(run=check)
    p = sub.add_parser("update")
    p.add_argument("expected")
    p.add_argument("index")
    p.set_defaults(run=update)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
