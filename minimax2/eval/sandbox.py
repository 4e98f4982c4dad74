"""Per-task sandboxes: a fresh copy of a tree with its own venv, git-initialised, and a command
runner with no network, a process-group timeout and capped output."""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

OUTPUT_CAP = 20_000  # characters kept (head + tail) of one command's output


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


@functools.cache
def no_network_prefix() -> tuple[str, ...]:
    """`unshare -n` (or `-rn` unprivileged) when it works; else () with a loud warning."""
    for prefix in (("unshare", "-n"), ("unshare", "-rn")):
        if shutil.which(prefix[0]) is None:
            break
        probe = subprocess.run([*prefix, "true"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    msg = "unshare is not available: agent commands will run WITH network access"
    warnings.warn(msg)
    print(f"WARNING: {msg}", file=sys.stderr)
    return ()


def cap(text: str, limit: int = OUTPUT_CAP) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters elided ...]\n{text[-half:]}", True


def run(cmd: str, cwd: Path, venv: Path | None = None, timeout: float = 120,
        network: bool = False, limit: int = OUTPUT_CAP) -> RunResult:
    """Run a shell command; on timeout the whole process group is killed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["GIT_PAGER"] = env["PAGER"] = "cat"
    prefix = () if network else no_network_prefix()
    start = time.monotonic()
    proc = subprocess.Popen([*prefix, "bash", "-c", cmd], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    try:
        raw, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        raw, _ = proc.communicate()
    text, truncated = cap(raw.decode("utf-8", errors="replace"), limit)
    code = None if timed_out else proc.returncode
    return RunResult(code, text, time.monotonic() - start, timed_out, truncated)


def import_root(tree: Path) -> Path:
    """Where the package is importable from: `src/` for src-layouts, else the tree itself."""
    src = tree / "src"
    if src.is_dir() and any(p.is_dir() or p.suffix == ".py" for p in src.iterdir()):
        return src
    return tree


def make_venv(tree: Path, venv: Path, python: str = "3.11") -> Path:
    """A venv (system site-packages allowed) with `tree` installed in development mode.

    The editable install is the .pth file that `pip install --no-deps -e` produces for a
    pure-Python project, written directly so that building a sandbox needs no network."""
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([find_python(python), "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "_minimax2_task.pth").write_text(str(import_root(tree).resolve()) + "\n")
    return venv


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "minimax2", "GIT_AUTHOR_EMAIL": "eval@minimax2",
           "GIT_COMMITTER_NAME": "minimax2", "GIT_COMMITTER_EMAIL": "eval@minimax2"}
    out = subprocess.run(["git", "-c", "core.autocrlf=false", *args], cwd=repo, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def create(tree: Path, workdir: Path, python: str = "3.11") -> tuple[Path, Path]:
    """Copy `tree` to workdir/repo, commit it, make workdir/venv; returns (repo, venv)."""
    repo, venv = workdir / "repo", workdir / "venv"
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(tree, repo, symlinks=True)
    git(repo, "init", "-q")
    (repo / ".git" / "info" / "exclude").write_text("__pycache__/\n*.pyc\n.pytest_cache/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "task start")
    make_venv(repo, venv, python)
    return repo, venv


def diff(repo: Path) -> str:
    """The changes made in the sandbox since the start commit, new files included."""
    git(repo, "add", "-A")
    return git(repo, "diff", "--cached", "--no-color", "--binary", "HEAD")


def apply_patch(repo: Path, patch: str) -> None:
    if not patch.strip():
        return
    proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=repo, input=patch,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git apply failed: {proc.stderr.strip()}")
