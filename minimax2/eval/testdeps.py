"""A task's test dependencies, made available offline: the record's `test_requires` plus the pytest
plugins its config names (`--cov` in addopts with `keep_addopts = true` -> pytest-cov, and every
`required_plugins` entry).

At build they are resolved from wheels in the cache, downloaded first when missing (the only network
use, with `pip download --only-binary=:all:` for the sandbox's Python version):
  <cache>/wheels/py<X.Y>/    the wheels, shared by every task
  <out>/deps/site-packages/  what pip installed for the task into a throwaway venv of the sandbox's
                             interpreter (`--system-site-packages`, so what that interpreter already
                             has, pytest included, is used and not installed again)
  <out>/deps/plugins.txt     the pytest plugins (entry-point names) to load with `-p`: suites run
                             with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
Every sandbox venv of the task gets a copy of site-packages (sandbox.make_venv): grading stays offline.
Console scripts of these packages are not kept (their interpreter path would be the throwaway venv's).
"""
from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from . import sandbox, sdist
from .records import Task

# An option in the project's addopts -> the distribution that provides it. A key ending in "-" is a prefix.
ADDOPTS_PLUGINS = {"--cov": "pytest-cov", "--no-cov": "pytest-cov", "--cov-": "pytest-cov",
                   "-n": "pytest-xdist", "--numprocesses": "pytest-xdist", "--dist": "pytest-xdist",
                   "--timeout": "pytest-timeout", "--benchmark-": "pytest-benchmark",
                   "--reruns": "pytest-rerunfailures", "--doctest-plus": "pytest-doctestplus",
                   "--mypy": "pytest-mypy", "--asyncio-mode": "pytest-asyncio", "--html": "pytest-html",
                   "--hypothesis-": "hypothesis", "--randomly-": "pytest-randomly"}
NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def project_name(requirement: str) -> str:
    """The PEP 503 normalised project of a requirement (`pytest-cov>=4`, `Foo[bar]; python_version>'3'`)."""
    m = NAME.match(requirement)
    if not m:
        raise ValueError(f"test_requires: {requirement!r} is not a requirement")
    return sdist.normalise(m.group(1))


def pytest_config(tree: Path) -> dict[str, str]:
    """{"addopts": ..., "required_plugins": ...} of the project's pytest config, as pytest finds it."""
    for name, section in (("pytest.ini", "pytest"), ("pyproject.toml", None), ("tox.ini", "pytest"),
                          ("setup.cfg", "tool:pytest")):
        path = tree / name
        if not path.is_file():
            continue
        if section is None:
            opts = tomllib.loads(path.read_text()).get("tool", {}).get("pytest", {}).get("ini_options")
            if opts is None:
                continue
            return {k: " ".join(v) if isinstance(v, list) else str(v) for k, v in opts.items()
                    if k in ("addopts", "required_plugins")}
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(path.read_text())
        if parser.has_section(section):
            return {k: v for k, v in parser[section].items() if k in ("addopts", "required_plugins")}
        if name == "pytest.ini":
            return {}
    return {}


def _addopts_plugins(addopts: str) -> list[str]:
    found = []
    for word in shlex.split(addopts):
        opt = word.split("=", 1)[0]
        if re.fullmatch(r"-n(\d+|auto|logical)", opt):
            opt = "-n"
        for key, dist in ADDOPTS_PLUGINS.items():
            if opt == key or (key.endswith("-") and opt.startswith(key)):
                found.append(dist)
    return found


def requirements(task: Task, tree: Path) -> list[str]:
    """test_requires, then the plugins the project's pytest config needs (one entry per project)."""
    config = pytest_config(tree) if task.log_parser == "pytest" else {}
    wanted = list(task.test_requires) + config.get("required_plugins", "").split()
    if task.keep_addopts:
        wanted += _addopts_plugins(config.get("addopts", ""))
    seen, out = set(), []
    for req in wanted:
        name = project_name(req)
        if name not in seen:
            seen.add(name)
            out.append(req)
    return out


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def _download(reqs: list[str], wheels: Path, version: str) -> None:
    proc = _pip(Path(sys.executable), "download", "--quiet", "--only-binary=:all:", "--python-version",
                version, "--dest", str(wheels), *reqs)
    if proc.returncode != 0:
        raise sdist.FetchError(f"pip download of test_requires {reqs} (wheels for Python {version}) failed: "
                               f"{proc.stderr.strip()[-800:]}")


def _install(venv: Path, wheels: Path, reqs: list[str], report: Path) -> subprocess.CompletedProcess:
    return _pip(venv / "bin" / "python", "install", "--quiet", "--no-index", "--find-links", str(wheels),
                "--only-binary=:all:", "--no-warn-script-location", "--report", str(report), *reqs)


def _plugins(venv: Path, names: set[str]) -> list[str]:
    """Entry-point names of the pytest plugins that the wanted projects provide."""
    code = ("import importlib.metadata as m, json; print(json.dumps(sorted("
            "[e.name, e.dist.name] for e in m.entry_points(group='pytest11'))))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    return sorted({ep for ep, dist in json.loads(out.stdout) if sdist.normalise(dist) in names})


def prepare(task: Task, tree: Path, cache: Path, out: Path, tmp: Path) -> dict | None:
    """Install the task's test requirements into out/deps (see the module doc); None when it has none.
    Returns what was installed: requirements, plugins, and each wheel's file in the cache and sha256."""
    reqs = requirements(task, tree)
    if not reqs:
        return None
    wheels = cache / "wheels" / f"py{task.python}"
    wheels.mkdir(parents=True, exist_ok=True)
    venv, report = tmp / "deps-venv", tmp / "deps-report.json"
    subprocess.run([sandbox.find_python(task.python), "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(str(wheels), threading.Lock())
    downloaded = False
    with lock:
        proc = _install(venv, wheels, reqs, report)
        if proc.returncode != 0 and "No module named pip" in proc.stderr:
            raise RuntimeError(f"the sandbox interpreter for Python {task.python} has no pip, which "
                               f"installs test_requires {reqs}: install pip for it")
        if proc.returncode != 0:  # a wheel is missing from the cache: the one network use
            _download(reqs, wheels, task.python)
            downloaded = True
            proc = _install(venv, wheels, reqs, report)
    if proc.returncode != 0:
        raise RuntimeError(f"installing test_requires {reqs} from {wheels} failed: {proc.stderr.strip()[-800:]}")
    site = next(venv.glob("lib/python*/site-packages"))
    deps = out / "deps"
    shutil.copytree(site, deps / "site-packages", ignore=shutil.ignore_patterns("__pycache__"))
    plugins = _plugins(venv, {project_name(r) for r in reqs})
    (deps / "plugins.txt").write_text("".join(f"{p}\n" for p in plugins))
    installed = []
    for item in json.loads(report.read_text()).get("install", []):
        info = item["download_info"]
        installed.append({"name": item["metadata"]["name"], "version": item["metadata"]["version"],
                          "file": url2pathname(urlparse(info["url"]).path),
                          "sha256": info.get("archive_info", {}).get("hashes", {}).get("sha256", "")})
    return {"requirements": reqs, "plugins": plugins, "wheels": installed, "downloaded": downloaded}
