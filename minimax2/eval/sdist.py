"""Fetch and unpack source distributions with pip (cached)."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path



class FetchError(RuntimeError):
    pass


SDIST_SUFFIXES = (".tar.gz", ".zip")


def normalise(name: str) -> str:
    """PEP 503 normalised project name: `Markdown`, `python_semver`, `Python.Semver` -> lower, `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _same_version(a: str, b: str) -> bool:
    """Equal as PEP 440 versions (`1.0` == `1.0.0`, never `3.8` == `3.8.1`); as strings without packaging."""
    if a == b:
        return True
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def parse_name(filename: str) -> tuple[str, str] | None:
    """(normalised project, version) of an sdist file name, or None. The version is what follows
    the last `-` (PEP 625 names have exactly one; legacy names may have `-` in the project part)."""
    for suffix in SDIST_SUFFIXES:
        if filename.lower().endswith(suffix):
            stem = filename[: -len(suffix)]
            if "-" in stem:
                project, version = stem.rsplit("-", 1)
                return normalise(project), version
    return None


def _find(dest: Path, package: str, version: str) -> Path | None:
    """The sdist of exactly package==version in dest: never another version that shares a prefix."""
    want = normalise(package)
    for path in sorted(dest.iterdir()) if dest.exists() else []:
        parsed = parse_name(path.name)
        if parsed and parsed[0] == want and _same_version(parsed[1], version):
            return path
    return None


_LOCKS: dict[tuple, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def fetch(package: str, version: str, cache: Path) -> Path:
    """Path of the sdist archive of package==version, downloading it with pip when not cached."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault((str(cache), package, version), threading.Lock())
    with lock:
        return _fetch(package, version, cache)


def _fetch(package: str, version: str, cache: Path) -> Path:
    dest = cache / "sdists"
    found = _find(dest, package, version)
    if found:
        return found
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", "-d", str(dest), f"{package}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = _find(dest, package, version)
    if proc.returncode != 0 or not found:
        raise FetchError(f"pip download {package}=={version} failed: {proc.stderr.strip()[-800:]}")
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack into dest (replaced) and return the project root (the single top-level folder)."""
    if dest.exists():
        shutil.rmtree(dest)
    tmp = dest.with_name(dest.name + ".unpack")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
    tops = list(tmp.iterdir())
    root = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp
    root.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest
