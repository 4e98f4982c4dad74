"""Leak check at build (issue 17 item 3): a planted leak of the fix makes the task invalid, with the
file and line; the bundled inline tasks are clean."""
from __future__ import annotations

from minimax2.eval import build, leaks, records

CALC = "def parse(s):\n    return int(s)\n"
GOLD = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,4 @@
 def parse(s):
+    if not s.strip():
+        raise EmptyInputError("empty input string is not a number")
     return int(s)
"""
TESTS = "from calc import parse\n\n\ndef test_parse():\n    assert parse('3') == 3\n"


def _task(files: dict, **kw) -> records.Task:
    return records.Task(instance_id="leaky", task_type="smoke", tier="smoke", problem_statement="p",
                        test_files=["tests/test_calc.py"], gold_patch=GOLD,
                        files={"calc.py": CALC, "tests/test_calc.py": TESTS, **files}, **kw)


def test_planted_leaks_are_found_with_file_and_line(tmp_path):
    changelog = ("# Changes\n\n- parse() raises 'empty input string is not a number' on blank input\n"
                 "- fixes #123\n- new EmptyInputError\n")
    task = _task({"CHANGELOG.md": changelog}, provenance={"upstream": "someone/calc abc123 (issue 123)"})
    meta = build.build_task(task, tmp_path)
    assert meta["status"] == "invalid"
    reason = meta["reason"]
    assert "CHANGELOG.md:3" in reason and "empty input string is not a number" in reason
    assert "CHANGELOG.md:4" in reason and "issue 123" in reason
    assert "CHANGELOG.md:5" in reason and "EmptyInputError" in reason


def test_clean_tree_and_code_reuse_are_not_leaks(tmp_path):
    helpers = "class EmptyInputError(ValueError):\n    pass\n"  # an identifier in code is not a leak
    task = _task({"errors.py": helpers, "README.md": "parse numbers; see issue 12 and #1234\n"},
                 provenance={"upstream": "someone/calc abc123 (issue 123)"})
    (tmp_path / "buggy").mkdir()
    for rel, text in task.files.items():
        (tmp_path / "buggy" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "buggy" / rel).write_text(text)
    assert leaks.check(tmp_path / "buggy", GOLD, task.provenance) == []


def test_bundled_inline_tasks_are_clean(tmp_path):
    for task in records.load_tasks(tier="smoke"):
        out = tmp_path / task.instance_id
        build._materialise_inline(task, out)
        assert leaks.check(out / "buggy", (out / "gold.patch").read_text(), task.provenance) == []
