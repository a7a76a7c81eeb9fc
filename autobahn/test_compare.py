"""Tests of compare.py: python3 -m unittest discover -s autobahn -p 'test_*.py'."""
import io
import json
import os
import tempfile
import unittest
from contextlib import redirect_stdout

import compare


def record(behavior):
    return {"behavior": behavior, "behaviorClose": "OK", "duration": 5,
            "remoteCloseCode": 1000, "reportfile": "x.json"}


class CompareTest(unittest.TestCase):
    def test_case_ids_sort_numerically(self):
        ids = ["9.10.1", "9.2.1", "10.1.1", "1.1.10", "1.1.2"]
        self.assertEqual(sorted(ids, key=compare.case_key),
                         ["1.1.2", "1.1.10", "9.2.1", "9.10.1", "10.1.1"])

    def test_worse_better_and_equal(self):
        expected = {"1.1.1": "OK", "6.4.3": "OK", "7.1.6": "INFORMATIONAL",
                    "12.1.1": "UNIMPLEMENTED", "12.1.2": "UNIMPLEMENTED"}
        results = {"1.1.1": record("OK"), "6.4.3": record("NON-STRICT"),
                   "7.1.6": record("OK"), "12.1.1": record("OK"),
                   "12.1.2": record("FAILED")}
        worse, better = compare.compare(expected, results)
        self.assertEqual(worse, [("6.4.3", "NON-STRICT", "OK"),
                                 ("12.1.2", "FAILED", "UNIMPLEMENTED")])
        self.assertEqual(better, [("12.1.1", "OK", "UNIMPLEMENTED")])

    def test_missing_cases_count_only_when_selected(self):
        expected = {"1.1.1": "OK", "9.1.1": "OK", "12.1.1": "UNIMPLEMENTED"}
        results = {"1.1.1": record("OK")}
        worse, _ = compare.compare(expected, results, ["1.*", "2.*"])
        self.assertEqual(worse, [])
        worse, _ = compare.compare(expected, results, ["*"])
        self.assertEqual(worse, [("9.1.1", "MISSING", "OK"),
                                 ("12.1.1", "MISSING", "UNIMPLEMENTED")])

    def test_pattern_1_star_does_not_select_section_12(self):
        self.assertTrue(compare.selected("1.2.3", ["1.*"]))
        self.assertFalse(compare.selected("12.1.1", ["1.*"]))

    def test_unknown_cases_and_words_are_expected_ok(self):
        worse, _ = compare.compare({}, {"99.1.1": record("WRONG CODE")})
        self.assertEqual(worse, [("99.1.1", "WRONG CODE", "OK")])

    def test_check_exit_status_and_update(self):
        with tempfile.TemporaryDirectory() as tmp:
            exp = os.path.join(tmp, "expected.json")
            idx = os.path.join(tmp, "index.json")
            with open(exp, "w") as f:
                json.dump({"about": "kept", "cases": {"1.1.1": "OK"}}, f)
            with open(idx, "w") as f:
                json.dump({"corecast": {"1.1.1": record("FAILED"),
                                        "12.1.1": record("UNIMPLEMENTED")}}, f)
            out = io.StringIO()
            with redirect_stdout(out):
                self.assertEqual(compare.main(["check", exp, idx]), 1)
            self.assertIn("WORSE 1.1.1: FAILED (expected OK)", out.getvalue())
            self.assertIn("WORSE 12.1.1: UNIMPLEMENTED (expected OK)", out.getvalue())
            with redirect_stdout(io.StringIO()):
                self.assertEqual(compare.main(["update", exp, idx]), 0)
                self.assertEqual(compare.main(["check", exp, idx]), 0)
            with open(exp) as f:
                doc = json.load(f)
            self.assertEqual(doc["about"], "kept")
            self.assertEqual(list(doc["cases"]), ["1.1.1", "12.1.1"])


if __name__ == "__main__":
    unittest.main()
