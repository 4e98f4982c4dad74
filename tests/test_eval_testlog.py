"""Test logs (issue 17 items 4 and 5): ANSI codes, the project's addopts, a unittest parser, and
suites that write to the temp dir and home."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from minimax2.eval import grading, sandbox, testlog
from minimax2.eval.records import Task

UNITTEST_MODULE = '''
import unittest

class T(unittest.TestCase):
    def test_ok(self):
        pass
    def test_fail(self):
        self.assertEqual(1, 2)
    def test_error(self):
        raise RuntimeError("boom")
    def test_documented(self):
        """A docstring shown by -v between the name and the status."""
        print("noise from the test")
    @unittest.skip("not today")
    def test_skipped(self):
        pass
    @unittest.expectedFailure
    def test_xfail(self):
        self.assertTrue(False)
'''


def _tree(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    tree = tmp_path / "tree"
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    return sandbox.create(tree, tmp_path / "work")


def test_ansi_coloured_pytest_log_parses():
    log = ("\x1b[32m.\x1b[0m\n\x1b[1m=== short test summary info ===\x1b[0m\n"
           "\x1b[32mPASSED\x1b[0m tests/test_a.py::test_x[1 Bytes]\n"
           "\x1b[31mFAILED\x1b[0m tests/test_a.py::test_y - assert 0\n"
           "\x1b[31m=== 1 failed, 1 passed in 0.12s ===\x1b[0m\n")
    assert testlog.parse(log) == {"tests/test_a.py::test_x[1 Bytes]": "PASSED",
                                  "tests/test_a.py::test_y": "FAILED"}
    assert testlog.suite_ran(log)


def test_unittest_parser_on_a_real_run(tmp_path):
    (tmp_path / "test_mod.py").write_text(UNITTEST_MODULE)
    out = subprocess.run([sys.executable, "-m", "unittest", "-v", "test_mod"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    log = out.stdout + out.stderr
    assert testlog.suite_ran(log, "unittest")
    assert testlog.parse(log, "unittest") == {
        "test_mod.T.test_ok": "PASSED", "test_mod.T.test_fail": "FAILED", "test_mod.T.test_error": "ERROR",
        "test_mod.T.test_documented": "PASSED", "test_mod.T.test_skipped": "SKIPPED",
        "test_mod.T.test_xfail": "XFAIL"}
    assert not testlog.suite_ran("Traceback (most recent call last):\nImportError: x\n", "unittest")


def test_project_addopts_are_neutralised(tmp_path):
    """A pytest.ini naming a plugin the sandbox lacks and forcing colour: the suite still runs."""
    repo, venv = _tree(tmp_path, {
        "pytest.ini": "[pytest]\naddopts = --cov=nothing --color=yes\n",
        "tests/test_a.py": "def test_x():\n    pass\n\ndef test_y():\n    assert 0\n"})
    task = Task(instance_id="t", task_type="smoke", problem_statement="")
    results, ran, log = grading.run_suite(task, repo, venv)
    assert ran, log
    assert results == {"tests/test_a.py::test_x": "PASSED", "tests/test_a.py::test_y": "FAILED"}
    assert "\x1b[" not in log and not (repo / ".pytest_cache").exists()
    kept = Task(instance_id="t", task_type="smoke", problem_statement="", keep_addopts=True)
    assert not grading.run_suite(kept, repo, venv)[1]  # --cov is unknown: the record asked for it


def test_suite_writes_stay_inside_the_sandbox(tmp_path):
    """Issue 17 item 5: tempfile.gettempdir() and ~ of a suite are the sandbox's own."""
    name = f"minimax2-hygiene-{uuid.uuid4().hex}"
    repo, venv = _tree(tmp_path, {"tests/test_w.py": (
        "import os, pathlib, tempfile\n"
        f"def test_write():\n"
        f"    pathlib.Path(tempfile.gettempdir(), {name!r}).write_text('t')\n"
        f"    pathlib.Path(os.path.expanduser('~'), {name!r}).write_text('h')\n")})
    task = Task(instance_id="t", task_type="smoke", problem_statement="")
    results, ran, log = grading.run_suite(task, repo, venv)
    assert results == {"tests/test_w.py::test_write": "PASSED"}, log
    for host_dir in ("/tmp", os.path.expanduser("~"), os.environ.get("TMPDIR", "/tmp")):
        assert not Path(host_dir, name).exists()
    work = repo.parent
    assert (work / "tmp" / name).read_text() == "t" and (work / "home" / name).read_text() == "h"


def test_a_failing_subtest_fails_its_test(tmp_path):
    """pytest 9 runs unittest subTests itself and may list the test PASSED beside a SUBFAILED line."""
    (tmp_path / "test_sub.py").write_text(
        "import unittest\n\nclass T(unittest.TestCase):\n    def test_sub(self):\n"
        "        for i in range(3):\n            with self.subTest(i=i):\n                self.assertNotEqual(i, 1)\n\n"
        "    def test_fine(self):\n        for i in range(2):\n            with self.subTest(i=i):\n                pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "test_sub.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    results = testlog.parse(out.stdout + out.stderr, "pytest")
    assert results["test_sub.py::T::test_sub"] == "FAILED"
    assert results["test_sub.py::T::test_fine"] == "PASSED"
