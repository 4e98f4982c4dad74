"""`minimax2 eval build`: make each task's trees from two releases' sdists and validate them.

Layout of a built task under <cache>/tasks/<instance_id>/:
  buggy/       the tree the agent gets: the buggy release's tree, with the selected files at the fixed
               version minus the selected hunks; hidden test files withheld; leak-checked (leaks.py)
  hidden/      the fixed release's versions of the task's test files, copied in at grading
  gold.patch   the selected upstream fix (source files only), or our reference solution
  test.patch   the upstream test changes, as a diff against buggy/
  instance.json  the record with PASS_TO_PASS filled in, provenance and the validation result
  logs/        each validation suite's log (fixed.log, buggy.log, gold.log)
Only valid builds are reused; an invalid one is rebuilt by the next `eval build`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from . import grading, leaks, patching, sandbox, sdist, structural, testdeps, testlog
from .records import PLACEHOLDER, Task


class InvalidTask(RuntimeError):
    pass


def record_hash(task: Task) -> str:
    blob = json.dumps(dataclasses.asdict(task), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _materialise_release(task: Task, cache: Path, out: Path, tmp: Path) -> dict:
    fixed_arc = sdist.fetch(task.package, task.version_fixed, cache)
    prev_arc = sdist.fetch(task.package, task.version_buggy, cache)
    fixed = sdist.unpack(fixed_arc, tmp / "fixed")
    prev = sdist.unpack(prev_arc, tmp / "prev")
    buggy = out / "buggy"
    # The buggy release's tree: its CHANGELOG, docs and other modules know nothing of the fix.
    # A refactoring is asked of the fixed release itself (its reference solution is a diff to it).
    shutil.copytree(fixed if task.task_type == "refactor" else prev, buggy, symlinks=True)
    gold, tests, hunks_used = [], [], {}
    for rel, selector in task.hunks.items():
        old, new = _read(prev / rel), _read(fixed / rel)
        hunks = patching.file_hunks(old, new)
        chosen = patching.select_hunks(hunks, selector)
        hunks_used[rel] = [h.index for h in chosen]
        reverted = patching.reverse_apply(old, new, chosen)
        (buggy / rel).parent.mkdir(parents=True, exist_ok=True)
        (buggy / rel).write_text(reverted)
        gold.append(patching.unified_diff(reverted, new, rel))
    for rel in task.test_files:
        if not (fixed / rel).exists():
            raise InvalidTask(f"test file {rel} is not in {fixed_arc.name}")
        (out / "hidden" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(fixed / rel, out / "hidden" / rel)
        if (prev / rel).exists():
            shutil.copy2(prev / rel, buggy / rel)
        else:
            (buggy / rel).unlink(missing_ok=True)
        tests.append(patching.unified_diff(_read(buggy / rel), _read(fixed / rel), rel,
                                           old_exists=(buggy / rel).exists()))
    (out / "gold.patch").write_text("".join(gold) or task.gold_patch)
    (out / "test.patch").write_text("".join(tests))
    return {"sdists": {a.name: sdist.sha256(a) for a in (prev_arc, fixed_arc)}, "hunks": hunks_used}


def _materialise_inline(task: Task, out: Path) -> dict:
    for rel, text in task.files.items():
        dest = out / ("hidden" if rel in task.test_files else "buggy") / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    (out / "buggy").mkdir(exist_ok=True)
    (out / "gold.patch").write_text(task.gold_patch)
    (out / "test.patch").write_text("".join(
        patching.unified_diff("", text, rel, old_exists=False)
        for rel, text in task.files.items() if rel in task.test_files))
    return {"inline": True}


ERROR_LINES = 40  # of a suite's log, shown with an invalid build


def _suite(task: Task, out: Path, work: Path, patch: str, hidden: bool) -> dict:
    """Run the suite on one tree; its log is kept at out/logs/<tree>.log."""
    repo, venv = sandbox.create(out / "buggy", work, task.python, out / "deps")
    sandbox.apply_patch(repo, patch)
    if hidden:
        grading.copy_hidden(out, repo)
    results, ran, log = grading.run_suite(task, repo, venv)
    log_path = out / "logs" / f"{work.name}.log"
    log_path.parent.mkdir(exist_ok=True)
    log_path.write_text(log)
    if not ran:
        tail = "\n".join(log.splitlines()[-ERROR_LINES:])
        raise InvalidTask(f"test suite did not run on the {work.name} tree (log: {log_path}); "
                          f"its last {ERROR_LINES} lines:\n{tail}")
    return results


def _write_candidates(out: Path, candidates: list[str]) -> Path:
    """The FAIL_TO_PASS candidates as a TOML list the user can paste into the record."""
    path = out / "FAIL_TO_PASS.toml"
    path.write_text("FAIL_TO_PASS = [\n" + "".join(f"  {json.dumps(t)},\n" for t in candidates) + "]\n")
    return path


def validate(task: Task, out: Path, work: Path) -> dict:
    """Fills task.PASS_TO_PASS when empty; raises InvalidTask with the reason."""
    gold = (out / "gold.patch").read_text()
    if task.task_type == "refactor":
        fixed = _suite(task, out, work / "fixed", "", False)
        if structural.failed_checks(work / "fixed" / "repo", task.structure) == []:
            raise InvalidTask("the structural check already holds on the unchanged tree")
        after = _suite(task, out, work / "gold", gold, False)
        bad = structural.failed_checks(work / "gold" / "repo", task.structure)
        if bad:
            raise InvalidTask(f"the reference refactoring fails its structural check: {bad}")
        broken = [t for t, s in fixed.items() if testlog.passed(s) and not testlog.passed(after.get(t))]
        if broken:
            raise InvalidTask(f"the reference refactoring breaks {broken[:5]}")
        buggy = fixed
    else:
        fixed = _suite(task, out, work / "fixed", gold, True)
        buggy = _suite(task, out, work / "buggy", "", True)
    failing = sorted(t for t, s in fixed.items() if not testlog.passed(s) and s != "SKIPPED")
    if failing:
        raise InvalidTask(f"{len(failing)} tests fail on the fixed tree: {failing[:5]}")
    if task.task_type != "refactor" and not task.FAIL_TO_PASS:
        candidates = sorted(t for t, s in fixed.items()
                            if testlog.passed(s) and not testlog.passed(buggy.get(t)))
        listed = "".join(f"\n  {t}" for t in candidates)
        raise InvalidTask(f"FAIL_TO_PASS is empty; tests that fail only on the buggy tree (also in "
                          f"{_write_candidates(out, candidates)}, ready to paste):{listed}")
    for t in task.FAIL_TO_PASS:
        if not testlog.passed(fixed.get(t)):
            raise InvalidTask(f"FAIL_TO_PASS {t} does not pass on the fixed tree ({fixed.get(t)})")
        if testlog.passed(buggy.get(t)):
            raise InvalidTask(f"FAIL_TO_PASS {t} passes on the buggy tree")
    if not task.PASS_TO_PASS:
        task.PASS_TO_PASS = sorted(t for t, s in fixed.items()
                                   if testlog.passed(s) and t not in task.FAIL_TO_PASS)
    regressed = [t for t in task.PASS_TO_PASS if not testlog.passed(buggy.get(t))]
    if regressed:
        raise InvalidTask(f"{len(regressed)} PASS_TO_PASS tests fail on the buggy tree: {regressed[:5]}")
    return {"fixed_tests": len(fixed), "pass_to_pass": len(task.PASS_TO_PASS)}


def build_task(task: Task, cache: Path, force: bool = False) -> dict:
    """Build and validate one task; returns its instance dict (status "valid" or "invalid")."""
    out = cache / "tasks" / task.instance_id
    meta_path = out / "instance.json"
    digest = record_hash(task)
    if not force and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("record_hash") == digest and meta.get("status") == "valid":  # failures: rebuilt
            meta["cached"] = True
            return meta
    start = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    meta = {"instance_id": task.instance_id, "record_hash": digest}
    with tempfile.TemporaryDirectory(prefix=f"build-{task.instance_id}-") as tmp:
        try:
            if PLACEHOLDER in task.problem_statement:
                raise InvalidTask("problem_statement is still the placeholder that `eval new` wrote: "
                                  "replace it in the record with what goes wrong and how to see it "
                                  "(without the fix), then build again")
            if task.files:
                meta["provenance_build"] = _materialise_inline(task, out)
            else:
                meta["provenance_build"] = _materialise_release(task, cache, out, Path(tmp))
            deps = testdeps.prepare(task, out / "buggy", cache, out, Path(tmp))
            if deps:
                meta["provenance_build"]["test_requires"] = deps
            found = leaks.check(out / "buggy", (out / "gold.patch").read_text(), task.provenance)
            if found:
                raise InvalidTask("the fix leaks into the agent-visible tree: " + "; ".join(map(str, found)))
            meta["validation"] = validate(task, out, Path(tmp) / "validate")
            meta["status"] = "valid"
        except (InvalidTask, ValueError, sdist.FetchError, RuntimeError) as exc:
            meta["status"], meta["reason"] = "invalid", str(exc)
    meta["task"] = dataclasses.asdict(task)
    meta["build_seconds"] = round(time.monotonic() - start, 2)
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def load_built(instance_id: str, cache: Path) -> tuple[Task, Path]:
    """The validated task (PASS_TO_PASS filled in) and its build folder."""
    out = cache / "tasks" / instance_id
    meta_path = out / "instance.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{instance_id} is not built: run `minimax2 eval build`")
    meta = json.loads(meta_path.read_text())
    if meta.get("status") != "valid":
        raise InvalidTask(f"{instance_id} did not validate: {meta.get('reason')}")
    return Task(**meta["task"]), out
