"""Serving forms: which module type holds each attention projection and expert stack, chosen once at load
from the requested quantization, the model dtype and the device, and the builders that fill them.

Forms: "float" (the model dtype: bf16 with the native kernels on a CPU that has them, torch's ops
otherwise; a bf16 checkpoint in bf16 is mapped as it is, zero_copy.py), "fp8" (the official FP8
weights and block scales read in place on a CPU, zero_copy.py; copied as they are to a Hopper GPU,
fp8_cuda.py), "int8" and "int4" (weight-only, CPU).
Under int8 and int4 lm_head is int8 (as llama.cpp keeps its output matrix at 6-8 bits in Q4 files), under
fp8 and float the model dtype, unless `lm_head` asks otherwise (`--lm-head int8` halves the largest
matrix a batch-1 step reads; `--lm-head int6`, 6.5 bits a weight, is the size of llama.cpp's Q6_K
output matrix in its Q4 files); the router, the routing bias, norms and embeddings stay in the model
dtype, as in M2's own FP8 release.

A builder takes float weights one tensor (or one expert) at a time and writes them into the final
buffers of its form, so no float copy of a quantised model ever exists.
"""

from __future__ import annotations

import torch
from torch import nn

from . import cpu_kernels, fp8_cuda
from .experts import Bf16Experts, Int4Experts, Int8Experts, TorchExperts
from .linear import (INT6_GROUP, Bf16Linear, Int4Linear, Int6Linear, Int8Linear, Linear, check_int6, int4_groups,
                     int6_groups, int8_rows)

QUANTIZATIONS = ("int8", "int4")
FORMS = ("float", "fp8") + QUANTIZATIONS
INT4_GROUPS = (32, 64, 128, 256)


def check_form(form: str, device: torch.device | str, group_size: int, lm_head: str | None = None,
               cfg=None, int8_activations: bool = False) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown quantization {form!r}; choose bf16, {', '.join(FORMS[1:])}, or None for the "
                         f"checkpoint's own form")
    if lm_head in ("int8", "int6") and torch.device(device).type != "cpu":
        raise ValueError(f"an {lm_head} lm_head uses the CPU kernels; leave lm_head unset on CUDA")
    cpu = torch.device(device).type == "cpu"
    if lm_head == "int6" and cpu and not cpu_kernels.loaded():  # refused before the head is quantised
        raise ValueError("a 6-bit lm_head runs on the native CPU kernels, which are unavailable here; use --lm-head int8")
    if int8_activations and (not cpu or (form not in QUANTIZATIONS and lm_head_form(form, lm_head) == "float")):
        raise ValueError(f"--int8-activations applies to int8, int4 and 6-bit weights on a CPU (--quantization int8 "
                         f"or int4, or --lm-head int8 or int6); this load has none ({form} on {torch.device(device).type})")
    if form == "fp8" and torch.device(device).type != "cpu":
        why = fp8_cuda.unsupported(device, cfg)
        if why is not None:
            raise ValueError(f"--quantization fp8 cannot serve on {device}: {why}; load without it (the FP8 "
                             f"weights are then dequantized to the model dtype)")
    elif form != "float" and torch.device(device).type != "cpu":
        raise ValueError(f"the {form} kernels are CPU kernels; use bf16 on CUDA (or fp8 for an FP8 checkpoint "
                         f"on a Hopper GPU)")
    if form == "int4" and group_size not in INT4_GROUPS:
        raise ValueError(f"int4 group size must be 32, 64, 128 or 256, got {group_size}")


def default_form(fp8_checkpoint: bool, dtype: torch.dtype, device: torch.device | str, cfg=None) -> str:
    """The form when no quantization is asked for: FP8 checkpoints are served as released ("fp8") in bf16 on
    a CPU with the native kernels (without them every decode step would dequantize tiles) and in bf16 on
    a GPU with the block-scaled FP8 matmul (fp8_cuda.py); everything else keeps its weights in the model dtype
    ("float"), FP8 dequantized at load."""
    if fp8_checkpoint and torch.device(device).type == "cuda":
        return "fp8" if dtype == torch.bfloat16 and fp8_cuda.unsupported(device, cfg) is None else "float"
    return "fp8" if fp8_checkpoint and native_bf16(dtype, device) else "float"


