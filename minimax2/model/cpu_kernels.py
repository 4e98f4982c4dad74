"""Native CPU kernels for decode, built once on first use, with PyTorch ops as the fallback.

In a decode step (a few rows per layer) PyTorch's cost is dispatch, not arithmetic: about 60 small
ops per layer. The `csrc/` kernels (one .cpp per family, all bound in csrc/bindings.cpp) do a layer's
work in a few calls on CPUs with AVX512-BF16, -VNNI and -VBMI (Zen 4, Sapphire Rapids and later):

* `gemv_bf16`: bf16 matrix-vector products that read weights at about twice the speed of torch's
  bf16 linear (35 vs 14 GB/s per core measured on Zen 4); `gemv_int8` the same for int8 weights
  (int16-quantised activations, integer products with AVX512-VNNI: csrc/int8_dot.h; int8 ones with
  `gemv_int8_a8`, csrc/int8_a8.h), `gemv_int4` for torch's int4pack layout and `gemv_int6` for the
  6-bit lm_head (csrc/int4_dot.h; int8 activations with `a8=True`) and `gemv_fp8` for the released
  FP8 weights;
* `attention_prep_bf16`: qkv split, QK-norm, partial RoPE and the k / v cache write;
* `decode_attention_bf16`: one query per sequence, reading the paged cache in place;
* `moe_route` + `moe_experts_{bf16,int8,int4,fp8}`: the sigmoid router, then the chosen experts
  grouped by expert (each read once per step) and their weighted sum;
* `rms_norm_bf16` and `add_rms_norm_bf16`: the norms, the latter fused with the residual add before it.

Each rounds where the torch code rounds, so outputs agree with the torch path to bf16 rounding
(tests/test_cpu_kernels.py). The modules bind them once, at load, where their weights suit them (the
forms of linear.py and experts.py, `RMSNorm.bind_kernels` and `Attention.bind_kernels` in
minimax_m2.py); training, float32 and GPUs keep the torch ops, and prefill batches take them per call.

The extension is compiled with the machine's C++ compiler through `torch.utils.cpp_extension`, once
per machine: kernel_build.py keeps one cache entry per sources, flags, compiler and torch, shared by
every checkout and install. A machine without the instructions or a compiler gets the torch ops and
one line saying why. `MINIMAX2_CPU_KERNELS=0` turns the kernels off.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

import torch

from . import kernel_build

log = logging.getLogger(__name__)
CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / f for f in ("bindings.cpp", "gemv_bf16.cpp", "gemv_int8.cpp", "gemv_int4.cpp", "gemv_fp8.cpp",
                              "fp8_dequant.cpp", "moe_route.cpp", "experts_bf16.cpp", "experts_int8.cpp",
                              "experts_int4.cpp", "experts_fp8.cpp", "norms.cpp", "attention_prep.cpp",
                              "decode_attention.cpp")]
FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-mavx512vnni", "-mavx512vbmi", "-fopenmp"]
LDFLAGS = ["-fopenmp"]
MAX_ROWS = 16  # rows of x (sequences in a decode step); 1.04-1.6x torch's bf16 GEMM at 8-16 rows (measured)
_ext = None
_tried = False


def _cpu_has_avx512_bf16() -> bool:
    """AVX512-BF16, -VNNI and -VBMI (Zen 4 and later, Sapphire Rapids and later have all three)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return all(f in flags for f in ("avx512_bf16", "avx512_vnni", "avx512vbmi"))


def load(verbose: bool = True):
    """The compiled extension, or None where it cannot be used here (decided once per process). The first
    use on a machine compiles it (kernel_build.py says so while it runs); every later one, from any
    checkout or install of the same sources, imports the cached build."""
    global _ext, _tried
    if _tried:
        return _ext
    _tried = True
    if os.environ.get("MINIMAX2_CPU_KERNELS", "1") == "0":
        return None
    if not _cpu_has_avx512_bf16():
        log.info("CPU without AVX512-BF16, -VNNI and -VBMI: decode uses torch's ops")
        return None
    _ext = kernel_build.load(SOURCES, FLAGS, LDFLAGS, verbose=verbose)
    return _ext


def build_directory() -> Path:
    """The cache entry of this machine's build (kernel_build.cache_dir: sources, flags, compiler, torch)."""
    return kernel_build.cache_dir(SOURCES, FLAGS, LDFLAGS)


def loaded() -> bool:
    """Whether the native kernels are available in this process (building or loading them once)."""
    return load(verbose=False) is not None


MAX_EXPERT_TOKENS = 16  # an expert's tokens up to which the per-expert torch path takes the matrix-vector kernels
# Tokens of a forward up to which the native expert blocks run: decode batches and prefill chunks up to the
# default chunk (max_num_batched_tokens). One call per layer instead of ~25 torch ops per active expert;
# measured on 4-layer slices of M2's widths with 512 tokens routed evenly, a layer's experts took
# 268 / 307 / 132 ms (fp8 / int8 / int4) instead of 317 / 501 / 296 through the per-expert ops, and a
# 512-token prefill ran 1.5-2x faster (fp8 289-317 tok/s instead of 145-181, int8 232-253 instead of
# 98-166, int4 365-417 instead of 183-207, Zen 5, 2 threads).
MAX_BLOCK_TOKENS = 512


def route(logits: torch.Tensor, bias: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(idx [M, k], weights [M, k] float32) of M2's sigmoid router, for the native expert blocks."""
    return _ext.moe_route(logits, bias, k)
