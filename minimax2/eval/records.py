"""Task records: one TOML file per task under `minimax2/eval/tasks/`, plus the user's own task
folders ($MINIMAX2_EVAL_TASKS, `--tasks DIR`).

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

from . import isolation

TASK_DIR = Path(__file__).parent / "tasks"
TASK_TYPES = ("bugfix", "add_tests", "refactor", "smoke")
# Third-party pytest plugins of the host are not loaded: suites run on pytest alone (and start fast).
DEFAULT_TEST_CMD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -rA -p no:cacheprovider"
# What `eval new` writes as problem_statement; `eval build` refuses a record that still has it.
PLACEHOLDER = "TODO(minimax2 eval new): describe the bug"


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
    test_requires: list = field(default_factory=list)  # PyPI requirements of the tests (testdeps.py)
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


class DuplicateTask(ValueError):
    """Two task records share an instance_id."""


def task_dirs(extra: list[Path] | None = None, task_dir: Path | None = None) -> list[Path]:
    """Where records are read from: the bundled folder (or task_dir), every folder of
    $MINIMAX2_EVAL_TASKS (a path list, like PATH), then every `--tasks DIR`."""
    env = [Path(p) for p in os.environ.get("MINIMAX2_EVAL_TASKS", "").split(os.pathsep) if p]
    dirs = [Path(task_dir or TASK_DIR), *env, *(Path(d) for d in extra or [])]
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(f"task folder {missing[0]} does not exist")
    return list(dict.fromkeys(d.resolve() for d in dirs))


def load_tasks(task_dir: Path | None = None, select: list[str] | None = None,
               tier: str | None = None, types: list[str] | None = None,
               extra_dirs: list[Path] | None = None) -> list[Task]:
    """All tasks of every task folder, optionally filtered by instance-id prefix / glob, tier and
    task type. An instance_id defined twice is an error naming both files. Every folder read is hidden
    from this process's sandboxes (records hold gold patches and hidden tests)."""
    seen: dict[str, Path] = {}
    tasks = []
    folders = task_dirs(extra_dirs, task_dir)
    isolation.conceal(*folders)
    for folder in folders:
        for path in sorted(folder.glob("*.toml")):
            task = load_task(path)
            if task.instance_id in seen:
                raise DuplicateTask(f"task {task.instance_id!r} is defined twice: {seen[task.instance_id]} "
                                    f"and {path}")
            seen[task.instance_id] = path
            tasks.append(task)
    if tier:
        tasks = [t for t in tasks if t.tier == tier]
    if types:
        tasks = [t for t in tasks if t.task_type in types]
    if select:
        unmatched = [s for s in select if not any(fnmatch.fnmatch(t.instance_id, s) for t in tasks)]
        if unmatched:  # a typo would otherwise run nothing and report 0/0
            raise ValueError(f"no task matches {', '.join(map(repr, unmatched))} (of {len(tasks)} selected by "
                             f"tier/type/folders; ids such as {', '.join(t.instance_id for t in tasks[:3]) or 'none'})")
        tasks = [t for t in tasks if any(fnmatch.fnmatch(t.instance_id, s) for s in select)]
    return tasks


def cache_dir() -> Path:
    root = os.environ.get("MINIMAX2_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "minimax2"
    return base / "eval"
