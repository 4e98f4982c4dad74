"""`minimax2 eval new PACKAGE --buggy V1 --fixed V2 [--file PATH[:N,M]]... [--tasks DIR]`: start a record.

Downloads both sdists (sdist.fetch: cached under <cache>/sdists), prints what changed between the two
releases (python sources and tests apart) and the numbered hunks of every `--file`, and writes
`<DIR>/<package>-<V2>-<slug>.toml` with those hunks selected by number, the changed test files as
`test_files`, `FAIL_TO_PASS = []` and a problem_statement placeholder that `eval build` refuses. The
next `eval build` prints the tests that fail only on the buggy tree, ready to paste.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from . import patching, records, sdist
from .grading import TEST_PATH

TEST_FILE = re.compile(r"(^|/)(test_[^/]*|[^/]*_test)\.py$")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def changed_files(prev: Path, fixed: Path) -> dict[str, list[tuple[str, str]]]:
    """{"python": [(mark, path)], "tests": [...], "other": [...]}: files added (A), removed (D) or
    modified (M) between the two trees; tests are python files that grading.TEST_PATH calls tests."""
    a, b = _files(prev), _files(fixed)
    out: dict[str, list] = {"python": [], "tests": [], "other": []}
    for rel in sorted(a | b):
        if rel in a and rel in b and (prev / rel).read_bytes() == (fixed / rel).read_bytes():
            continue
        mark = "A" if rel not in a else "D" if rel not in b else "M"
        kind = "other" if not rel.endswith(".py") else "tests" if TEST_PATH.search(rel) else "python"
        out[kind].append((mark, rel))
    return out


def parse_file_arg(arg: str) -> tuple[str, list[int] | None]:
    """`path` (every hunk) or `path:0,2` (those hunk numbers)."""
    path, sep, nums = arg.rpartition(":")
    if sep and re.fullmatch(r"\d+(,\d+)*", nums):
        return path, [int(n) for n in nums.split(",")]
    return arg, None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.") or "fix"


def target_dir(task_dirs: list[Path]) -> Path:
    """The first `--tasks DIR`, else the first $MINIMAX2_EVAL_TASKS folder; the bundled folder only by --tasks."""
    if task_dirs:
        return Path(task_dirs[0])
    env = [Path(p) for p in os.environ.get("MINIMAX2_EVAL_TASKS", "").split(os.pathsep) if p]
    if env and env[0].resolve() != records.TASK_DIR.resolve():
        return env[0]
    raise ValueError("where should the record go? Pass --tasks DIR (your own task folder, created if "
                     "missing) or set MINIMAX2_EVAL_TASKS; the bundled minimax2/eval/tasks is used only "
                     "when named with --tasks")


def record_text(package: str, buggy: str, fixed: str, instance_id: str, hunks: dict[str, list[int]],
                test_files: list[str], command: str) -> str:
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [f"# Made by `{command}`.",
             "# Replace problem_statement, keep only the hunks of the fix, then run `minimax2 eval build "
             f"{instance_id} --tasks DIR`", "# and paste the FAIL_TO_PASS it prints.",
             f"instance_id = {q(instance_id)}", 'task_type = "bugfix"', f"package = {q(package)}",
             f"version_buggy = {q(buggy)}", f"version_fixed = {q(fixed)}",
             f"test_files = [{', '.join(map(q, test_files))}]", "FAIL_TO_PASS = []",
             'problem_statement = """', records.PLACEHOLDER + " (what goes wrong, how to see it; not the fix).",
             '"""', "", "[hunks]  # file = hunk numbers as `eval new` printed them"]
    lines += [f"{q(rel)} = {json.dumps(nums)}" for rel, nums in hunks.items()]
    return "\n".join(lines) + "\n"


def _lines(lo: int, hi: int) -> str:
    """1-based inclusive line range of [lo, hi); an empty one (a pure insertion or deletion) says where."""
    return f"{lo + 1}-{hi}" if hi > lo else f"(none, after {lo})"


