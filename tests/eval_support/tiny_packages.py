"""Tiny real packages for the eval harness tests: sdists (tar.gz with PKG-INFO, as PyPI serves them)
written straight into a build cache, and a wheel built by pip from a local project."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

PKG_INFO = "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: a test package\n"


def write_sdist(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """`<folder>/<name>-<version>.tar.gz` with one top folder, PKG-INFO and `files`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}.tar.gz"
    top = f"{name}-{version}"
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in {"PKG-INFO": PKG_INFO.format(name=name, version=version), **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return path


def cache_sdists(cache: Path, name: str, releases: dict[str, dict[str, str]]) -> None:
    """Put each release's sdist where sdist.fetch finds it: <cache>/sdists (cache = $MINIMAX2_CACHE/eval)."""
    for version, files in releases.items():
        write_sdist(cache / "sdists", name, version, files)


def build_wheel(project: Path, files: dict[str, str], out: Path) -> Path:
    """`pip wheel` of a local setuptools project, offline (no index, no build isolation)."""
    for rel, text in files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                           "--no-build-isolation", "--disable-pip-version-check", "-w", str(out), str(project)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


# tinycalc: 1.1 fixes add() (hunk 0 of calc.py) and changes describe() (hunk 1), and adds a test.
CALC_HEAD = '"""Small arithmetic helpers."""\n\n\ndef add(a, b):\n    return a {op} b\n'
CALC_MID = "".join(f"\n\ndef times_{n}(x):\n    return x * {n}\n" for n in range(2, 6))
CALC_TAIL = '\n\ndef describe():\n    return "{text}"\n'
TEST_OLD = "from tinycalc.calc import times_2\n\n\ndef test_times_2():\n    assert times_2(2) == 4\n"
TEST_NEW = ("import pytest\n\nfrom tinycalc.calc import add, times_2\n\n\ndef test_times_2():\n"
            "    assert times_2(2) == 4\n\n\n"
            '@pytest.mark.parametrize("a,b,want", [(2, 3, 5)], ids=["two and three"])\n'
            "def test_add(a, b, want):\n    assert add(a, b) == want\n")
TINYCALC = {
    "1.0": {"tinycalc/__init__.py": "", "CHANGES.txt": "1.0: first release\n", "tests/test_calc.py": TEST_OLD,
            "tinycalc/calc.py": CALC_HEAD.format(op="-") + CALC_MID + CALC_TAIL.format(text="tinycalc")},
    "1.1": {"tinycalc/__init__.py": "", "CHANGES.txt": "1.1: a fix\n1.0: first release\n",
            "tests/test_calc.py": TEST_NEW,
            "tinycalc/calc.py": CALC_HEAD.format(op="+") + CALC_MID + CALC_TAIL.format(text="tiny calculator")},
}
TINYCALC_F2P = "tests/test_calc.py::test_add[two and three]"
