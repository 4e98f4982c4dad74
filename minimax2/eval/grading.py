"""Grading, SWE-bench style: a fresh sandbox, the candidate patch applied, hidden tests copied in.

Statuses: `resolved`, `unresolved`, `infra_error` (the suite did not run: never counted as a
failure of the model). Bugfix and smoke: every FAIL_TO_PASS and PASS_TO_PASS test passes.
add_tests: only the patch's test files are kept; at least one of their tests fails on the buggy
tree and all of them pass on the fixed tree. refactor: the suite stays green and the hidden AST
checks confirm the requested change.
"""
from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import probe, sandbox, structural, testlog
from .patching import split_patch
from .records import Task

TEST_PATH = re.compile(r"(^|/)(tests?/|test_[^/]*\.py$|[^/]*_test\.py$|conftest\.py$)")
# Files of a candidate patch that the graded run does not take, besides its tests (the task's hidden
# tests decide): what Python or pytest would run as part of the test run rather than of the package
# (start-up hooks, path files, pytest's config files) and top-level modules that would shadow the
# runner's own (`python -m pytest` puts the tree first on sys.path).
RUNNER_PATH = re.compile(r"(^|/)(sitecustomize\.py|usercustomize\.py|[^/]*\.pth|\.?pytest\.ini|tox\.ini"
                         r"|pyproject\.toml|setup\.cfg)$")
@dataclass
class Grade:
    status: str  # resolved | unresolved | infra_error
    reason: str = ""
    tests: dict = field(default_factory=dict)  # test id -> status, for the tests that decide
    seconds: float = 0.0

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


def suite_command(task: Task, paths: list[str] = (), plugins: list[str] = ()) -> str:
    """The task's test command with addopts neutralised (unless keep_addopts), the test deps' pytest
    plugins loaded by name (autoload is off), deselections, paths.

    The project's own pytest config must not change how its suite runs here: its addopts may name
    plugins the sandbox lacks (`--cov`) or force colour, and the cache would be written into the tree."""
    words = []
    if task.log_parser == "pytest" and not task.keep_addopts:
        if "addopts=" not in task.test_cmd:
            words += ["-o", "addopts="]
        if "--color" not in task.test_cmd:
            words.append("--color=no")
        if "no:cacheprovider" not in task.test_cmd:
            words += ["-p", "no:cacheprovider"]
    if task.log_parser == "pytest":
        words += [w for p in plugins for w in ("-p", p)]
    deselect = [f"--deselect={t}" for t in task.known_failures] if task.log_parser == "pytest" else []
    return " ".join([task.test_cmd, *map(shlex.quote, [*words, *deselect, *paths])])


def run_suite(task: Task, repo: Path, venv: Path, paths: list[str] = ()) -> tuple[dict, bool, str]:
    """Run the task's test command (optionally on some files); ({id: status}, ran, log).
    The log is returned without ANSI escape codes."""
    cmd = suite_command(task, paths, sandbox.pytest_plugins(venv))
    result = sandbox.run(cmd, repo, venv, timeout=task.test_timeout, limit=2_000_000)
    log = testlog.strip_ansi(result.output)
    ran = not result.timed_out and testlog.suite_ran(log, task.log_parser)
    return testlog.parse(log, task.log_parser), ran, log


def copy_hidden(built: Path, repo: Path) -> None:
    """The hidden tests over the patched tree. The patch is the agent's: a folder it turned into a link
    (`tests -> /somewhere`) is replaced by a real folder first, so the copy (made as the harness's user)
    writes inside the tree and nowhere else."""
    hidden = built / "hidden"
    if not hidden.exists():
        return
    for src in sorted(hidden.rglob("*")):
        if src.is_dir():
            continue
        rel = src.relative_to(hidden)
        folder = repo
        for part in rel.parts[:-1]:
            folder = folder / part
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                folder.unlink()
            folder.mkdir(exist_ok=True)
        dst = folder / rel.name
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        shutil.copy2(src, dst)


def _fresh(built: Path, tree: str, workdir: Path, task: Task, patch: str) -> tuple[Path, Path] | str:
    repo, venv = sandbox.create(built / tree, workdir, task.python, built / "deps")
    try:
        sandbox.apply_patch(repo, patch)
    except RuntimeError as exc:
        return f"patch does not apply: {exc}"
    return repo, venv


def graded_part(patch: str, tree: Path) -> str:
    """The part of a candidate patch a bugfix or refactor is graded on: its changes to the package,
    without test files, files that would change how the tests run (RUNNER_PATH), parts whose path
    cannot be read, and new top-level modules or folders (`tree` is the buggy tree): the test command
    runs with the tree first on sys.path, where a new `bdb.py` shadows the standard library's."""
    def kept(path: str) -> bool:
        top = path.split("/", 1)[0]
        new_top = not (tree / top).exists() and (path.endswith(".py") or "/" in path)
        return not (path.startswith("diff --git ") or TEST_PATH.search(path) or RUNNER_PATH.search(path) or new_top)

    return "".join(part for path, part in split_patch(patch).items() if kept(path))


