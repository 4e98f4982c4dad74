"""Per-task sandboxes: a fresh copy of a tree with its own venv, git-initialised, and a command
runner (isolation.py: what contains it; capture.py: bounded output, timeout and disk cap)."""
from __future__ import annotations

import email.parser
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import capture, isolation

OUTPUT_CAP = 20_000  # bytes kept (head + tail) of one command's output
FILE_LIMIT = 1 << 30  # RLIMIT_FSIZE of every sandboxed process
DISK_LIMIT = 4 << 30  # the sandbox folders' total size; the command is killed past it


@dataclass
class RunResult:
    returncode: int | None  # None: killed by the timeout
    output: str
    seconds: float
    timed_out: bool = False
    truncated: bool = False


def find_python(version: str = "3.11") -> str:
    """An interpreter of the wanted minor version for task venvs."""
    for name in (f"python{version}", "python3"):
        exe = shutil.which(name)
        if not exe:
            continue
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.stdout.strip() == version:
            return exe
    raise RuntimeError(f"no python{version} found on PATH for task venvs")


SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment(venv: Path | None, home: Path, tmp: Path, marker: str) -> dict[str, str]:
    """The whole environment a sandboxed command gets: an allow-list, nothing of the host's."""
    env = {"PATH": SAFE_PATH, "HOME": str(home), "TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp),
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "dumb", "USER": "sandbox", "LOGNAME": "sandbox",
           "PYTHONDONTWRITEBYTECODE": "1", "GIT_PAGER": "cat", "PAGER": "cat",
           "MINIMAX2_SANDBOX_RUN": marker}
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{SAFE_PATH}"
    return env


def scratch_dirs(cwd: Path, venv: Path | None) -> tuple[Path, Path, Path | None]:
    """(HOME, TMPDIR, folder to remove after the command): inside the sandbox folder when there is
    one (workdir/home, workdir/tmp, removed with it), else a fresh folder removed after the command."""
    if venv is not None:
        base, owned = venv.parent, None
    else:
        base = owned = Path(tempfile.mkdtemp(prefix="minimax2-box-"))
    home, tmp = base / "home", base / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    return home, tmp, owned


def run(cmd: str, cwd: Path, venv: Path | None = None, timeout: float = 120, network: bool = False,
        limit: int = OUTPUT_CAP, file_limit: int = FILE_LIMIT, disk_limit: int = DISK_LIMIT) -> RunResult:
    """Run a shell command in the sandbox (see isolation.py for what holds on this machine).

    Output is streamed into a head + tail buffer of `limit` bytes; at `timeout` (or when the sandbox's
    folders use more than `disk_limit` bytes) everything the command started is killed; no file it
    writes can grow past `file_limit` bytes."""
    iso = isolation.detect()
    cwd = Path(cwd)
    home, tmp, owned = scratch_dirs(cwd, venv)
    writable = [p for p in dict.fromkeys([cwd, venv, home, tmp]) if p is not None]
    marker = uuid.uuid4().hex
    script = f"ulimit -f {max(1, file_limit // 1024)}\n{cmd}"
    start = time.monotonic()
    try:
        iso.prepare(writable)
        cover = [*isolation.concealed(), *hidden_installs(venv)]
        argv = iso.argv(script, writable, isolation.interpreter_prefix(venv), network, cover)
        proc = subprocess.Popen(argv, cwd=cwd, env=environment(venv, home, tmp, marker),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)

        def kill() -> None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if iso.level not in ("full", "pidns"):
                isolation.reap(marker)

        with proc:
            got = capture.collect(proc, timeout, limit, writable, disk_limit, kill)
            kill()  # whatever it left behind
            code = proc.wait()
    finally:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
    return RunResult(None if got.timed_out else code, got.output, time.monotonic() - start,
                     got.timed_out, got.truncated)


def import_root(tree: Path) -> Path:
    """Where the package is importable from: `src/` for src-layouts, else the tree itself."""
    src = tree / "src"
    if src.is_dir() and any(p.is_dir() or p.suffix == ".py" for p in src.iterdir()):
        return src
    return tree


