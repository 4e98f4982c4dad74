"""`minimax2 eval new` (issue 17 item 2) as a real command on sdists already in the cache (no network):
the record it writes, the hunks it prints, and the build that refuses its placeholder statement and
then reports the failing tests, ready to paste."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from eval_support.tiny_packages import TINYCALC, TINYCALC_F2P, cache_sdists
from minimax2.eval import patching, records, scaffold

REPO = Path(__file__).resolve().parents[1]
CLI = "import sys; from minimax2.cli import main; sys.exit(main(sys.argv[1:]))"


def _minimax2(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def env(tmp_path) -> dict:
    """$MINIMAX2_CACHE holding both tinycalc sdists; pip pointed at a dead index, so any download fails."""
    cache_sdists(tmp_path / "cache" / "eval", "tinycalc", TINYCALC)
    base = {k: v for k, v in os.environ.items() if k != "MINIMAX2_EVAL_TASKS"}
    return {**base, "MINIMAX2_CACHE": str(tmp_path / "cache"), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
            "PIP_RETRIES": "0", "COLUMNS": "400"}


def test_new_then_build_until_valid(tmp_path, env):
    mine = tmp_path / "mine"
    proc = _minimax2("eval", "new", "tinycalc", "--buggy", "1.0", "--fixed", "1.1", "--file", "tinycalc/calc.py:0",
                     "--tasks", str(mine), env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "python sources:\n  M tinycalc/calc.py\ntests:\n  M tests/test_calc.py\n" in out
    assert "  M CHANGES.txt" in out and "  M PKG-INFO" in out
    assert "--- hunk 0 (selected): old lines 5-5, new lines 5-5\n" in out
    assert "-    return a - b\n+    return a + b\n" in out
    assert "--- hunk 1: old lines" in out and '+    return "tiny calculator"' in out
    path = mine / "tinycalc-1.1-calc.toml"
    data = tomllib.loads(path.read_text())
    assert data["hunks"] == {"tinycalc/calc.py": [0]} and data["FAIL_TO_PASS"] == []
    assert data["test_files"] == ["tests/test_calc.py"]
    assert (data["package"], data["version_buggy"], data["version_fixed"]) == ("tinycalc", "1.0", "1.1")
    assert records.PLACEHOLDER in data["problem_statement"]

    build = ("eval", "build", "tinycalc-1.1-calc", "--tasks", str(mine))
    proc = _minimax2(*build, env=env)
    assert proc.returncode == 1
    assert "problem_statement is still the placeholder" in proc.stdout, proc.stdout + proc.stderr

    path.write_text(path.read_text().replace(records.PLACEHOLDER, "add() subtracts its arguments"))
    proc = _minimax2(*build, env=env)
    assert proc.returncode == 1 and "FAIL_TO_PASS is empty" in proc.stdout, proc.stdout + proc.stderr
    assert f"\n  {TINYCALC_F2P}\n" in proc.stdout, "the test id was not printed literally"
    pasted = tmp_path / "cache" / "eval" / "tasks" / "tinycalc-1.1-calc" / "FAIL_TO_PASS.toml"
    assert str(pasted) in proc.stdout.replace("\n", "")
    path.write_text(path.read_text().replace("FAIL_TO_PASS = []\n", pasted.read_text()))
    proc = _minimax2(*build, env=env)
    assert proc.returncode == 0 and "valid   tinycalc-1.1-calc" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.count("[1/1 ") == 1  # each task's line, numbered, as soon as it is built


def test_new_needs_a_folder_and_never_overwrites(tmp_path, env):
    args = ("eval", "new", "tinycalc", "--buggy", "1.0", "--fixed", "1.1", "--file", "tinycalc/calc.py")
    proc = _minimax2(*args, env=env)
    assert proc.returncode != 0 and "--tasks DIR" in proc.stderr and "MINIMAX2_EVAL_TASKS" in proc.stderr
    assert not list(records.TASK_DIR.glob("tinycalc-*"))
    folder = tmp_path / "by-env"
    proc = _minimax2(*args, env={**env, "MINIMAX2_EVAL_TASKS": str(folder)})
    assert proc.returncode == 0, proc.stderr
    assert tomllib.loads((folder / "tinycalc-1.1-calc.toml").read_text())["hunks"] == {"tinycalc/calc.py": [0, 1]}
    proc = _minimax2(*args, env={**env, "MINIMAX2_EVAL_TASKS": str(folder)})
    assert proc.returncode != 0 and "already exists" in proc.stderr
    proc = _minimax2(*args[:-1], "tinycalc/calc.py:7", "--slug", "other", "--tasks", str(folder), env=env)
    assert proc.returncode != 0 and "hunk indices [7]" in proc.stderr
    proc = _minimax2(*args[:-1], "README.md", "--tasks", str(folder), env=env)
    assert proc.returncode != 0 and "did not change" in proc.stderr


def test_a_pure_insertion_hunk_says_where_it_goes():
    old = "".join(f"line {n}\n" for n in range(1, 60))
    new = old.replace("line 39\n", "line 39\nadded a\nadded b\n")
    shown = scaffold.show_hunks("pkg/a.py", patching.file_hunks(old, new), [0])
    assert "--- hunk 0 (selected): old lines (none, after 39), new lines 40-41\n" in shown


def test_file_argument_and_numbered_selector():
    assert scaffold.parse_file_arg("pkg/a.py") == ("pkg/a.py", None)
    assert scaffold.parse_file_arg("pkg/a.py:0,2") == ("pkg/a.py", [0, 2])
    assert scaffold.parse_file_arg("C:/odd.py") == ("C:/odd.py", None)
    hunks = patching.file_hunks("a\n" + "x\n" * 10 + "b\n", "A\n" + "x\n" * 10 + "B\n")
    assert [h.index for h in patching.select_hunks(hunks, [1])] == [1]
