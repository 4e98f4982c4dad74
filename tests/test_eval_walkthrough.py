"""The README's own-task walkthrough (minimax2/eval/README.md), run as written: `eval new` on the pathspec
0.11.1 -> 0.11.2 pair (not in the suite), the two record edits, `eval build` until valid, and both oracles.
Needs PyPI for a cold cache ($MINIMAX2_CACHE or ~/.cache/minimax2 keeps the sdists for reruns)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minimax2.eval import records

pytestmark = [pytest.mark.network]

REPO = Path(__file__).resolve().parents[1]
README = REPO / "minimax2" / "eval" / "README.md"
CLI = "import sys; from minimax2.cli import main; sys.exit(main(sys.argv[1:]))"
TASK = "pathspec-0.11.2-caret"
F2P = ["tests/test_gitwildmatch.py::GitWildMatchTest::test_13_issue_77_regex",
       "tests/test_gitwildmatch.py::GitWildMatchTest::test_13_negate_with_caret"]


def _walkthrough_commands() -> list[list[str]]:
    """The `minimax2 ...` commands of the walkthrough section, as the README spells them."""
    text = README.read_text().split("### Walkthrough", 1)[1].split("\n## ", 1)[0]
    text = text.replace("\\\n", " ")
    cmds = []
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("minimax2 "):
                cmds.append(line.split("#", 1)[0].split()[1:])
    return cmds


def test_readme_walkthrough_runs_as_written(tmp_path):
    cmds = _walkthrough_commands()
    new, build, gold, empty = cmds[0], cmds[1], cmds[2], cmds[3]
    assert new[:2] == ["eval", "new"] and build[:2] == ["eval", "build"]
    assert "--oracle" in gold and "gold" in gold and "empty" in empty
    env = {k: v for k, v in os.environ.items() if k != "MINIMAX2_EVAL_TASKS"}
    env["COLUMNS"] = "400"

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CLI, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)

    (tmp_path / "mytasks").mkdir()
    proc = run(new)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--- hunk 1 (selected)" in proc.stdout and "--- hunk 2 (selected)" in proc.stdout
    record = tmp_path / "mytasks" / f"{TASK}.toml"
    text = record.read_text()
    assert 'test_files = ["tests/test_gitwildmatch.py", "tests/test_pathspec.py"]' in text
    text = text.replace('"tests/test_gitwildmatch.py", "tests/test_pathspec.py"', '"tests/test_gitwildmatch.py"')
    record.write_text(text.replace(records.PLACEHOLDER, 'GitWildMatchPattern("a[^gy]c") should match "abc" and '
                                   '"adc" but not "agc", as git does; today "[^...]" is not negated.'))

    proc = run(build)
    assert proc.returncode == 1 and "FAIL_TO_PASS is empty" in proc.stdout, proc.stdout + proc.stderr
    assert all(f"\n  {t}\n" in proc.stdout for t in F2P), proc.stdout
    pasted = records.cache_dir() / "tasks" / TASK / "FAIL_TO_PASS.toml"
    record.write_text(record.read_text().replace("FAIL_TO_PASS = []\n", pasted.read_text()))
    proc = run(build)
    assert proc.returncode == 0 and f"valid   {TASK}" in proc.stdout, proc.stdout + proc.stderr

    for args, resolved in ((gold, 1), (empty, 0)):
        proc = run(args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"resolved {resolved}" in proc.stdout, proc.stdout