def show_hunks(rel: str, hunks: list[patching.Hunk], chosen: list[int]) -> str:
    out = [f"== {rel}: {len(hunks)} hunk(s); selected: {chosen} =="]
    for h in hunks:
        edits = [op for op in h.opcodes if op[0] != "equal"]
        old, new = _lines(edits[0][1], edits[-1][2]), _lines(edits[0][3], edits[-1][4])
        out.append(f"--- hunk {h.index}{' (selected)' if h.index in chosen else ''}: old lines {old}, "
                   f"new lines {new}")
        out.append(h.text.rstrip("\n"))
    return "\n".join(out)


def new(args) -> int:
    cache = args.cache or records.cache_dir()
    folder = target_dir(args.task_dirs)
    picks = [parse_file_arg(a) for a in args.file]
    slug = _slug(args.slug or (Path(picks[0][0]).stem if picks else "fix"))
    instance_id = f"{sdist.normalise(args.package)}-{args.fixed}-{slug}"
    path = folder / f"{instance_id}.toml"
    if path.exists():
        raise ValueError(f"{path} already exists: pass --slug NAME for another record of this release")
    with tempfile.TemporaryDirectory(prefix="minimax2-new-") as tmp:
        try:
            prev = sdist.unpack(sdist.fetch(args.package, args.buggy, cache), Path(tmp) / "prev")
            fixed = sdist.unpack(sdist.fetch(args.package, args.fixed, cache), Path(tmp) / "fixed")
        except sdist.FetchError as exc:
            raise ValueError(str(exc)) from exc
        changed = changed_files(prev, fixed)
        print(f"{args.package} {args.buggy} -> {args.fixed}: {len(changed['python'])} python source(s), "
              f"{len(changed['tests'])} test file(s), {len(changed['other'])} other file(s) changed")
        for kind, title in (("python", "python sources"), ("tests", "tests"), ("other", "other files")):
            if changed[kind]:
                print(f"{title}:" + "".join(f"\n  {mark} {rel}" for mark, rel in changed[kind]))
        known = {rel for items in changed.values() for _mark, rel in items}
        hunks: dict[str, list[int]] = {}
        for rel, nums in picks:
            if rel not in known:
                raise ValueError(f"--file {rel} did not change between {args.buggy} and {args.fixed}")
            found = patching.file_hunks(_text(prev / rel), _text(fixed / rel))
            chosen = [h.index for h in found] if nums is None else nums
            patching.select_hunks(found, chosen)  # a number out of range is an error here, not at build
            hunks[rel] = chosen
            print(show_hunks(rel, found, chosen))
    tests = [rel for mark, rel in changed["tests"] if mark != "D" and TEST_FILE.search(rel)]
    command = f"minimax2 eval new {args.package} --buggy {args.buggy} --fixed {args.fixed}" + "".join(
        f" --file {a}" for a in args.file)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(record_text(args.package, args.buggy, args.fixed, instance_id, hunks, tests, command))
    records.load_task(path)  # what was written reads back as a record
    if not hunks:
        print("no --file given: list the fix's source files under [hunks] before building")
    print(f"wrote {path}\nnext: replace its problem_statement, then `minimax2 eval build {instance_id} "
          f"--tasks {folder}`")
    return 0


def register(sub) -> None:
    """The `eval new` sub-command (called by cli.register_eval)."""
    p = sub.add_parser("new", help="start a task record from two releases of a PyPI package",
                       description="Download both sdists, show what changed and the numbered hunks of "
                       "each --file, and write a record to fill in (problem_statement, FAIL_TO_PASS).")
    p.add_argument("package", help="the PyPI project")
    p.add_argument("--buggy", required=True, metavar="V1", help="the release before the fix")
    p.add_argument("--fixed", required=True, metavar="V2", help="the release with the fix")
    p.add_argument("--file", action="append", default=[], metavar="PATH[:N,M]",
                   help="a source file of the fix: print its hunks and select them all, or hunks N,M "
                   "(repeatable)")
    p.add_argument("--slug", default=None, help="the record's name is PACKAGE-V2-SLUG (default: the first "
                   "--file's name)")
    p.add_argument("--tasks", dest="task_dirs", action="append", type=Path, default=[], metavar="DIR",
                   help="write the record here (default: the first $MINIMAX2_EVAL_TASKS folder)")
    p.add_argument("--cache", type=Path, default=None,
                   help="build cache (default $MINIMAX2_CACHE/eval or ~/.cache/minimax2/eval)")
    p.set_defaults(func=new)