def _grade_tests(task: Task, built: Path, patch: str, work: Path) -> Grade:
    made = _fresh(built, "buggy", work, task, graded_part(patch, built / "buggy"))
    if isinstance(made, str):
        return Grade("unresolved", made)
    repo, venv = made
    copy_hidden(built, repo)
    results, ran, log = run_suite(task, repo, venv)
    if not ran:
        return Grade("infra_error", "test suite did not run")
    if task.log_parser == "pytest" and testlog.summaries(log) > 1:
        return Grade("unresolved", "the test output holds more than one pytest summary: something besides pytest "
                                   "reported results")
    wanted = list(task.FAIL_TO_PASS) + list(task.PASS_TO_PASS)
    tests = {t: results.get(t, "MISSING") for t in wanted}
    # FAIL_TO_PASS must pass outright: an expected failure (XFAIL) is a failure the tree was let off
    bad = [t for t, s in tests.items() if not testlog.passed(s) or (t in task.FAIL_TO_PASS and s != "PASSED")]
    f2p_bad = [t for t in task.FAIL_TO_PASS if t in bad]
    reason = f"{len(f2p_bad)} FAIL_TO_PASS and {len(bad) - len(f2p_bad)} PASS_TO_PASS not passing"
    return Grade("unresolved" if bad else "resolved", reason if bad else "", tests)


def _grade_add_tests(task: Task, built: Path, patch: str, work: Path) -> Grade:
    kept = {p: part for p, part in split_patch(patch).items() if TEST_PATH.search(p)}
    files = sorted(p for p, part in kept.items() if "\n+++ /dev/null" not in part)
    if not files:
        return Grade("unresolved", "the patch adds or changes no test file")
    tests_patch = "".join(kept.values())
    gold = (built / "gold.patch").read_text()
    runs = {}
    for tree, candidate in (("buggy", tests_patch), ("fixed", gold + tests_patch), ("probed", tests_patch)):
        made = _fresh(built, "buggy", work / tree, task, candidate)
        if isinstance(made, str):
            return Grade("unresolved", made)
        if tree == "probed":
            probe.probe_tree(made[0], lambda rel: bool(TEST_PATH.search(rel)) or rel in kept)
        results, ran, log = run_suite(task, *made, paths=files)
        if not ran:
            return Grade("infra_error", f"tests did not run on the {tree} tree")
        if task.log_parser == "pytest" and testlog.summaries(log) > 1:
            return Grade("unresolved", f"the output on the {tree} tree holds more than one pytest summary")
        runs[tree] = results
    fixed_bad = [t for t, s in runs["fixed"].items() if not testlog.passed(s) and s != "SKIPPED"]
    buggy_bad = [t for t, s in runs["buggy"].items() if not testlog.passed(s) and s != "SKIPPED"]
    tests = {f"{t} (buggy)": s for t, s in runs["buggy"].items()}
    tests.update({f"{t} (fixed)": s for t, s in runs["fixed"].items()})
    if not runs["fixed"]:
        return Grade("unresolved", "no test collected", tests)
    if fixed_bad:
        return Grade("unresolved", f"{len(fixed_bad)} new tests fail on the fixed tree", tests)
    if not buggy_bad:
        return Grade("unresolved", "no test fails on the buggy tree", tests)
    unmoved = [t for t in buggy_bad if testlog.passed(runs["probed"].get(t))]
    if unmoved:
        return Grade("unresolved", f"{len(unmoved)} tests that fail on the buggy tree pass on the same tree with "
                                   f"a line added to each module: they check the source, not its behaviour", tests)
    return Grade("resolved", "", tests)


def _grade_refactor(task: Task, built: Path, patch: str, work: Path) -> Grade:
    if not patch.strip():
        return Grade("unresolved", "empty patch: nothing was refactored")
    graded = _grade_tests(task, built, patch, work)
    if not graded.resolved:
        return graded
    failed = structural.failed_checks(work / "repo", task.structure)
    if failed:
        return Grade("unresolved", "structural check failed: " + "; ".join(failed), graded.tests)
    return graded


def grade(task: Task, built: Path, patch: str, workdir: Path | None = None) -> Grade:
    import time

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"grade-{task.instance_id}-") as tmp:
        work = Path(workdir or tmp)
        graders = {"bugfix": _grade_tests, "smoke": _grade_tests, "add_tests": _grade_add_tests,
                   "refactor": _grade_refactor}
        result = graders[task.task_type](task, built, patch, work)
    result.seconds = time.monotonic() - start
    return result
