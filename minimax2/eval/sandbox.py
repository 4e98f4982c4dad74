"""Per-task sandboxes: a fresh copy of a tree with its own venv, git-initialised, and a command
runner (isolation.py: what contains it; capture.py: bounded output, timeout and disk cap)."""
from __future__ import annotations

import os
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
        argv = iso.argv(script, writable, isolation.interpreter_prefix(venv), network)
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
    if deps is not None and (deps / "site-packages").is_dir():
        shutil.copytree(deps / "site-packages", site, symlinks=True, dirs_exist_ok=True)
        shutil.copy2(deps / "plugins.txt", venv / PLUGINS_FILE)
    return venv


def pytest_plugins(venv: Path) -> list[str]:
    """The plugins to load with `-p` (suites run with plugin autoload off) in this venv."""
    path = venv / PLUGINS_FILE
    return path.read_text().split() if path.exists() else []


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "minimax2", "GIT_AUTHOR_EMAIL": "eval@minimax2",
           "GIT_COMMITTER_NAME": "minimax2", "GIT_COMMITTER_EMAIL": "eval@minimax2"}
    out = subprocess.run(["git", "-c", "core.autocrlf=false", "-c", "safe.directory=*", *args], cwd=repo, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def create(tree: Path, workdir: Path, python: str = "3.11", deps: Path | None = None) -> tuple[Path, Path]:
    """Copy `tree` to workdir/repo, commit it, make workdir/venv (with `deps`); returns (repo, venv)."""
    repo, venv = workdir / "repo", workdir / "venv"
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(tree, repo, symlinks=True)
    git(repo, "init", "-q")
    (repo / ".git" / "info" / "exclude").write_text("__pycache__/\n*.pyc\n.pytest_cache/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "task start")
    make_venv(repo, venv, python, deps)
    return repo, venv


def diff(repo: Path) -> str:
    """The changes made in the sandbox since the start commit, new files included."""
    git(repo, "add", "-A")
    return git(repo, "diff", "--cached", "--no-color", "--binary", "HEAD")


def apply_patch(repo: Path, patch: str) -> None:
    if not patch.strip():
        return
    proc = subprocess.run(["git", "-c", "safe.directory=*", "apply", "--whitespace=nowarn", "-"], cwd=repo, input=patch,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git apply failed: {proc.stderr.strip()}")
