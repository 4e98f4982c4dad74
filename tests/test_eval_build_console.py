"""`eval build` output (issue 17 item 6): test ids printed literally, invalid builds not cached,
the log's path shown with the last lines of the real error."""
from __future__ import annotations

import copy

from rich.console import Console

from minimax2.eval import build, cli, records

CALC = "def size(n):\n    return f'{n} Byte'\n"
GOLD = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def size(n):
-    return f'{n} Byte'
+    return f'{n} Bytes'
"""
TESTS = ("import pytest\nfrom calc import size\n\n\n"
         "@pytest.mark.parametrize('args', ['1 Bytes'])\n"
         "def test_size(args):\n    assert size(1) == args\n")
PARAM_ID = "tests/test_calc.py::test_size[1 Bytes]"


def _task(**kw) -> records.Task:
    base = dict(instance_id="console-task", task_type="smoke", tier="smoke", problem_statement="p",
                test_files=["tests/test_calc.py"], gold_patch=GOLD,
                files={"calc.py": CALC, "tests/test_calc.py": TESTS})
    return records.Task(**{**base, **kw})


def _printed(markup: str) -> str:
    console = Console(record=True, width=400, force_terminal=False)
    console.print(markup)
    return console.export_text()


def test_candidate_ids_print_literally_and_failures_are_not_cached(tmp_path):
    meta = build.build_task(_task(), tmp_path)
    assert meta["status"] == "invalid" and PARAM_ID in meta["reason"]
    assert PARAM_ID in _printed(cli.build_line(meta)), "rich ate the [...] of the test id"
    pasted = (tmp_path / "tasks" / "console-task" / "FAIL_TO_PASS.toml").read_text()
    assert f'"{PARAM_ID}"' in pasted
    again = build.build_task(_task(), tmp_path)
    assert again["status"] == "invalid" and not again.get("cached"), "a failed build came from the cache"
    fixed = build.build_task(_task(FAIL_TO_PASS=[PARAM_ID]), tmp_path)
    assert fixed["status"] == "valid", fixed.get("reason")
    assert build.build_task(_task(FAIL_TO_PASS=[PARAM_ID]), tmp_path).get("cached")


def test_suite_that_did_not_run_shows_its_log_and_real_error(tmp_path):
    noise = "; ".join(f"print('noise {i}')" for i in range(100))
    cmd = f"python -c \"{noise}; print('THE REAL ERROR'); raise SystemExit(3)\""
    meta = build.build_task(_task(test_cmd=cmd, FAIL_TO_PASS=[PARAM_ID]), tmp_path)
    reason = meta["reason"]
    assert meta["status"] == "invalid" and "THE REAL ERROR" in reason
    log_path = tmp_path / "tasks" / "console-task" / "logs" / "fixed.log"
    assert str(log_path) in reason and "noise 0\n" in log_path.read_text()
    assert "noise 50\n" not in reason and len(reason.splitlines()) <= build.ERROR_LINES + 2
    shown = _printed(cli.build_line(copy.deepcopy(meta)))
    assert "THE REAL ERROR" in shown and str(log_path) in shown.replace("\n", "")
