"""User task folders (issue 17 item 2): --tasks DIR, $MINIMAX2_EVAL_TASKS, unique ids."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minimax2.eval import records

REPO = Path(__file__).resolve().parents[1]
SMOKE = records.TASK_DIR / "smoke-add.toml"


def _own_task(folder: Path, instance_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{instance_id}.toml"
    path.write_text(SMOKE.read_text().replace('"smoke-add"', f'"{instance_id}"'))
    return path


def test_extra_folders_and_env_var(tmp_path, monkeypatch):
    _own_task(tmp_path / "a", "mine-a")
    _own_task(tmp_path / "b", "mine-b")
    monkeypatch.setenv("MINIMAX2_EVAL_TASKS", str(tmp_path / "b"))
    ids = {t.instance_id for t in records.load_tasks(extra_dirs=[tmp_path / "a"])}
    assert {"mine-a", "mine-b", "smoke-add"} <= ids
    picked = records.load_tasks(select=["mine-*"], extra_dirs=[tmp_path / "a"])
    assert sorted(t.instance_id for t in picked) == ["mine-a", "mine-b"]
    with pytest.raises(FileNotFoundError):
        records.load_tasks(extra_dirs=[tmp_path / "missing"])


def test_duplicate_id_names_both_files(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIMAX2_EVAL_TASKS", raising=False)
    dup = tmp_path / "smoke-add.toml"
    shutil.copy(SMOKE, dup)
    with pytest.raises(records.DuplicateTask) as err:
        records.load_tasks(extra_dirs=[tmp_path])
    assert str(SMOKE) in str(err.value) and str(dup) in str(err.value)
    env = {k: v for k, v in os.environ.items() if k != "MINIMAX2_EVAL_TASKS"}
    proc = subprocess.run([sys.executable, "-m", "minimax2", "eval", "build", "--tasks", str(tmp_path),
                           "--cache", str(tmp_path / "cache"), "smoke-add"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert str(SMOKE) in proc.stderr and str(dup) in proc.stderr, proc.stderr
