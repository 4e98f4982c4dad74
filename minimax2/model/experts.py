"""The serving forms of a layer's expert stack, one module type each (chosen once at load, `forms.py`).

Every form is called as `experts(x, idx, weights)` with the router's choice (idx [T, k], weights [T, k]
float32) and returns the weighted sum of the chosen SwiGLU experts, [T, H] in x's dtype. A form with
a native expert block also has `block(x, idx, weights)` for decode batches and prefill chunks (at
most `cpu_kernels.MAX_BLOCK_TOKENS` tokens), which `SparseMoE` routes natively and calls directly.

* `TorchExperts`: float w13 [E, 2I, H] (rows [0, I) = w1 gate, [I, 2I) = w3 up) and w2 [E, H, I]
  parameters; the training form and the fallback. Tokens are grouped by expert and only experts that
  received tokens run; on a GPU, small batches run their chosen experts as two batched products.
* `Bf16Experts`: bf16 w1 / w3 / w2 per expert (views of a mapped checkpoint, or of stacks) with the
  native bf16 expert block, through pointer tables.
* `Int8Experts` / `Int4Experts`: quantised stacks (per-row int8; int4 groups in torch's int4pack
  layout) with their native blocks; prefill runs each active expert through torch's packed ops.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels
from .linear import int8_activations_on

MAX_EXPERT_TOKENS = cpu_kernels.MAX_EXPERT_TOKENS


def grouped(x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor, num_experts: int,
            expert: Callable[[int, torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted sum [T, H], tokens per expert [E]): tokens grouped by expert, each active expert run once."""
    if x.shape[0] == 1:  # one token (batch-1 decode): no grouping needed
        ys = torch.cat([expert(e, x) for e in idx[0].tolist()])
        return (weights[0, :, None] * ys).sum(0, keepdim=True).to(x.dtype), None
    top_k = idx.shape[1]
    flat = idx.flatten()
    order = flat.argsort(stable=True)
    token = order // top_k
    counts = torch.bincount(flat, minlength=num_experts)
    ends, sizes = counts.cumsum(0).tolist(), counts.tolist()
    xs = x.index_select(0, token)
    ys = torch.empty_like(xs)
    for e in counts.nonzero().flatten().tolist():
        ys[ends[e] - sizes[e]:ends[e]] = expert(e, xs[ends[e] - sizes[e]:ends[e]])
    ys = (ys * weights.flatten()[order, None]).to(x.dtype)
    return torch.zeros_like(x).index_add_(0, token, ys), counts


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def combine_pairs(ys: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The outputs [T*k, H] of each (token, choice) pair -> their router-weighted sum per token, [T, H]."""
    t, k = weights.shape
    return (weights[:, :, None] * ys.view(t, k, ys.shape[-1])).sum(1).to(dtype)


def through_pairs(x: torch.Tensor, weights: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Each (token, choice) pair through its own copy of its expert's weights, w13 [T*k, 2I, H] and
    w2 [T*k, H, I], in two batched products: no host sync (GPU decode)."""
    xs = x.repeat_interleave(weights.shape[1], dim=0)[:, :, None]  # [T*k, H, 1]
    h = swiglu(torch.bmm(w13, xs).squeeze(-1))
    return combine_pairs(torch.bmm(w2, h[:, :, None]).squeeze(-1), weights, x.dtype)


class TorchExperts(nn.Module):
    block = None  # no native expert block

    def __init__(self, num_experts: int, hidden: int, inter: int):
        super().__init__()
        self.num_experts = num_experts
        self.w13 = nn.Parameter(torch.empty(num_experts, 2 * inter, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, inter))
        self.load: torch.Tensor | None = None  # tokens per expert in the last training forward

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        return F.linear(swiglu(F.linear(x, self.w13[e])), self.w2[e])

    def expert_weights(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Expert e's fused gate/up [2I, H] and down [H, I] weights."""
        return self.w13[e], self.w2[e]

    def _gathered(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Each (token, choice) pair through its expert in two batched products over the chosen experts'
        weights. The grouped loop asks the host which experts are active, a device sync per layer that
        dominates a GPU decode step. This gathers a copy of the expert's weights for every pair (about
        three times the bytes the loop reads), so it serves only batches of at most num_experts pairs."""
        flat = idx.flatten()
        return through_pairs(x, weights, self.w13[flat], self.w2[flat])

    def forward(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" and not self.training and idx.numel() <= self.num_experts:
            return self._gathered(x, idx, weights)  # GPU decode: no host sync
        out, counts = grouped(x, idx, weights, self.num_experts, self._expert)
        if self.training:  # read by the trainer's auxiliary-loss-free bias balancing
            self.load = counts if counts is not None else torch.bincount(idx.flatten(), minlength=self.num_experts)
        return out


class Bf16Experts(nn.Module):
    """bf16 experts on a CPU with the native kernels: per expert w1 / w3 [I, H] and w2 [H, I], separate
    tensors (views of a mapped bf16 checkpoint, or rows of stacks built in memory: `from_stacks`) that
    the native block reads through pointer tables built once here."""

    def __init__(self, w1, w3, w2):
        super().__init__()
        self.num_experts = len(w1)
        self.intermediate, self.hidden = w1[0].shape
        i, h = self.intermediate, self.hidden
        for name, ws, shape in (("w1", w1, (i, h)), ("w3", w3, (i, h)), ("w2", w2, (h, i))):
            if len(ws) != self.num_experts or any(tuple(w.shape) != shape or w.dtype != torch.bfloat16
                                                  or not w.is_contiguous() or w.device.type != "cpu" for w in ws):
                raise ValueError(f"{name}: expected {self.num_experts} contiguous bf16 CPU {shape} tensors")
        self.parts = tuple(tuple(ws) for ws in (w1, w3, w2))  # not buffers: possibly views of the file
        self.tables = tuple(torch.tensor([w.data_ptr() for w in ws], dtype=torch.int64) for ws in self.parts)
        self._kernel = cpu_kernels.load().moe_experts_bf16

    @classmethod
    def from_stacks(cls, w13: torch.Tensor, w2: torch.Tensor) -> "Bf16Experts":
        """Over stacks w13 [E, 2I, H] (gate rows, then up rows) and w2 [E, H, I]; keeps them alive."""
        i = w2.shape[2]
        mod = cls([w[:i] for w in w13], [w[i:] for w in w13], list(w2))
        mod.stacks = (w13, w2)
        return mod

    def expert_weights(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Expert e's fused gate/up [2I, H] and down [H, I] weights (a copy of the first)."""
        return torch.cat([self.parts[0][e], self.parts[1][e]]), self.parts[2][e]

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        w1, w3, w2 = (ws[e] for ws in self.parts)
        return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)

    def block(self, x, idx, weights):
        return self._kernel(x.contiguous(), idx, weights, *self.tables, self.intermediate, self.hidden)

    def forward(self, x, idx, weights):
        return grouped(x, idx, weights, self.num_experts, self._expert)[0]


class Int8Experts(nn.Module):
    """int8 stacks: w13 [E, 2I, H] int8 with s13 [E, 2I], w2 [E, H, I] with s2 [E, H]."""

    def __init__(self, w13, s13, w2, s2, native: bool):
        super().__init__()
        self.num_experts = w13.shape[0]
        for name, t in (("w13", w13), ("s13", s13), ("w2", w2), ("s2", s2)):
            self.register_buffer(name, t)
        self.block = self._run_block if native else None
        self._mm = torch.ops.aten._weight_int8pack_mm
        ext = cpu_kernels.load() if native else None
        a8 = int8_activations_on(w13.shape[2]) and int8_activations_on(w2.shape[2])  # H and I
        self._gemv, self._kernel = (None, None) if not native else \
            (ext.gemv_int8_a8, ext.moe_experts_int8_a8) if a8 else (ext.gemv_int8, ext.moe_experts_int8)

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        mm = self._gemv if self._gemv is not None and x.shape[0] <= MAX_EXPERT_TOKENS else self._mm
        return mm(swiglu(mm(x, self.w13[e], self.s13[e])), self.w2[e], self.s2[e])

    def _run_block(self, x, idx, weights):
        return self._kernel(x, self.w13, self.s13, self.w2, self.s2, idx, weights)

    def forward(self, x, idx, weights):
        return grouped(x, idx, weights, self.num_experts, self._expert)[0]


class Int4Experts(nn.Module):
    """int4 stacks in torch's int4pack layout: p13 [E, 2I, H/2] with sz13 [E, H/g, 2I, 2], p2, sz2."""

    def __init__(self, p13, sz13, p2, sz2, group_size: int, native: bool):
        super().__init__()
        self.num_experts, self.group_size = p13.shape[0], group_size
        for name, t in (("p13", p13), ("sz13", sz13), ("p2", p2), ("sz2", sz2)):
            self.register_buffer(name, t)
        self.block = self._run_block if native else None
        self._mm = torch.ops.aten._weight_int4pack_mm_for_cpu
        ext = cpu_kernels.load() if native else None
        self._gemv, self._kernel = (ext.gemv_int4, ext.moe_experts_int4) if native else (None, None)
        self.a8 = int8_activations_on()  # per group: any width will do

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        g = self.group_size
        if self._gemv is not None and x.shape[0] <= MAX_EXPERT_TOKENS:
            h = swiglu(self._gemv(x, self.p13[e], g, self.sz13[e], self.a8))
            return self._gemv(h, self.p2[e], g, self.sz2[e], self.a8)
        return self._mm(swiglu(self._mm(x, self.p13[e], g, self.sz13[e])), self.p2[e], g, self.sz2[e])

    def _run_block(self, x, idx, weights):
        return self._kernel(x, self.p13, self.sz13, self.p2, self.sz2, self.group_size, idx, weights, self.a8)

    def forward(self, x, idx, weights):
        return grouped(x, idx, weights, self.num_experts, self._expert)[0]


class Fp8Experts(nn.Module):
    """The official FP8 experts as released: per expert w1 / w3 [I, H] and w2 [H, I] float8_e4m3fn with
    their block scales, views of the mapped checkpoint; in a bf16 model the native block reads them
    through pointer tables built once here. Prefill runs each active expert through the native FP8
    matrix-vector kernel where it has at most `fp8_kernels.KERNEL_ROWS` tokens, the tiled
    dequantize-and-GEMM otherwise."""

    def __init__(self, w1, w3, w2, s1, s3, s2, dtype: torch.dtype):
        super().__init__()
        from . import fp8_kernels

        self.num_experts = len(w1)
        self.tables = fp8_kernels.Fp8ExpertTables(w1, w3, w2, s1, s3, s2)  # keeps the views alive
        native = dtype == torch.bfloat16 and fp8_kernels.kernels() is not None
        self.block = self._run_block if native and self.tables.intermediate % 16 == 0 else None
        self._kernel, self._prefill = fp8_kernels.moe_experts_fp8, fp8_kernels.fp8_linear_prefill
        self._gemv = fp8_kernels.gemv_fp8 if native else None
        self._kernel_rows = fp8_kernels.KERNEL_ROWS  # an expert's tokens in a prefill chunk

    def _run_block(self, x, idx, weights):
        return self._kernel(x, idx, weights, self.tables)

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        w1, w3, w2, s1, s3, s2 = (t[e] for t in self.tables.tensors)
        mm = self._gemv if self._gemv is not None and x.shape[0] <= self._kernel_rows else self._prefill
        h = F.silu(mm(x, w1, s1)) * mm(x, w3, s3)
        return mm(h, w2, s2)

    def forward(self, x, idx, weights):
        return grouped(x, idx, weights, self.num_experts, self._expert)[0]
