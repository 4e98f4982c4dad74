"""Native CPU kernels for decode, built once on first use, with PyTorch ops as the fallback.

In a decode step (a few rows per layer) PyTorch's cost is dispatch, not arithmetic: about 60 small
ops per layer. The `csrc/` kernels (one .cpp per family, all bound in csrc/bindings.cpp) do a layer's work in five calls on CPUs with AVX512-BF16, -VNNI
and -VBMI (Zen 4, Sapphire Rapids and later):

* `gemv_bf16`: bf16 matrix-vector products that read weights at about twice the speed of torch's
  bf16 linear (35 vs 14 GB/s per core measured on Zen 4); `gemv_int8` the same for int8 weights
  (int16-quantised activations, integer products with AVX512-VNNI: csrc/int8_dot.h) and
  `gemv_int4` for torch's int4pack layout (csrc/int4_dot.h); the serving forms of linear.py bind them;
* `attention_prep`: qkv split, QK-norm, partial RoPE and the k / v cache write;
* `decode_attention`: one query per sequence, reading the paged cache in place;
* `route` + `moe_experts_{bf16,int8,int4}`: the sigmoid router, then the chosen experts grouped by
  expert (each read once per step) and their weighted sum (bound by the forms of experts.py);
* `rms_norm` and `add_rms_norm`: the norms, the latter fused with the residual add before it.

Each rounds where the torch code rounds, so outputs agree with the torch path to bf16 rounding
(tests/test_cpu_kernels.py). Training, float32, prefill and autograd take the torch ops.

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
                              "moe_route.cpp", "experts_bf16.cpp", "experts_int8.cpp", "experts_int4.cpp",
                              "experts_fp8.cpp", "norms.cpp", "attention_prep.cpp", "decode_attention.cpp")]
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


MAX_EXPERT_TOKENS = 16  # tokens per step up to which the native expert blocks run (decode batches)


def route(logits: torch.Tensor, bias: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(idx [M, k], weights [M, k] float32) of M2's sigmoid router, for the native expert blocks."""
    return _ext.moe_route(logits, bias, k)


def _norm_usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (_ext is not None and x.dtype == torch.bfloat16 and weight.dtype == torch.bfloat16 and x.dim() == 2
            and 1 <= x.shape[0] <= MAX_ROWS and x.device.type == "cpu" and x.is_contiguous()
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor | None:
    """The native RMSNorm for a few bf16 rows, or None where torch's ops must run."""
    return _ext.rms_norm_bf16(x, weight, eps) if _norm_usable(x, weight) else None


def add_rms_norm(h: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(h + delta, RMSNorm(h + delta)) in one native call for a few bf16 rows, or None where torch's ops must run."""
    if _norm_usable(h, weight) and delta.dtype == torch.bfloat16 and delta.shape == h.shape and delta.is_contiguous() \
            and not (torch.is_grad_enabled() and delta.requires_grad):
        return _ext.add_rms_norm_bf16(h, delta, weight, eps)
    return None


def attention_usable(q: torch.Tensor, k_cache: torch.Tensor) -> bool:
    return (_ext is not None and q.dtype == torch.bfloat16 and k_cache.dtype == torch.bfloat16 and q.device.type == "cpu"
            and q.shape[-1] % 32 == 0 and k_cache.is_contiguous() and not torch.is_grad_enabled())


def attention_prep(qkv: torch.Tensor, attn, cos: torch.Tensor, sin: torch.Tensor, meta) -> torch.Tensor | None:
    """Decode batches: q [T, Hq, D] normed and rotated, with k and v already written to the cache (the
    native decode attention then reads them, so both must apply: head_dim a multiple of 32); None where
    the torch ops must run."""
    if (meta.slot_mapping is None or meta.decode_slots is None or attn.k_cache is None or qkv.dtype != torch.bfloat16
            or attn.cfg.head_dim % 32 or not attention_usable(qkv, attn.k_cache)
            or attn.q_norm.weight.dtype != torch.bfloat16):
        return None
    c = attn.cfg
    return _ext.attention_prep_bf16(qkv.contiguous(), attn.q_norm.weight, attn.k_norm.weight, cos, sin,
                                    attn.q_norm.eps, c.num_attention_heads, attn.k_cache, attn.v_cache,
                                    meta.slot_mapping)


def decode_attention(q, k_cache, v_cache, slots, lens, scale: float) -> torch.Tensor:
    """One query per sequence against its cached keys/values, read in place through `slots` [B, N]."""
    return _ext.decode_attention_bf16(q.contiguous(), k_cache, v_cache, slots, lens, scale)
