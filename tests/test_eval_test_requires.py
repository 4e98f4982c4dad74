"""A record's `test_requires` (issue 17 item 4): wheels in the cache, installed at build into the task,
copied into every sandbox venv, so that grading runs offline. The offline case uses a wheel that pip
builds here from a local project; the network case downloads freezegun and pytest-cov from PyPI."""
from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from pathlib import Path

import pytest

from eval_support.tiny_packages import build_wheel, cache_sdists
from minimax2.eval import build, grading, records, runner, sandbox, testdeps

# tinyclock: a module the tests import and a pytest plugin (a fixture) loaded through its entry point.
TINYCLOCK = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
                      '[project]\nname = "tinyclock"\nversion = "0.1"\n\n'
                      '[project.entry-points.pytest11]\ntinyclock = "tinyclock.plugin"\n\n'
                      '[tool.setuptools]\npackages = ["tinyclock"]\n',
    "tinyclock/__init__.py": "def now():\n    return 10\n",
    "tinyclock/plugin.py": "import pytest\n\n\n@pytest.fixture\ndef frozen_clock():\n    return 10\n",
}
TIMER_TEST_OLD = "import tinyclock\n\n\ndef test_clock():\n    assert tinyclock.now() == 10\n"
TIMER_TEST_NEW = TIMER_TEST_OLD + ("\nfrom tinytimer.timer import hours_until_noon\n\n\n"
                                   "def test_until_noon(frozen_clock):\n"
                                   "    assert hours_until_noon(frozen_clock) == 2\n")
TIMER = "def hours_until_noon(hour):\n    return {expr}\n"
TINYTIMER = {
    "1.0": {"tinytimer/__init__.py": "", "tinytimer/timer.py": TIMER.format(expr="hour - 12"),
            "tests/test_timer.py": TIMER_TEST_OLD},
    "1.1": {"tinytimer/__init__.py": "", "tinytimer/timer.py": TIMER.format(expr="12 - hour"),
            "tests/test_timer.py": TIMER_TEST_NEW},
}


def _task(**kw) -> records.Task:
    base = dict(instance_id="tinytimer-1.1-noon", task_type="bugfix", problem_statement="negative hours",
                package="tinytimer", version_buggy="1.0", version_fixed="1.1",
                hunks={"tinytimer/timer.py": "all"}, test_files=["tests/test_timer.py"],
                FAIL_TO_PASS=["tests/test_timer.py::test_until_noon"], test_requires=["tinyclock"])
    return records.Task(**{**base, **kw})


def _host_has(module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sandbox.find_python("3.11"), "-c", code]).returncode == 0


def test_requirements_from_record_and_pytest_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "--cov=pkg -n 2 -ra"\n'
                                             'required_plugins = ["pytest-mock>=3"]\n')
    task = _task(test_requires=["freezegun>=1", "pytest-cov"])
    assert testdeps.requirements(task, tmp_path) == ["freezegun>=1", "pytest-cov", "pytest-mock>=3"]
    kept = dataclasses.replace(task, keep_addopts=True)
    assert testdeps.requirements(kept, tmp_path) == ["freezegun>=1", "pytest-cov", "pytest-mock>=3",
                                                     "pytest-xdist"]
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\naddopts = --timeout=5\n")
    (tmp_path / "pyproject.toml").unlink()
    assert testdeps.requirements(dataclasses.replace(kept, test_requires=[]), tmp_path) == ["pytest-timeout"]
    assert build.record_hash(task) != build.record_hash(dataclasses.replace(task, test_requires=["x"]))


def test_offline_wheel_from_the_cache(tmp_path, monkeypatch):
    """Build and grade with a wheel pip built here; the index is a dead address, so nothing is downloaded."""
    assert not _host_has("tinyclock")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    cache = tmp_path / "cache"
    cache_sdists(cache, "tinytimer", TINYTIMER)
    wheel = build_wheel(tmp_path / "tinyclock", TINYCLOCK, cache / "wheels" / "py3.11")

    meta = build.build_task(_task(), cache)
    assert meta["status"] == "valid", meta.get("reason")
    deps = meta["provenance_build"]["test_requires"]
    assert deps["requirements"] == ["tinyclock"] and deps["plugins"] == ["tinyclock"] and not deps["downloaded"]
    (used,) = deps["wheels"]
    assert Path(used["file"]) == wheel and used["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()

    task, folder = build.load_built("tinytimer-1.1-noon", cache)
    assert grading.grade(task, folder, runner.oracle_patch(task, folder, "gold")).status == "resolved"
    empty = grading.grade(task, folder, "")
    assert empty.status == "unresolved" and empty.tests == {
        "tests/test_timer.py::test_until_noon": "FAILED", "tests/test_timer.py::test_clock": "PASSED"}

    without = build.build_task(_task(test_requires=[]), cache)
    assert without["status"] == "invalid" and "fail on the fixed tree" in without["reason"]
    log = (cache / "tasks" / "tinytimer-1.1-noon" / "logs" / "fixed.log").read_text()
    assert "No module named 'tinyclock'" in log


@pytest.mark.network
def test_pypi_wheels_downloaded_once_then_offline(tmp_path, monkeypatch):
    """freezegun (named by the record) and pytest-cov (named by addopts, kept) come from PyPI at the
    first build; grading and a forced rebuild then use the cache only."""
    assert not _host_has("freezegun") and not _host_has("pytest_cov")
    test = ("import datetime\n\nimport freezegun\n\nfrom tinyfrozen.day import weekday\n\n\n"
            "@freezegun.freeze_time('2024-01-06')\ndef test_weekday():\n    assert weekday() == {want!r}\n")
    day = "import datetime\n\n\ndef weekday():\n    return datetime.date.today().strftime({fmt!r})\n"
    ini = "[pytest]\naddopts = --cov=tinyfrozen\n"
    cache = tmp_path / "cache"
    cache_sdists(cache, "tinyfrozen", {
        "1.0": {"pytest.ini": ini, "tinyfrozen/__init__.py": "", "tinyfrozen/day.py": day.format(fmt="%a"),
                "tests/test_day.py": test.format(want="Sat")},
        "1.1": {"pytest.ini": ini, "tinyfrozen/__init__.py": "", "tinyfrozen/day.py": day.format(fmt="%A"),
                "tests/test_day.py": test.format(want="Saturday")}})
    task = _task(instance_id="tinyfrozen-1.1-day", package="tinyfrozen", hunks={"tinyfrozen/day.py": "all"},
                 test_files=["tests/test_day.py"], FAIL_TO_PASS=["tests/test_day.py::test_weekday"],
                 test_requires=["freezegun"], keep_addopts=True)
    meta = build.build_task(task, cache)
    assert meta["status"] == "valid", meta.get("reason")
    deps = meta["provenance_build"]["test_requires"]
    assert deps["downloaded"] and deps["plugins"] == ["pytest_cov"]
    names = {w["name"].lower(): Path(w["file"]) for w in deps["wheels"]}
    assert {"freezegun", "pytest-cov"} <= set(names)
    assert all(p.parent == cache / "wheels" / "py3.11" and p.exists() for p in names.values())

    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    again = build.build_task(task, cache, force=True)
    assert again["status"] == "valid" and not again["provenance_build"]["test_requires"]["downloaded"]
    built, folder = build.load_built(task.instance_id, cache)
    assert grading.grade(built, folder, runner.oracle_patch(built, folder, "gold")).status == "resolved"
    assert grading.grade(built, folder, "").status == "unresolved"
