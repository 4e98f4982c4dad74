"""The native kernels are built once per machine: every checkout and wheel install of the same sources
reuses one cache entry, and a build in progress, a wait on another process's build and a machine that
cannot build each say so. Real subprocesses throughout; only the slow test compiles from scratch."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from minimax2.model import cpu_kernels, kernel_build

REPO = Path(__file__).resolve().parents[1]
LOAD = ("import time; t = time.time(); from minimax2.model import cpu_kernels; e = cpu_kernels.load(); "
        "print(e is not None, cpu_kernels.__file__, e and e.__file__, round(time.time() - t, 2), sep='\\n')")


@pytest.fixture(scope="module")
def warm() -> Path:
    """This machine's cache entry, built (once per machine) if it is not there yet; its .so."""
    if not cpu_kernels._cpu_has_avx512_bf16() or os.environ.get("MINIMAX2_CPU_KERNELS") == "0":
        pytest.skip("native decode kernels unavailable here (no AVX512-BF16/VNNI/VBMI, or disabled)")
    assert cpu_kernels.load() is not None, "the kernels did not build (see the line above)"
    return cpu_kernels.build_directory() / f"{kernel_build.NAME}.so"


def _run(python: str, code: str, cwd: Path, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, **env}
    env.pop("MINIMAX2_CPU_KERNELS", None)
    return subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _copy_checkout(dest: Path) -> Path:
    shutil.copytree(REPO / "minimax2", dest / "minimax2", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, dest / f)
    return dest


def test_a_second_checkout_reuses_the_cache_in_seconds(warm, tmp_path):
    before = warm.stat().st_mtime_ns
    other = _copy_checkout(tmp_path / "clone")
    out = _run(sys.executable, LOAD, cwd=other, PYTHONPATH=str(other))
    assert out.returncode == 0, out.stderr
    ok, module_file, so_file, seconds = out.stdout.split()
    assert Path(module_file).is_relative_to(other)  # really the other checkout's code
    assert ok == "True" and Path(so_file) == warm, out.stderr
    assert "compiling" not in out.stderr and "waiting" not in out.stderr, out.stderr
    assert float(seconds) < 20, f"a warm load took {seconds} s"
    assert warm.stat().st_mtime_ns == before  # nothing rebuilt or replaced


def test_the_cache_entry_names_no_checkout(warm):
    entry = warm.parent
    files = [p for p in entry.rglob("*") if p.is_file()]
    assert warm in files and not list(entry.glob("build-*"))
    for p in files:  # (torch's headers are named where torch is installed: that is torch's, not the checkout's)
        assert str(REPO / "minimax2").encode() not in p.read_bytes(), f"{p} names this checkout's sources"


def test_the_key_covers_the_compiler(warm, tmp_path):
    fake = tmp_path / "fake-c++"
    fake.write_text("#!/bin/sh\necho 'fake-c++ 99.1'\n")
    fake.chmod(0o755)
    code = "from minimax2.model import cpu_kernels; print(cpu_kernels.build_directory())"
    here = _run(sys.executable, code, cwd=tmp_path).stdout.strip()
    other = _run(sys.executable, code, cwd=tmp_path, CXX=str(fake)).stdout.strip()
    assert here == str(warm.parent) and other and other != here