PLUGINS_FILE = "pytest-plugins.txt"  # in a venv: the pytest plugins its test deps provide
# beside a venv, outside every folder a sandboxed command may write: the base interpreter's copies of the
# package under test, covered in every command that venv runs
HIDDEN_FILE = "hidden-installs.txt"
NOT_PACKAGES = {"setup", "conftest", "tests", "test", "docs", "doc", "examples", "scripts", "benchmarks", "tools"}


@functools.cache
def _site_dirs(python: str) -> tuple[Path, ...]:
    """The site-packages folders of the interpreter task venvs of this Python version are made from."""
    out = subprocess.run([find_python(python), "-I", "-c", "import site; print('\\n'.join(site.getsitepackages()))"],
                         capture_output=True, text=True)
    return tuple(Path(line) for line in out.stdout.splitlines() if line.strip())


def installed_copies(tree: Path, python: str) -> list[str]:
    """Where the interpreter the venvs are made from has its own copy of the package under test (a
    venv sees its site-packages): the package's top-level modules and the dist-info that lists them.
    That copy may be the fixed release, so the sandbox covers it."""
    names = {p.stem if p.suffix == ".py" else p.name for p in import_root(tree).iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"} - NOT_PACKAGES
    found = []
    for site in _site_dirs(python):
        found += [str(site / n) for n in sorted(names) if (site / n).is_dir()]
        found += [str(site / f"{n}.py") for n in sorted(names) if (site / f"{n}.py").is_file()]
        found += [str(c) for n in sorted(names) for c in sorted((site / "__pycache__").glob(f"{n}.*.pyc"))]
        for info in sorted(site.glob("*.dist-info")):
            record = info / "RECORD"
            lines = record.read_text(errors="replace").splitlines() if record.is_file() else []
            if any(line.split("/", 1)[0] in names or line.split(",", 1)[0] in {f"{n}.py" for n in names}
                   for line in lines):
                found.append(str(info))
    return found


def hidden_installs(venv: Path | None) -> list[str]:
    path = venv.parent / HIDDEN_FILE if venv is not None else None
    return path.read_text().split("\n")[:-1] if path is not None and path.exists() else []


def make_venv(tree: Path, venv: Path, python: str = "3.11", deps: Path | None = None) -> Path:
    """A venv (system site-packages allowed) with `tree` installed in development mode, and the task's
    test dependencies (`deps`, made at build by testdeps.py) copied into its site-packages.

    The editable install is the .pth file that `pip install --no-deps -e` produces for a
    pure-Python project, written directly so that building a sandbox needs no network."""
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([find_python(python), "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "_minimax2_task.pth").write_text(str(import_root(tree).resolve()) + "\n")
    _dist_info(tree, site)
    (venv.parent / HIDDEN_FILE).write_text("".join(f"{p}\n" for p in installed_copies(tree, python)))
    if deps is not None and (deps / "site-packages").is_dir():
        shutil.copytree(deps / "site-packages", site, symlinks=True, dirs_exist_ok=True)
        shutil.copy2(deps / "plugins.txt", venv / PLUGINS_FILE)
    return venv


def _dist_info(tree: Path, site: Path) -> None:
    """The tree's own installed metadata, from the sdist's PKG-INFO, as `pip install -e` would write it:
    `importlib.metadata.version(name)` then answers for this tree (suites test it), not for whatever
    release the interpreter has installed (which the sandbox covers anyway)."""
    info = tree / "PKG-INFO"
    if not info.is_file():
        return
    text = info.read_text(errors="replace")
    meta = email.parser.Parser().parsestr(text, headersonly=True)
    if not meta["Name"] or not meta["Version"]:
        return
    folder = site / f"{re.sub(r'[-_.]+', '_', meta['Name'])}-{meta['Version']}.dist-info"
    folder.mkdir(exist_ok=True)
    (folder / "METADATA").write_text(text)
    (folder / "INSTALLER").write_text("minimax2-eval\n")
    (folder / "RECORD").write_text("")


def pytest_plugins(venv: Path) -> list[str]:
    """The plugins to load with `-p` (suites run with plugin autoload off) in this venv."""
    path = venv / PLUGINS_FILE
    return path.read_text().split() if path.exists() else []


EXCLUDED = "__pycache__/\n*.pyc\n.pytest_cache/\n"
# git run by the harness (as root, outside the sandbox) reads no configuration it did not write: a repo's
# own .git/config is the agent's to edit (core.fsmonitor, filters and hooks run commands), and the host's
# is not the task's
HARNESS_GIT = ("-c", "core.autocrlf=false", "-c", "safe.directory=*", "-c", "core.fsmonitor=false",
               "-c", "core.hooksPath=/dev/null")


def git(repo: Path, *args: str, git_dir: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "minimax2", "GIT_AUTHOR_EMAIL": "eval@minimax2",
           "GIT_COMMITTER_NAME": "minimax2", "GIT_COMMITTER_EMAIL": "eval@minimax2",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    where = [f"--git-dir={git_dir}", f"--work-tree={repo}"] if git_dir is not None else []
    out = subprocess.run(["git", *HARNESS_GIT, *where, *args], cwd=repo, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def baseline(repo: Path) -> Path:
    """The harness's own record of the start tree: a git dir beside the repo, outside every folder a
    sandboxed command may write, so nothing the agent does to repo/.git changes what `diff` runs."""
    return repo.parent / "baseline.git"


def create(tree: Path, workdir: Path, python: str = "3.11", deps: Path | None = None) -> tuple[Path, Path]:
    """Copy `tree` to workdir/repo, commit it (in repo/.git for the agent's own use, and in the harness's
    `baseline`), make workdir/venv (with `deps`); returns (repo, venv)."""
    repo, venv = workdir / "repo", workdir / "venv"
    for old in (repo, baseline(repo)):
        if old.exists():
            shutil.rmtree(old)
    shutil.copytree(tree, repo, symlinks=True)
    for git_dir in (None, baseline(repo)):
        git(repo, "init", "-q", git_dir=git_dir)
        ((git_dir or repo / ".git") / "info").mkdir(exist_ok=True)
        ((git_dir or repo / ".git") / "info" / "exclude").write_text(EXCLUDED)
        git(repo, "add", "-A", git_dir=git_dir)
        git(repo, "commit", "-q", "--no-verify", "-m", "task start", git_dir=git_dir)
    make_venv(repo, venv, python, deps)
    return repo, venv


def diff(repo: Path) -> str:
    """The changes made in the sandbox since the start, new files included, as the harness's baseline
    sees them (the agent's repo/.git, config included, is never read). Folders the agent made into
    repositories of their own (a `.git` folder or gitfile inside) are left out: git would otherwise
    record them as submodules, fail on one with no commit, or follow a gitfile anywhere on the host."""
    base = baseline(repo)
    nested = sorted({p.parent.relative_to(repo).as_posix() for p in repo.rglob(".git")
                     if p.parent != repo and ".git" not in p.parent.relative_to(repo).parts})
    (base / "info" / "exclude").write_text(EXCLUDED + "".join(f"/{n}/\n" for n in nested))
    git(repo, "add", "-A", git_dir=base)
    return git(repo, "-c", "diff.renames=false", "diff", "--cached", "--no-color", "--binary", "HEAD", git_dir=base)


def apply_patch(repo: Path, patch: str) -> None:
    if not patch.strip():
        return
    proc = subprocess.run(["git", *HARNESS_GIT, "apply", "--whitespace=nowarn", "-"], cwd=repo, input=patch,
                          capture_output=True, text=True, env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1",
                                                               "GIT_CONFIG_GLOBAL": os.devnull})
    if proc.returncode != 0:
        raise RuntimeError(f"git apply failed: {proc.stderr.strip()}")
