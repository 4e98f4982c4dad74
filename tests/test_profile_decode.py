"""benchmarks/profile_decode.py runs end to end: real steps, replayed steps (the replay must meet the
same kernel calls in the same order, or it runs out of kept results) and the profiler's kernel table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from minimax2.model import cpu_kernels

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "profile_decode.py"


def test_profile_decode_script(tiny_ckpt):
    out = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tiny_ckpt), "--precision", "int8", "--batch", "2",
                          "--prompt", "8", "--steps", "4", "--runs", "1", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "decode step:" in text and "every kernel replayed" in text and "the rest: Python" in text
    if cpu_kernels.load(verbose=False) is not None:
        assert "kernel gemv_int8" in text and "kernel moe_experts_int8" in text