def test_no_compiler_says_why_and_what_instead_in_one_line(tmp_path):
    out = _run(sys.executable, LOAD.replace("cpu_kernels.load()", "cpu_kernels.kernel_build.load("
               "cpu_kernels.SOURCES, cpu_kernels.FLAGS, cpu_kernels.LDFLAGS)"), cwd=tmp_path,
               CXX=str(tmp_path / "no-such-c++"), TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"))
    assert out.returncode == 0 and out.stdout.split()[0] == "False", out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "no C++ compiler" in lines[0] and "no-such-c++" in lines[0] and "torch's ops" in lines[0]


HOLD = """
import fcntl, os, shutil, sys, time
from minimax2.model import cpu_kernels, kernel_build
d = cpu_kernels.build_directory(); d.mkdir(parents=True)
fd = os.open(d / "build.lock", os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
since = int(time.time()) - 42
(d / "builder").write_text(f"{os.getpid()} {since}")
print(since, flush=True)
time.sleep(6)
shutil.copy(sys.argv[1], d / "x.so"); os.replace(d / "x.so", d / (kernel_build.NAME + ".so"))
(d / "builder").unlink()
"""


def test_waiting_on_another_build_says_whose_and_then_uses_it(warm, tmp_path):
    """Another process holds the build (a stand-in that 'finishes' by installing the warm .so): the loader
    says which pid it waits on and since when, then imports that build instead of compiling its own."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(warm)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        since = int(holder.stdout.readline())
        out = _run(sys.executable, LOAD, cwd=tmp_path, TORCH_EXTENSIONS_DIR=env["TORCH_EXTENSIONS_DIR"])
    finally:
        holder.wait(timeout=60)
    assert out.returncode == 0 and out.stdout.split()[0] == "True", out.stderr
    started = time.strftime("%H:%M:%S", time.localtime(since))
    assert f"waiting for process {holder.pid}'s build, started {started}" in out.stderr, out.stderr
    assert "compiling" not in out.stderr, out.stderr


def test_a_wheel_carries_the_kernel_sources_and_loads_them(warm, tmp_path):
    src = _copy_checkout(tmp_path / "src")
    shutil.copytree(REPO / "minimax2" / "assets", src / "minimax2" / "assets",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("minimax2-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for p in (REPO / "minimax2" / "model" / "csrc").iterdir():
        assert f"minimax2/model/csrc/{p.name}" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(_run(str(py), "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip())
    deps = Path(_run(sys.executable, "import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))",
                     cwd=tmp_path).stdout.strip())
    (site / "deps.pth").write_text(f"{deps}\n")  # torch and friends from this venv; minimax2 from the wheel
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr
    out = _run(str(py), LOAD, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    ok, module_file, so_file, seconds = out.stdout.split()
    assert Path(module_file).is_relative_to(site) and ok == "True", out.stderr
    assert Path(so_file) == warm and "compiling" not in out.stderr and float(seconds) < 20, out.stderr


@pytest.mark.slow
def test_a_cold_build_says_so_survives_a_killed_builder_and_cleans_up(tmp_path):
    """A cold build in an empty cache: the first builder is killed midway; the one waiting on it says whose
    build it waits for, then builds itself (no stale lock can hang it), with elapsed time, and leaves only
    the finished .so behind."""
    if not cpu_kernels._cpu_has_avx512_bf16():
        pytest.skip("no AVX512-BF16/VNNI/VBMI here")
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    env.pop("MINIMAX2_CPU_KERNELS", None)
    first = subprocess.Popen([sys.executable, "-c", LOAD], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    entry = Path(_run(sys.executable, "from minimax2.model import cpu_kernels; print(cpu_kernels.build_directory())",
                      cwd=tmp_path, TORCH_EXTENSIONS_DIR=env["TORCH_EXTENSIONS_DIR"]).stdout.strip())
    deadline = time.time() + 120
    while not (entry / "builder").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (entry / "builder").exists(), "the first build never started"
    second = subprocess.Popen([sys.executable, "-c", LOAD], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    waiting = second.stderr.readline()  # said at once, before it blocks on the lock
    os.killpg(first.pid, signal.SIGKILL)  # the compiler and ninja too, as Ctrl-C in a terminal would
    first.wait()
    out, err = second.communicate(timeout=1200)
    assert second.returncode == 0 and out.split()[0] == "True", err
    assert f"waiting for process {first.pid}'s build, started" in waiting, waiting + err
    assert "compiling the native decode kernels" in err and "built in" in err, err
    assert sorted(p.name for p in entry.iterdir()) == ["build.lock", f"{kernel_build.NAME}.so"]
