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
    """An existing class named in the docs, a one-word keyword string that other code has, other
    issue numbers: none of them gives the fix away."""
    gold = GOLD.replace("@@ -1,2 +1,4 @@", "@@ -1,2 +1,5 @@").replace(
        "     return int(s)", "+    mode = 'DEFERRED'\n     return int(s)")
    files = {"calc.py": CALC, "errors.py": "class EmptyInputError(ValueError):\n    pass\n",
             "keywords.py": "KEYWORDS = {'DEFERRED': 1}\n",
             "README.md": "parse numbers; raises EmptyInputError; see issue 12 and #1234\n"}
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    assert leaks.check(tmp_path, gold, {"upstream": "someone/calc abc123 (issue 123)"}) == []
    (tmp_path / "NEWS.txt").write_text("parse() says: empty input string is not a number\n")
    assert [str(x) for x in leaks.check(tmp_path, gold, {})] == [
        "NEWS.txt:1 contains \"string 'empty input string is not a number'\" from the fix"]


def test_bundled_inline_tasks_are_clean(tmp_path):
    for task in records.load_tasks(tier="smoke"):
        out = tmp_path / task.instance_id
        build._materialise_inline(task, out)
        assert leaks.check(out / "buggy", (out / "gold.patch").read_text(), task.provenance) == []
