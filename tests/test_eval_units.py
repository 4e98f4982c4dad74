"""Pure units of the evaluation harness: hunks, log parsing, statistics, AST checks, records."""
import subprocess

import pytest

from minimax2.eval import patching, records, stats, structural, testlog

OLD = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\n"
NEW = "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\nL\nm\nn\n"


def test_hunks_and_selective_reverse_apply():
    hunks = patching.file_hunks(OLD, NEW)
    assert len(hunks) == 2
    assert "-b\n+B\n" in hunks[0].text
    assert patching.reverse_apply(OLD, NEW, hunks) == OLD
    only_first = patching.reverse_apply(OLD, NEW, [hunks[0]])
    assert only_first == NEW.replace("B\n", "b\n")
    assert patching.select_hunks(hunks, {"matching": r"\+L"}) == [hunks[1]]
    assert patching.select_hunks(hunks, {"excluding": r"\+L"}) == [hunks[0]]
    assert patching.select_hunks(hunks, [1]) == [hunks[1]]
    with pytest.raises(ValueError):
        patching.select_hunks(hunks, [5])
    with pytest.raises(ValueError):
        patching.select_hunks(hunks, {"matching": "nothing-like-this"})


def test_unified_diff_applies_with_git(tmp_path):
    (tmp_path / "f.txt").write_text(OLD)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    patch = patching.unified_diff(OLD, NEW, "f.txt") + patching.unified_diff("", "new file\n", "g.txt", old_exists=False)
    subprocess.run(["git", "apply", "-"], cwd=tmp_path, input=patch, text=True, check=True)
    assert (tmp_path / "f.txt").read_text() == NEW
    assert (tmp_path / "g.txt").read_text() == "new file\n"
    assert patching.unified_diff(OLD, OLD, "f.txt") == ""


LOG = """\
============================= test session starts ==============================
collected 5 items
tests/test_a.py .F.sx
=========================== short test summary info ============================
PASSED tests/test_a.py::test_one
PASSED tests/test_a.py::test_param[1e-3 x]
FAILED tests/test_a.py::test_two - AssertionError: assert 1 == 2
SKIPPED [1] tests/test_a.py:10: no reason
XFAIL tests/test_a.py::test_x - known
ERROR tests/test_b.py
==================== 1 failed, 2 passed, 1 skipped, 1 xfailed, 1 error in 0.12s ====================
"""


def test_pytest_log_parser():
    res = testlog.parse(LOG)
    assert res == {"tests/test_a.py::test_one": "PASSED", "tests/test_a.py::test_param[1e-3 x]": "PASSED",
                   "tests/test_a.py::test_two": "FAILED", "tests/test_a.py::test_x": "XFAIL",
                   "tests/test_b.py": "ERROR"}
    assert testlog.suite_ran(LOG)
    assert not testlog.suite_ran("Traceback (most recent call last):\nImportError: no pytest\n")
    assert testlog.passed("XFAIL") and testlog.passed("XPASS") and not testlog.passed("FAILED")
    assert not testlog.passed(None)


def test_wilson_percentile_mcnemar():
    lo, hi = stats.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert stats.wilson(0, 0) == (0.0, 0.0)
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([5], 99) == 5
    assert stats.percentile([], 50) is None
    m = stats.mcnemar([True] * 6 + [False] * 4, [False] * 6 + [False] * 4)
    assert m["only_a"] == 6 and m["only_b"] == 0
    assert m["p_value"] == pytest.approx(2 / 64)
    assert stats.mcnemar([True, False], [True, False])["p_value"] == 1.0
    mean, sd = stats.mean_sd([0.5, 0.7])
    assert mean == pytest.approx(0.6) and sd == pytest.approx(0.1414, abs=1e-4)


SOURCE = '''
class Parser:
    def long(self, x):
        y = helper(x)
        return self.short(y)

    def short(self, y):
        return y
'''


def test_structural_checks(tmp_path):
    (tmp_path / "m.py").write_text(SOURCE)
    ok = [{"kind": "defines", "file": "m.py", "name": "Parser.short"},
          {"kind": "calls", "file": "m.py", "name": "Parser.long", "callee": "short"},
          {"kind": "not_calls", "file": "m.py", "name": "Parser.short", "callee": "helper"},
          {"kind": "absent", "file": "m.py", "name": "Parser.gone"},
          {"kind": "max_lines", "file": "m.py", "name": "Parser.long", "lines": 3}]
    assert structural.failed_checks(tmp_path, ok) == []
    bad = [{"kind": "defines", "file": "m.py", "name": "Parser.other"},
           {"kind": "calls", "file": "m.py", "name": "Parser.short", "callee": "helper"},
           {"kind": "max_lines", "file": "m.py", "name": "Parser.long", "lines": 2}]
    assert len(structural.failed_checks(tmp_path, bad)) == 3


def test_shipped_tasks_are_complete():
    tasks = records.load_tasks()
    kinds = [t.task_type for t in tasks]
    assert kinds.count("bugfix") >= 10 and kinds.count("add_tests") >= 4 and kinds.count("refactor") >= 3
    assert [t for t in tasks if t.tier == "smoke"]
    for t in tasks:
        assert len(t.problem_statement.strip()) > 80, t.instance_id
        if t.task_type in ("bugfix", "add_tests", "smoke"):
            assert t.FAIL_TO_PASS, t.instance_id
        if t.task_type == "refactor":
            assert t.structure and t.gold_patch
        if t.tier == "main":
            assert t.package and t.version_buggy and t.version_fixed and t.provenance
        # statements describe the symptom, not the fix: no diff text in them
        assert "@@" not in t.problem_statement and "+++ " not in t.problem_statement


def test_sdist_lookup_is_exact(tmp_path):
    """Issue 17 item 1: `Markdown==3.8` must not pick markdown-3.8.1 (it sorts first)."""
    from minimax2.eval import sdist

    (tmp_path / "markdown-3.8.1.tar.gz").write_bytes(b"")
    assert sdist._find(tmp_path, "Markdown", "3.8") is None
    (tmp_path / "markdown-3.8.tar.gz").write_bytes(b"")
    assert sdist._find(tmp_path, "Markdown", "3.8").name == "markdown-3.8.tar.gz"
    assert sdist._find(tmp_path, "markdown", "3.8.1").name == "markdown-3.8.1.tar.gz"
    (tmp_path / "python_semver-3.0.0.tar.gz").write_bytes(b"")
    (tmp_path / "python-semver-extra-3.0.0.tar.gz").write_bytes(b"")
    for spelling in ("python-semver", "Python_Semver", "python.semver"):
        assert sdist._find(tmp_path, spelling, "3.0.0").name == "python_semver-3.0.0.tar.gz"
    assert sdist._find(tmp_path, "python-semver-extra", "3.0.0").name == "python-semver-extra-3.0.0.tar.gz"
    assert sdist._find(tmp_path, "python", "semver-3.0.0") is None
