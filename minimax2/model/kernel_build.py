"""Builds the native decode kernels once per machine and loads them: one cache entry per (sources, flags,
compiler, torch, Python), shared by every checkout, worktree and wheel install of the same sources.

Layout under `$TORCH_EXTENSIONS_DIR` (default `~/.cache/torch_extensions`)::

    minimax2_cpu_kernels_<key>/
        minimax2_cpu_kernels.so   the finished extension, moved into place atomically once built
        build.lock                flock held by the process building (released by the OS if it dies)
        builder                   "pid start-time" of that process, for the others' waiting message
        build-<pid>/              the build in progress: its own copy of the sources, ninja files, objects

The key covers the contents of every .cpp and .h in csrc, the flags, the compiler's `--version`, torch's
version and the Python ABI, and the build compiles copies of the sources inside the entry, so nothing in it
names a checkout: a second clone finds the .so and imports it directly (no ninja, no lock, no
recompilation). A build killed midway leaves only a `build-<pid>` folder, removed by the next build.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

NAME = "minimax2_cpu_kernels"
FALLBACK = "decode uses torch's ops (slower); MINIMAX2_CPU_KERNELS=0 skips the kernels"


def cache_root() -> Path:
    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")


def compiler() -> str:
    """The C++ compiler torch.utils.cpp_extension invokes."""
    return os.environ.get("CXX", "c++")


def compiler_identity() -> str:
    """First line of `$CXX --version` (e.g. 'c++ (Debian 12.2.0-14) 12.2.0'), or why there is none."""
    try:
        out = subprocess.run([compiler(), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return f"no compiler: {type(e).__name__}"
    return (out.stdout.strip().splitlines() or [f"{compiler()} exit {out.returncode}"])[0]


def _csrc_files(csrc: Path) -> list[Path]:
    return sorted(p for p in csrc.iterdir() if p.suffix in (".cpp", ".h"))


def cache_dir(sources: list[Path], flags: list[str], ldflags: list[str]) -> Path:
    """The cache entry for these sources (every .cpp and .h beside them counts), flags and toolchain."""
    import torch

    csrc = Path(sources[0]).parent
    h = hashlib.sha256()
    for part in (NAME, torch.__version__, sys.implementation.cache_tag, platform.machine(), compiler_identity(),
                 " ".join(flags), " ".join(ldflags), " ".join(Path(s).name for s in sources)):
        h.update(part.encode() + b"\0")
    for p in _csrc_files(csrc):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return cache_root() / f"{NAME}_{h.hexdigest()[:16]}"


def _import(so: Path):
    """Import a built extension from its file (torch must be imported first: it provides libtorch)."""
    import torch  # noqa: F401

    spec = importlib.util.spec_from_file_location(NAME, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Ticker:
    """Says `text` with the elapsed seconds while a block runs: rewritten in place every second on a terminal,
    a fresh line every 15 s otherwise."""

    def __init__(self, text: str):
        self.text, self.t0, self.stop = text, time.time(), threading.Event()
        self.tty = sys.stderr.isatty()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _say(self) -> None:
        line = f"{self.text} {time.time() - self.t0:.0f} s"
        sys.stderr.write(f"\r{line}\033[K" if self.tty else line + "\n")
        sys.stderr.flush()

    def _run(self) -> None:
        while not self.stop.wait(1.0 if self.tty else 15.0):
            self._say()

    def __enter__(self):
        self._say()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        if self.tty:
            sys.stderr.write("\n")

    @property
    def elapsed(self) -> float:
        return time.time() - self.t0


def _holder(d: Path) -> str:
    """Who holds the build lock, for the waiting message."""
    try:
        pid, since = (d / "builder").read_text().split()[:2]
        t = float(since)
        return f"process {pid}'s build, started {time.strftime('%H:%M:%S', time.localtime(t))}"
    except (OSError, ValueError):
        return "another process's build"


def reason(e: BaseException) -> str:
    """One line saying why a build failed: the compiler's first error where there is one."""
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    pick = next((s for s in lines if re.search(r"error|not found|No such file|cannot", s, re.I)), None)
    return f"{type(e).__name__}: {(pick or (lines[0] if lines else ''))[:200]}"


def _build(sources: list[Path], flags: list[str], ldflags: list[str], d: Path, so: Path):
    """Compile copies of the sources in d/build-<pid>, then move the .so into place atomically."""
    from torch.utils.cpp_extension import load as torch_load

    for stale in d.glob("build-*"):  # we hold the lock, so these are left by builds that died
        shutil.rmtree(stale, ignore_errors=True)
    tmp = d / f"build-{os.getpid()}"
    src = tmp / "src"
    src.mkdir(parents=True)
    csrc = Path(sources[0]).parent
    for p in _csrc_files(csrc):
        shutil.copyfile(p, src / p.name)
    (d / "builder").write_text(f"{os.getpid()} {time.time():.0f}\n")
    try:
        module = torch_load(NAME, [str(src / Path(s).name) for s in sources], extra_cflags=flags,
                            extra_ldflags=ldflags, extra_include_paths=[str(src)], build_directory=str(tmp))
        if module.__name__ == NAME:  # torch renames a second build in one process; keep such out of the cache
            os.replace(tmp / f"{NAME}.so", so)
        return module
    finally:
        (d / "builder").unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


def load(sources: list[Path], flags: list[str], ldflags: list[str], verbose: bool = True):
    """The extension from the cache, built first if this machine has none yet; None (with one line saying why
    and what happens instead) where it cannot be built."""
    t0 = time.time()
    what = "native decode kernels"
    try:
        from torch.utils.cpp_extension import is_ninja_available

        d = cache_dir(sources, flags, ldflags)
        so = d / f"{NAME}.so"
        if so.exists():
            module = _import(so)
            if verbose:
                print(f"minimax2: {what} loaded from {d} ({time.time() - t0:.1f} s)", file=sys.stderr, flush=True)
            return module
        if shutil.which(compiler()) is None:
            raise RuntimeError(f"no C++ compiler: {compiler()!r} not found (install g++ or set CXX)")
        if not is_ninja_available():
            raise RuntimeError("ninja not found (pip install ninja)")
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / "build.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with _Ticker(f"minimax2: waiting for {_holder(d)} of the {what} ..."):
                    fcntl.flock(fd, fcntl.LOCK_EX)
            if so.exists():  # the build we waited for finished
                module = _import(so)
                if verbose:
                    print(f"minimax2: {what} loaded from {d} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
            else:
                with _Ticker(f"minimax2: compiling the {what} (once per machine; a minute or more) ...") as tick:
                    module = _build(sources, flags, ldflags, d, so)
                print(f"minimax2: {what} built in {tick.elapsed:.0f} s, cached in {d}", file=sys.stderr, flush=True)
        finally:
            os.close(fd)
    except (RuntimeError, OSError, ImportError, subprocess.SubprocessError) as e:
        print(f"minimax2: {what} unavailable ({reason(e)}); {FALLBACK}", file=sys.stderr, flush=True)
        return None
    return module
