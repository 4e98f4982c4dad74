"""The eval sandbox against the escapes of issue 16 (items 8-11): each is stopped or contained.

Real commands in real sandboxes. Every resource test is bounded: `yes` runs 3 s, the "1 GiB"
write is stopped by a 4 MiB file-size limit, the disk-cap test writes at most a few tens of MiB."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from minimax2.eval import isolation, sandbox

REPO = Path(__file__).resolve().parents[1]
LEVEL = isolation.detect().level
needs_fs = pytest.mark.skipif(LEVEL != "full", reason=f"filesystem isolation is off here (level {LEVEL})")


def _box(tmp_path: Path) -> tuple[Path, Path]:
    """A sandbox folder as create() lays it out: workdir/repo and workdir/venv."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "mod.py").write_text("X = 1\n")
    return sandbox.create(tree, tmp_path / "work")


def _processes_with(arg: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_protections_are_reported():
    text = isolation.detect().describe()
    assert f"level {LEVEL!r}" in text
    for name in isolation.detect().protections:
        assert name in text


def test_setsid_sleeper_is_killed_at_the_timeout(tmp_path):
    tag = f"{20 + uuid.uuid4().int % 1000 / 1000:.3f}"  # a sleep length no one else uses
    start = time.monotonic()
    result = sandbox.run(f"setsid sleep {tag} & sleep 60", tmp_path, timeout=2)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - start < 8, "the detached sleeper kept run() waiting"
    time.sleep(0.2)
    assert _processes_with(tag) == [], "the setsid sleeper survived the kill"


def test_setsid_sleeper_does_not_outlive_a_finished_command(tmp_path):
    tag = f"{20 + uuid.uuid4().int % 1000 / 1000:.3f}"
    start = time.monotonic()
    result = sandbox.run(f"setsid sleep {tag} & echo started", tmp_path, timeout=30)
    assert result.returncode == 0 and "started" in result.output and not result.timed_out
    assert time.monotonic() - start < 8
    time.sleep(0.2)
    assert _processes_with(tag) == []


def test_yes_keeps_the_harness_small(tmp_path):
    probe = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from minimax2.eval import sandbox
        r = sandbox.run("yes", Path({str(tmp_path)!r}), timeout=3)
        status = open("/proc/self/status").read()  # VmHWM: this process's peak (ru_maxrss counts the parent's)
        rss_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
        print(rss_mb, r.timed_out, r.truncated, len(r.output))
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    rss_mb, timed_out, truncated, length = out.stdout.split()
    assert float(rss_mb) < 200, f"harness peaked at {rss_mb} MB"
    assert timed_out == "True" and truncated == "True" and int(length) < 2 * sandbox.OUTPUT_CAP


def test_output_keeps_head_and_tail(tmp_path):
    result = sandbox.run("echo FIRST; seq 1 200000; echo LAST", tmp_path, limit=1000)
    assert result.truncated and "elided" in result.output and len(result.output) < 1200
    assert result.output.startswith("FIRST") and result.output.rstrip().endswith("LAST")


def test_environment_is_allow_listed(tmp_path, monkeypatch):
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("MINIMAX2_TEST_SECRET", canary)
    result = sandbox.run("env", tmp_path)
    assert canary not in result.output and "OPENAI_API_KEY" not in result.output
    if LEVEL in ("full", "pidns"):  # the harness's own environ is out of sight too
        seen = sandbox.run("cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'", tmp_path)
        assert canary not in seen.output


@needs_fs
def test_writes_outside_the_sandbox_are_refused(tmp_path):
    repo, venv = _box(tmp_path)
    outside = Path("/tmp") / f"minimax2-escape-{uuid.uuid4().hex}"
    result = sandbox.run(f"echo in > inside.txt; echo out > ../escape.txt; echo out > {outside}",
                         repo, venv)
    assert (repo / "inside.txt").read_text() == "in\n"
    assert not (repo.parent / "escape.txt").exists() and not outside.exists(), result.output
    if os.geteuid() == 0:
        shadow = sandbox.run("cat /etc/shadow", repo, venv)
        assert shadow.returncode != 0 and "root:" not in shadow.output


def test_big_file_is_stopped_by_the_file_size_limit(tmp_path):
    cap = 4 << 20
    result = sandbox.run("head -c 1G /dev/zero > big; echo rc=$?", tmp_path, file_limit=cap)
    assert "rc=0" not in result.output
    assert (tmp_path / "big").stat().st_size <= cap


def test_many_files_are_stopped_by_the_disk_cap(tmp_path):
    repo, venv = _box(tmp_path)
    script = "for i in $(seq 100); do head -c 2M /dev/zero > f$i; sleep 0.02; done; echo finished"
    result = sandbox.run(script, repo, venv, file_limit=4 << 20, disk_limit=16 << 20, timeout=30)
    assert "finished" not in result.output and "disk use over the cap" in result.output
    written = sum(p.stat().st_size for p in repo.glob("f*"))
    assert written < 64 << 20


def test_sandbox_still_runs_git_and_python(tmp_path):
    repo, venv = _box(tmp_path)
    result = sandbox.run("python -c 'import mod, pytest; print(mod.X)' && git status --short && "
                         "echo Y = 2 >> mod.py", repo, venv)
    assert result.returncode == 0 and "1" in result.output, result.output
    assert "+Y = 2" in sandbox.diff(repo)


@pytest.mark.parametrize("level", ["pidns", "netns", "none"])
def test_fallback_levels_still_kill_detached_children(tmp_path, monkeypatch, level):
    """Where namespaces are missing: process-group kill plus reaping by the environment marker."""
    if LEVEL not in ("full", level) and isolation.LEVELS.index(level) < isolation.LEVELS.index(LEVEL):
        pytest.skip(f"level {level} does not work here")
    monkeypatch.setattr(isolation, "detect", lambda: isolation.Isolation(level, os.geteuid() == 0))
    tag = f"{20 + uuid.uuid4().int % 1000 / 1000:.3f}"
    start = time.monotonic()
    result = sandbox.run(f"setsid sleep {tag} & sleep 60", tmp_path, timeout=2)
    assert result.timed_out and time.monotonic() - start < 8
    time.sleep(0.2)
    assert _processes_with(tag) == []
