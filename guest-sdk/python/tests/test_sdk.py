"""The Python SDK under native CPython: signatures, JSON both ways, failures, flow."""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dipla  # noqa: E402
import sample_tasks  # noqa: E402,F401  (registers the tasks)
from dipla.section import custom_section, leb128  # noqa: E402


def records() -> dict:
    return {r["task"]: r for r in map(json.loads, dipla.tasks_section().splitlines())}


def failure(name: str, input: str) -> dipla.Failure:
    try:
        dipla.run(name, input)
    except dipla.Failure as error:
        return error
    raise AssertionError(f"{name}({input}) did not fail")


class Signatures(unittest.TestCase):
    def test_records_read_as_a_rust_guests(self):
        r = records()
        self.assertEqual(
            r["factorise"],
            {
                "abi": 1,
                "task": "factorise",
                "params": [{"name": "n", "type": "u64"}],
                "returns": "Vec<u64>",
                "fold": False,
            },
        )
        self.assertEqual(r["check_factors"]["verifier"], True)
        self.assertEqual(r["check_factors"]["returns"], "bool")
        self.assertTrue(r["add"]["fold"], "two params of the result's type: a reducer")
        self.assertEqual(
            [p["type"] for p in r["centroid"]["params"]], ["Vec<Point>", "BTreeSet<String>"]
        )
        self.assertEqual(r["centroid"]["returns"], "(Point, Stats, Vec<String>)")
        self.assertEqual(r["find"]["returns"], "Flow<Option<u64>>")
        self.assertEqual(r["collatz"]["returns"], "Explore<u64, u64>")
        self.assertIn("opaque", r, "registered under the name it was given")
        self.assertEqual(r["opaque"]["returns"], "Value")

    def test_a_second_task_of_one_name_or_a_reserved_name_is_refused(self):
        with self.assertRaisesRegex(ValueError, "two tasks are named `add`"):
            dipla.task(name="add")(lambda a: a)
        with self.assertRaisesRegex(ValueError, "reserved"):
            dipla.task(name="run")(lambda a: a)

    def test_a_verifier_must_take_input_and_output_and_say_yes_or_no(self):
        def check(n: int) -> bool:
            return True

        with self.assertRaisesRegex(TypeError, "input: In, output: Out"):
            dipla.verifier(check)


class Running(unittest.TestCase):
    def test_values_go_both_ways_canonically(self):
        self.assertEqual(dipla.run("factorise", "360"), ("[2,2,2,3,3,5]", False))
        self.assertEqual(dipla.run("add", "[2,3]"), ("5", False))
        self.assertEqual(dipla.run("add", "[1,2,3,4]"), ("10", False), "a reducer folds")
        out, _ = dipla.run("centroid", '[[{"x":0,"y":0},{"x":2,"y":4}],["b","a","b"]]')
        self.assertEqual(out, '[{"x":1.0,"y":2.0},{"count":2,"mean":1.5},["a","b"]]')
        self.assertEqual(dipla.run("tags", '["z","a","m","a"]'), ('["a","m","z"]', False))

    def test_stop_and_explore(self):
        self.assertEqual(dipla.run("find", "37"), ("37", True))
        self.assertEqual(dipla.run("find", "36"), ("null", False))
        self.assertEqual(dipla.run("collatz", "6"), ('{"output":6,"next":[3]}', False))

    def test_random_draws_depend_on_the_input_only(self):
        first = dipla.run("draw", "3")
        self.assertEqual(first, dipla.run("draw", "3"))
        self.assertNotEqual(first, dipla.run("draw", "4")[0][: len(first[0])])

    def test_failures_say_what_went_wrong_and_where(self):
        refused = failure("refuse", "-2")
        self.assertEqual((refused.kind, refused.message), ("guest", "-2 is negative"))
        crashed = failure("refuse", "0")
        self.assertEqual(crashed.kind, "exception")
        self.assertEqual(crashed.message, "ZeroDivisionError: integer division or modulo by zero")
        self.assertTrue(crashed.frames[-1].startswith("sample_tasks.py:"), crashed.frames)
        self.assertIn("in refuse", crashed.frames[-1])
        self.assertFalse(any("dispatch.py" in f for f in crashed.frames), crashed.frames)

    def test_bad_input_names_the_place(self):
        self.assertEqual(failure("factorise", "-5").message, "-5 is not a u64")
        self.assertEqual(failure("factorise", "true").kind, "bad-input")
        bad = failure("centroid", '[[{"x":0,"y":0,"z":1}],[]]')
        self.assertEqual(bad.message, "Point has no field 'z' at points[0]")
        self.assertIn("takes 2 arguments", failure("centroid", "[1]").message)
        self.assertEqual(failure("add", "[1]").message, "a reducer takes an array of at least 2 values")
        self.assertEqual(failure("add", "{").kind, "bad-input")
        self.assertIn("its tasks: factorise", failure("nope", "1").message)
        self.assertEqual(failure("nope", "1").kind, "no-such-task")

    def test_a_result_without_a_json_form_is_a_bad_output(self):
        bad = failure("opaque", "1")
        self.assertEqual(bad.kind, "bad-output")
        self.assertIn("object has no JSON form", bad.message)

    def test_functions_stay_ordinary(self):
        self.assertEqual(sample_tasks.factorise(12), [2, 2, 3])
        self.assertTrue(sample_tasks.check_factors(12, [2, 2, 3]))


class Section(unittest.TestCase):
    def test_leb128_and_the_section_layout(self):
        self.assertEqual(leb128(0), b"\x00")
        self.assertEqual(leb128(127), b"\x7f")
        self.assertEqual(leb128(128), b"\x80\x01")
        self.assertEqual(leb128(624485), b"\xe5\x8e\x26")
        section = custom_section("dipla", b"xyz")
        self.assertEqual(section, b"\x00\x09\x05diplaxyz")


if __name__ == "__main__":
    unittest.main()
