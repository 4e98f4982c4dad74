"""Native CPU kernels for decode, built once on first use, with PyTorch ops as the fallback.

In a decode step (a few rows per layer) PyTorch's cost is dispatch, not arithmetic: about 60 small
ops per layer. The `csrc/` kernels do a layer's work in five calls on CPUs with AVX512-BF16, -VNNI
and -VBMI (Zen 4, Sapphire Rapids and later):

* `linear`: bf16 matrix-vector products that read weights at about twice the speed of torch's
  bf16 linear (35 vs 14 GB/s per core measured on Zen 4); `linear_int8` the same for int8 weights
  (int16-quantised activations, integer products with AVX512-VNNI: csrc/int8_dot.h) and
  `linear_int4` for torch's int4pack layout (csrc/int4_dot.h);
* `attention_prep`: qkv split, QK-norm, partial RoPE and the k / v cache write;
* `decode_attention`: one query per sequence, reading the paged cache in place;
* `route` + `experts` (bf16) / `packed_experts` (int8, int4): the sigmoid router, then the
  chosen experts grouped by expert (each read once per step) and their weighted sum;
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
import torch.nn.functional as F
from torch import nn

from . import kernel_build

log = logging.getLogger(__name__)
CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / f for f in ("gemv_bf16.cpp", "gemv_int8.cpp", "gemv_int4.cpp", "experts_int8.cpp",
                              "experts_int4.cpp", "attention_prep.cpp", "moe_route.cpp",
                              "decode_attention.cpp", "norms.cpp", "gemv_fp8.cpp", "experts_fp8.cpp")]
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


def usable(x: torch.Tensor, w: torch.Tensor) -> bool:
    return (x.dtype == torch.bfloat16 and w.dtype == torch.bfloat16 and x.device.type == "cpu" and x.dim() == 2
            and 1 <= x.shape[0] <= MAX_ROWS and x.shape[1] % 32 == 0 and w.is_contiguous()
            and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)))


def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w.T for x [M, K] and w [N, K]."""
    if _ext is not None and usable(x, w):
        return _ext.gemv_bf16(x.contiguous(), w)
    return F.linear(x, w)


def linear_int8(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor | None:
    """(x @ w.T) * scale for a few bf16 rows x [M, K] and int8 rows w [N, K], or None where torch's
    `_weight_int8pack_mm` must run (no kernels, too many rows, K not a multiple of 32, autograd)."""
    if (_ext is not None and x.dtype == torch.bfloat16 and x.dim() == 2 and 1 <= x.shape[0] <= MAX_ROWS
            and x.shape[1] % 32 == 0 and x.device.type == "cpu" and w.is_contiguous()
            and not (torch.is_grad_enabled() and x.requires_grad)):
        return _ext.gemv_int8(x.contiguous(), w, scale)
    return None


def linear_int4(x: torch.Tensor, packed: torch.Tensor, group: int, scale_zeros: torch.Tensor) -> torch.Tensor | None:
    """x @ w.T for a few bf16 rows x [M, K] and w in torch's int4pack layout ([N, K / 2], scales and
    zeros [K / group, N, 2]), or None where torch's `_weight_int4pack_mm_for_cpu` must run."""
    if (_ext is not None and x.dtype == torch.bfloat16 and x.dim() == 2 and 1 <= x.shape[0] <= MAX_ROWS
            and packed.shape[0] % 64 == 0 and group % 32 == 0 and x.shape[1] % group == 0 and x.device.type == "cpu"
            and scale_zeros.dtype == torch.bfloat16
            and not (torch.is_grad_enabled() and x.requires_grad)):
        return _ext.gemv_int4(x.contiguous(), packed, group, scale_zeros)
    return None


MAX_EXPERT_TOKENS = 16  # tokens per step up to which the native expert block runs (decode batches)


def experts_usable(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> bool:
    """A decode-sized bf16 batch against bf16 expert stacks w13 [E, 2I, H], w2 [E, H, I] (`SparseMoE`'s layout)."""
    return (_ext is not None and 1 <= x.shape[0] <= MAX_EXPERT_TOKENS and x.dtype == torch.bfloat16
            and x.device.type == "cpu" and x.shape[1] % 32 == 0 and w13.dtype == torch.bfloat16
            and w2.dtype == torch.bfloat16 and w13.is_contiguous() and w2.is_contiguous() and w2.shape[-1] % 32 == 0
            and not (torch.is_grad_enabled() and (x.requires_grad or w13.requires_grad or w2.requires_grad)))


def experts(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, idx: torch.Tensor,
            weights: torch.Tensor) -> torch.Tensor:
    """[M, H]: each token of x [M, H] through its experts idx [M, k] (SwiGLU), summed with `weights`
    [M, k] float32, grouped by expert so a chosen expert's weights are read once per step. Check
    `experts_usable` first."""
    return _ext.moe_experts_bf16(x.contiguous(), w13, w2, idx, weights)


def packed_experts_usable(x: torch.Tensor, packed) -> bool:
    """A decode-sized bf16 batch against quantised experts stacked by quant.py: ("int8", w13, s13, w2, s2)
    or ("int4", p13, sz13, p2, sz2, group_size)."""
    return (_ext is not None and packed is not None and 1 <= x.shape[0] <= MAX_EXPERT_TOKENS
            and x.dtype == torch.bfloat16 and x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad)
            and (packed[1].shape[-1] % 32 == 0 and packed[3].shape[-1] % 32 == 0 if packed[0] == "int8"
                 else packed[1].shape[1] % 64 == 0 and packed[3].shape[1] % 64 == 0 and packed[5] % 32 == 0
                 and packed[2].dtype == torch.bfloat16))


def packed_experts(x: torch.Tensor, packed, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The quantised twins of `experts`. int8: integer products of int8 weights and int16-quantised
    activations (csrc/int8_dot.h); int4: the same with torch's int4pack layout read in place (csrc/int4_dot.h)."""
    method, *tensors = packed
    fn = _ext.moe_experts_int8 if method == "int8" else _ext.moe_experts_int4
    return fn(x.contiguous(), *tensors, idx, weights)


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


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, same state-dict names) whose product goes through `linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight) if self.bias is None else F.linear(x, self.weight, self.bias)