def native_bf16(dtype: torch.dtype, device: torch.device | str) -> bool:
    return dtype == torch.bfloat16 and torch.device(device).type == "cpu" and cpu_kernels.loaded()


CHUNK_ROWS = 8192  # rows quantised at a time: lm_head (200,064 x 3,072) never exists in float32 whole


def quantize_rows(form: str, n: int, k: int, rows, dtype: torch.dtype, group_size: int,
                  name: str = "weight") -> tuple[torch.Tensor, torch.Tensor]:
    """int8 (q, scale) or int4 (packed, scale_zeros) of an [n, k] weight read `CHUNK_ROWS` rows at a time
    through `rows(start, stop)` (a multiple of 64, so int4pack rows pack independently)."""
    if form == "int4" and k % group_size:
        raise ValueError(f"int4 group size {group_size} does not divide the {k} input features of {name}; "
                         f"use --quantization int8 or a group size that divides {k}")
    if n <= CHUNK_ROWS:
        return int8_rows(rows(0, n), dtype) if form == "int8" else int4_groups(rows(0, n), dtype, group_size, name)
    if form == "int8":
        q, s = torch.empty(n, k, dtype=torch.int8), torch.empty(n, dtype=dtype)
    else:
        q, s = torch.empty(n, k // 2, dtype=torch.uint8), torch.empty(k // group_size, n, 2, dtype=dtype)
    for a in range(0, n, CHUNK_ROWS):
        b = min(a + CHUNK_ROWS, n)
        if form == "int8":
            q[a:b], s[a:b] = int8_rows(rows(a, b), dtype)
        else:
            q[a:b], s[:, a:b] = int4_groups(rows(a, b), dtype, group_size, name)
    return q, s


def int6_rows(n: int, k: int, rows, dtype: torch.dtype, name: str = "weight") -> tuple[torch.Tensor, ...]:
    """`linear.int6_groups` of an [n, k] weight read `CHUNK_ROWS` rows at a time through `rows(start, stop)`."""
    check_int6(n, k, name)
    if n <= CHUNK_ROWS:
        return int6_groups(rows(0, n), dtype, name=name)
    packed, top = torch.empty(n, k // 2, dtype=torch.uint8), torch.empty(n, k // 4, dtype=torch.uint8)
    sz = torch.empty(n // 64, k // INT6_GROUP, 64, 2, dtype=dtype)
    for a in range(0, n, CHUNK_ROWS):
        b = min(a + CHUNK_ROWS, n)
        packed[a:b], top[a:b], sz[a // 64:-(-b // 64)] = int6_groups(rows(a, b), dtype, name=name)
    return packed, top, sz


def make_linear(weight: torch.Tensor | None, form: str, dtype: torch.dtype, group_size: int = 128,
                name: str = "weight", rows=None, shape: tuple[int, int] | None = None) -> nn.Module:
    """The serving form of one projection from its float weight [N, K] (any float dtype, any device), or
    for the quantised forms from `rows(start, stop)` of a weight of `shape`, read a chunk at a time."""
    if form == "int6":
        n, k = shape or weight.shape
        return Int6Linear(None, dtype, quantized=int6_rows(n, k, rows or (lambda a, b: weight[a:b]), dtype, name))
    if form in QUANTIZATIONS:
        n, k = shape or weight.shape
        qs = quantize_rows(form, n, k, rows or (lambda a, b: weight[a:b]), dtype, group_size, name)
        return quantized_linear(form, *qs, dtype, group_size)
    w = (weight if weight is not None else rows(0, shape[0])).detach().to(dtype)
    if native_bf16(dtype, w.device) and w.shape[1] % 32 == 0:
        return Bf16Linear(w.contiguous())
    lin = Linear(w.shape[1], w.shape[0], bias=False, device="meta")
    lin.weight = nn.Parameter(w, requires_grad=False)
    return lin


class ExpertsBuilder:
    """The final buffers of one layer's expert stack in `form`, filled one expert at a time by `put`."""

    def __init__(self, form: str, num_experts: int, hidden: int, inter: int, dtype: torch.dtype,
                 device: torch.device | str = "cpu", group_size: int = 128):
        self.form, self.dtype, self.group_size = form, dtype, group_size
        e, h, i = num_experts, hidden, inter
        if form == "float":
            self.bufs = [torch.empty(e, 2 * i, h, dtype=dtype, device=device),
                         torch.empty(e, h, i, dtype=dtype, device=device)]
        elif form == "int8":
            self.bufs = [torch.empty(e, 2 * i, h, dtype=torch.int8), torch.empty(e, 2 * i, dtype=dtype),
                         torch.empty(e, h, i, dtype=torch.int8), torch.empty(e, h, dtype=dtype)]
        else:
            for k, what in ((h, "hidden size"), (i, "expert width")):
                if k % group_size:
                    raise ValueError(f"int4 group size {group_size} does not divide the {what} {k}; "
                                     f"use --quantization int8 or a group size that divides {k}")
            self.bufs = [torch.empty(e, 2 * i, h // 2, dtype=torch.uint8),
                         torch.empty(e, h // group_size, 2 * i, 2, dtype=dtype),
                         torch.empty(e, h, i // 2, dtype=torch.uint8),
                         torch.empty(e, i // group_size, h, 2, dtype=dtype)]

    def put(self, e: int, w13: torch.Tensor, w2: torch.Tensor) -> None:
        """Expert e's fused gate/up [2I, H] and down [H, I] weights, in any float dtype."""
        if self.form == "float":
            self.bufs[0][e].copy_(w13)
            self.bufs[1][e].copy_(w2)
            return
        for k, w in enumerate((w13, w2)):
            if self.form == "int8":
                q, s = int8_rows(w, self.dtype)
            else:
                q, s = int4_groups(w, self.dtype, self.group_size)
            self.bufs[2 * k][e].copy_(q)
            self.bufs[2 * k + 1][e].copy_(s)

    def module(self) -> nn.Module:
        return experts_module(self.form, self.bufs, self.dtype, self.group_size)


def experts_module(form: str, b: list[torch.Tensor], dtype: torch.dtype, group_size: int = 128) -> nn.Module:
    """The expert-stack module of `form` over its final buffers (filled here, or views of a file)."""
    if form == "float":
        h, i = b[1].shape[1], b[1].shape[2]
        if native_bf16(dtype, b[0].device) and h % 32 == 0 and i % 32 == 0:
            return Bf16Experts.from_stacks(*b)
        mod = TorchExperts(b[0].shape[0], h, i).to("meta")
        mod.w13, mod.w2 = (nn.Parameter(t, requires_grad=False) for t in b)
        return mod
    native = cpu_kernels.loaded() and dtype == torch.bfloat16
    if form == "int8":
        return Int8Experts(*b, native=native and b[0].shape[-1] % 32 == 0 and b[2].shape[-1] % 32 == 0)
    return Int4Experts(*b, group_size, native=native and b[0].shape[1] % 64 == 0 and b[2].shape[1] % 64 == 0
                       and group_size % 32 == 0)


def quantized_linear(form: str, q: torch.Tensor, s: torch.Tensor, dtype: torch.dtype, group_size: int) -> nn.Module:
    """The int8 / int4 linear over already quantised tensors (int8: weight, scale; int4: packed, scale_zeros)."""
    return Int8Linear(None, dtype, (q, s)) if form == "int8" else Int4Linear(None, dtype, group_size, quantized=(q, s))


LM_HEADS = ("bf16", "int8", "int6")


def lm_head_form(form: str, lm_head: str | None = None) -> str:
    """lm_head's form: `lm_head` when given ("int8", "int6", or "bf16" for the model dtype), else int8 under
    int8 and int4 and the model dtype under fp8 (the release keeps lm_head in bf16) and float."""
    if lm_head is None:
        return "int8" if form in QUANTIZATIONS else "float"
    if lm_head not in LM_HEADS:
        raise ValueError(f"unknown lm_head form {lm_head!r}; choose bf16, int8 or int6")
    return "float" if lm_head == "bf16" else lm_head
