"""Sandbox and graders on small inline tasks (no network): SWE-bench rules, infra_error, the
add-tests and refactor graders, oracle modes."""
import dataclasses
import time

import pytest

from minimax2.eval import build, grading, isolation, records, runner, sandbox, tools
from minimax2.eval.patching import unified_diff

CALC = 'def add(a, b):\n    return a - b\n'
CALC_FIXED = 'def add(a, b):\n    return a + b\n'
HIDDEN = 'from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n'
SHAPES = ('def area(kind, x):\n    if kind == "square":\n        side = x\n        return side * side\n'
          '    return 3.14159 * x * x\n')
SHAPES_REFACTORED = ('def _square_area(side):\n    return side * side\n\n\n'
                     'def area(kind, x):\n    if kind == "square":\n        return _square_area(x)\n'
                     '    return 3.14159 * x * x\n')
SHAPES_TEST = ('from shapes import area\n\n\ndef test_area():\n    assert area("square", 3) == 9\n'
               '    assert round(area("circle", 1), 2) == 3.14\n')


def _task(kind, **extra):
    base = dict(instance_id=f"inline-{kind}", task_type=kind, tier="smoke", problem_statement="x" * 90)
    if kind in ("bugfix", "add_tests"):
        base.update(files={"calc.py": CALC, "tests/test_calc.py": HIDDEN}, test_files=["tests/test_calc.py"],
                    FAIL_TO_PASS=["tests/test_calc.py::test_add"], gold_patch=unified_diff(CALC, CALC_FIXED, "calc.py"))
    else:
        base.update(files={"shapes.py": SHAPES, "tests/test_shapes.py": SHAPES_TEST},
                    gold_patch=unified_diff(SHAPES, SHAPES_REFACTORED, "shapes.py"),
                    structure=[{"kind": "defines", "file": "shapes.py", "name": "_square_area"},
                               {"kind": "calls", "file": "shapes.py", "name": "area", "callee": "_square_area"}])
    base.update(extra)
    return records.Task(**base)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for kind in ("bugfix", "add_tests", "refactor"):
        task = _task(kind)
        meta = build.build_task(task, cache)
        assert meta["status"] == "valid", meta.get("reason")
        out[kind] = build.load_built(task.instance_id, cache)
    return out


def test_bugfix_gold_empty_and_broken_patch(built):
    task, folder = built["bugfix"]
    assert not (folder / "buggy" / "tests" / "test_calc.py").exists()  # hidden until grading
    assert grading.grade(task, folder, runner.oracle_patch(task, folder, "gold")).status == "resolved"
    empty = grading.grade(task, folder, runner.oracle_patch(task, folder, "empty"))
    assert empty.status == "unresolved" and "FAIL_TO_PASS" in empty.reason
    broken = grading.grade(task, folder, "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-x\n+y\n")
    assert broken.status == "unresolved" and "does not apply" in broken.reason


def test_suite_that_does_not_run_is_infra_error(built):
    task, folder = built["bugfix"]
    task = dataclasses.replace(task, test_cmd="python -c 'raise SystemExit(3)'")
    assert grading.grade(task, folder, runner.oracle_patch(task, folder, "gold")).status == "infra_error"


def test_invalid_task_is_reported_not_kept(tmp_path):
    task = _task("bugfix", instance_id="inline-invalid", FAIL_TO_PASS=["tests/test_calc.py::test_missing"])
    meta = build.build_task(task, tmp_path)
    assert meta["status"] == "invalid" and "test_missing" in meta["reason"]
    with pytest.raises(build.InvalidTask):
        build.load_built("inline-invalid", tmp_path)


def test_add_tests_grader(built):
    task, folder = built["add_tests"]
    upstream = runner.oracle_patch(task, folder, "gold")
    assert "tests/test_calc.py" in upstream
    assert grading.grade(task, folder, upstream).status == "resolved"
    trivial = unified_diff("", "def test_x():\n    assert True\n", "tests/test_x.py", old_exists=False)
    graded = grading.grade(task, folder, trivial)
    assert graded.status == "unresolved" and "buggy" in graded.reason
    always_fails = unified_diff("", "def test_x():\n    assert False\n", "tests/test_x.py", old_exists=False)
    assert grading.grade(task, folder, always_fails).status == "unresolved"
    assert grading.grade(task, folder, "").status == "unresolved"
    # changes outside test files are ignored: a fix alone does not count as a test
    assert grading.grade(task, folder, unified_diff(CALC, CALC_FIXED, "calc.py")).status == "unresolved"


def test_refactor_grader(built):
    task, folder = built["refactor"]
    assert grading.grade(task, folder, runner.oracle_patch(task, folder, "gold")).status == "resolved"
    assert grading.grade(task, folder, "").status == "unresolved"
    unused = unified_diff(SHAPES, "def _square_area(side):\n    return side * side\n\n\n" + SHAPES, "shapes.py")
    graded = grading.grade(task, folder, unused)
    assert graded.status == "unresolved" and "structural" in graded.reason
    behaviour = unified_diff(SHAPES, SHAPES_REFACTORED.replace("side * side", "side + side"), "shapes.py")
    assert grading.grade(task, folder, behaviour).status == "unresolved"


def test_sandbox_timeout_kills_process_group(tmp_path):
    start = time.monotonic()
    result = sandbox.run("sleep 30 & sleep 30; echo never", tmp_path, timeout=1)
    assert result.timed_out and result.returncode is None and "never" not in result.output
    assert time.monotonic() - start < 10


def test_sandbox_output_capped_and_offline(tmp_path):
    result = sandbox.run("python3 -c \"print('x' * 100000)\"", tmp_path, limit=1000)
    assert result.truncated and len(result.output) < 1200 and "elided" in result.output
    if isolation.detect().level != "none":
        probe = sandbox.run("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), 3)\"", tmp_path)
        assert probe.returncode != 0


def test_edit_tool(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2\n")
    assert "x = 1" in tools.edit(tmp_path, {"command": "view", "path": "a.py"})
    tools.edit(tmp_path, {"command": "str_replace", "path": "a.py", "old_str": "y = 2", "new_str": "y = 3"})
    assert (tmp_path / "a.py").read_text() == "x = 1\ny = 3\n"
    tools.edit(tmp_path, {"command": "create", "path": "pkg/b.py", "file_text": "z = 0\n"})
    assert (tmp_path / "pkg" / "b.py").read_text() == "z = 0\n"
    assert "2\ty = 3" in tools.edit(tmp_path, {"command": "view", "path": "a.py", "view_range": [2, -1]})
    with pytest.raises(tools.ToolError):
        tools.edit(tmp_path, {"command": "str_replace", "path": "a.py", "old_str": "nothing", "new_str": ""})
    with pytest.raises(tools.ToolError):
        tools.edit(tmp_path, {"command": "view", "path": "../outside"})
    with pytest.raises(tools.FormatError):
        tools.execute("rm_rf", {}, tmp_path, tmp_path, 1)
    with pytest.raises(tools.FormatError):
        tools.edit(tmp_path, {"command": "create", "path": "c.py"})
