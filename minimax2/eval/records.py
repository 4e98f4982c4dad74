"""Task records: one TOML file per task under `minimax2/eval/tasks/`.

Records are SWE-bench compatible (instance_id, problem_statement, FAIL_TO_PASS, PASS_TO_PASS) plus
our own fields. Only metadata and our own problem statements are shipped; code is built by
`minimax2 eval build` from the sdists of two releases.
"""
from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

TASK_DIR = Path(__file__).parent / "tasks"
TASK_TYPES = ("bugfix", "add_tests", "refactor", "smoke")
# Third-party pytest plugins of the host are not loaded: suites run on pytest alone (and start fast).
DEFAULT_TEST_CMD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -rA -p no:cacheprovider"


@dataclass
class Task:
    instance_id: str
    task_type: str
    problem_statement: str
    package: str = ""
    version_buggy: str = ""  # the previous release
    version_fixed: str = ""  # the release that carries the fix
    hunks: dict = field(default_factory=dict)  # source file -> selector (see patching.select_hunks)
    test_files: list = field(default_factory=list)  # hidden at run time, copied in at grading
    FAIL_TO_PASS: list = field(default_factory=list)
    PASS_TO_PASS: list = field(default_factory=list)  # empty: computed at build (suite minus F2P)
    known_failures: list = field(default_factory=list)  # deselected everywhere, with a reason
    test_cmd: str = DEFAULT_TEST_CMD
    log_parser: str = "pytest"  # or "unittest" (test_cmd then runs `python -m unittest -v`)
    keep_addopts: bool = False  # True: the project's pytest addopts / colour settings apply
    test_timeout: int = 600
    python: str = "3.11"
    provenance: dict = field(default_factory=dict)
    structure: list = field(default_factory=list)  # refactor: AST checks (see structural.py)
    gold_patch: str = ""  # refactor / smoke: our own reference solution as a unified diff
    files: dict = field(default_factory=dict)  # smoke: inline tree {path: text}
    tier: str = "main"  # "main" or "smoke"

    @property
    def repo(self) -> str:
        return self.package

    @property
    def base_version(self) -> str:
        return self.version_buggy


def load_task(path: Path) -> Task:
    data = tomllib.loads(Path(path).read_text())
    unknown = set(data) - set(Task.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown fields {sorted(unknown)}")
    task = Task(**data)
    if task.task_type not in TASK_TYPES:
        raise ValueError(f"{path}: task_type {task.task_type!r} not in {TASK_TYPES}")
    if Path(path).stem != task.instance_id:
        raise ValueError(f"{path}: file name must be the instance_id {task.instance_id!r}")
    return task


def load_tasks(task_dir: Path = TASK_DIR, select: list[str] | None = None,
               tier: str | None = None, types: list[str] | None = None) -> list[Task]:
    """All tasks, optionally filtered by instance-id prefix / glob, tier and task type."""
    tasks = [load_task(p) for p in sorted(Path(task_dir).glob("*.toml"))]
    if tier:
        tasks = [t for t in tasks if t.tier == tier]
    if types:
        tasks = [t for t in tasks if t.task_type in types]
    if select:
        tasks = [t for t in tasks
                 if any(fnmatch.fnmatch(t.instance_id, s) or t.instance_id == s for s in select)]
    return tasks


def cache_dir() -> Path:
    root = os.environ.get("MINIMAX2_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "minimax2"
    return base / "eval"
