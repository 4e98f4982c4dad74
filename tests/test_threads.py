"""CPU threads: the default follows the CPUs the process may run on, and OpenMP's idle threads spin
briefly (GOMP_SPINCOUNT) so that they do not take a shared core's time from the work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PROBE = "import minimax2, os; print(os.environ.get('GOMP_SPINCOUNT'))"


def _run(code: str, prefix: list[str] | None = None, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    r = subprocess.run((prefix or []) + [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**clean, **env})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip().splitlines()[-1]


def test_idle_openmp_threads_spin_briefly_unless_the_user_says_otherwise():
    assert _run(PROBE) == "2000"
    assert _run(PROBE, GOMP_SPINCOUNT="5") == "5"
    assert _run(PROBE, OMP_WAIT_POLICY="ACTIVE") == "None"


@pytest.mark.skipif(shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2, reason="needs taskset, 2 CPUs")
def test_default_threads_follow_the_affinity_mask():
    code = "from minimax2.engine.llm import set_threads; import torch; set_threads(); print(torch.get_num_threads())"
    assert _run(code, ["taskset", "-c", "0"]) == "1"
    assert _run(code) == str(len(os.sched_getaffinity(0)))
    assert _run("from minimax2.engine.llm import set_threads; import torch; set_threads(1); print(torch.get_num_threads())") == "1"
