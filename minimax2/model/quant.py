"""Weight-only int8 / int4 quantisation with PyTorch's CPU kernels.

* int8: symmetric, one scale per output channel, `aten._weight_int8pack_mm`; decode-sized batches
  run the native int8 kernels of cpu_kernels (int16-quantised activations, exact integer products).
* int4: asymmetric, one (scale, zero) pair per group of `group_size` input channels,
  `aten._weight_int4pack_mm_for_cpu`; decode-sized batches read the same packed weights with the
  native int4 kernels.

Applied to the attention projections (fused qkv, o) and to every expert's gate/up and down
matrices; lm_head becomes int8 under both methods (as llama.cpp keeps its output matrix at 6-8 bits
in Q4 files): at batch 1 it is a vocab x hidden read every step, a third of an int4 step's bytes in
bf16. The router, the routing bias, norms and embeddings stay in float, as in M2's own FP8 release.
Activations stay in the model dtype; only weights are compressed, which is what decode
(bandwidth-bound) needs.
"""

from __future__ import annotations

import torch
from torch import nn

from . import cpu_kernels
from .minimax_m2 import MiniMaxM2

METHODS = ("int8", "int4")


def int8_rows(weight: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output row: (q int8, scale in `dtype`), weight ~= q * scale[:, None]."""
    w = weight.float()
    scale = (w.abs().amax(dim=-1) / 127).clamp(min=1e-12).to(dtype)  # round first: q uses the stored scale
    return (w / scale.float()[..., None]).round().clamp(-128, 127).to(torch.int8), scale


class Int8Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, dtype: torch.dtype, quantized: tuple | None = None):
        super().__init__()
        q, scale = quantized if quantized is not None else int8_rows(weight, dtype)
        self.register_buffer("weight", q)
        self.register_buffer("scale", scale)
        self.out_features = q.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = cpu_kernels.linear_int8(x, self.weight, self.scale)  # decode rows [M, K]: no reshapes
        if y is not None:
            return y
        x2 = x.reshape(-1, x.shape[-1])
        return torch.ops.aten._weight_int8pack_mm(x2, self.weight, self.scale).view(*x.shape[:-1], self.out_features)


class Int4Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, dtype: torch.dtype, group_size: int, name: str = "weight",
                 quantized: tuple | None = None):
        super().__init__()
        if quantized is not None:  # (packed, scale_zeros) already made, e.g. views into a layer's stack
            self.register_buffer("packed", quantized[0])
            self.register_buffer("scale_zeros", quantized[1])
            self.group_size, self.out_features = group_size, quantized[1].shape[1]
            return
        n, k = weight.shape
        if k % group_size:
            raise ValueError(f"int4 group size {group_size} does not divide the {k} input features of {name}; "
                             f"use --quantization int8 or a group size that divides {k}")
        w = weight.float().view(n, k // group_size, group_size)
        lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp(min=1e-12)
        q = ((w - lo) / scale).round().clamp(0, 15).to(torch.int32).view(n, k)
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
        # the kernel computes (q - 8) * scale + zero, so zero = lo + 8 * scale; layout [groups, n, 2]
        sz = torch.cat([scale, lo + 8 * scale], dim=-1).transpose(0, 1).contiguous()
        self.register_buffer("scale_zeros", sz.to(dtype))
        self.group_size, self.out_features = group_size, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = cpu_kernels.linear_int4(x, self.packed, self.group_size, self.scale_zeros)  # decode rows [M, K]
        if y is not None:
            return y
        x2 = x.reshape(-1, x.shape[-1])
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2, self.packed, self.group_size, self.scale_zeros)
        return y.view(*x.shape[:-1], self.out_features)


def _quantize(weight: torch.Tensor, method: str, dtype: torch.dtype, group_size: int, name: str) -> nn.Module:
    if method == "int8":
        return Int8Linear(weight, dtype)
    return Int4Linear(weight, dtype, group_size, name)


def _stack_experts(moe, method: str, dtype: torch.dtype, group_size: int, layer: int) -> tuple:
    """("int8", w13 [E, 2I, H], s13 [E, 2I], w2 [E, H, I], s2 [E, H]) or ("int4", packed13, scale_zeros13,
    packed2, scale_zeros2, group_size), quantised one expert at a time."""
    out: list = [method]
    for name, w in (("w13", moe.w13), ("w2", moe.w2)):
        parts = [_quantize(w[e], method, dtype, group_size, f"layers.{layer}.experts.{e}.{name}") for e in range(len(w))]
        for attr in (("weight", "scale") if method == "int8" else ("packed", "scale_zeros")):
            out.append(torch.stack([getattr(q, attr) for q in parts]))
        del parts
    return tuple(out) + ((group_size,) if method == "int4" else ())


def quantize_model(model: MiniMaxM2, method: str, group_size: int = 128) -> MiniMaxM2:
    """Replace attention projections and experts by weight-only quantised versions, layer by layer
    (the float weights of a layer are released as soon as it is done)."""
    if method not in METHODS:
        raise ValueError(f"unknown quantization {method!r}; choose one of {', '.join(METHODS)}")
    if model.device.type != "cpu":
        raise ValueError("int8/int4 weight-only kernels are CPU kernels; use bf16 on CUDA")
    if method == "int4" and group_size not in (32, 64, 128, 256):
        raise ValueError(f"int4 group size must be 32, 64, 128 or 256, got {group_size}")
    dtype = model.dtype
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            a = layer.attn
            a.qkv_proj = _quantize(a.qkv_proj.weight, method, dtype, group_size, f"layers.{i}.qkv_proj")
            a.o_proj = _quantize(a.o_proj.weight, method, dtype, group_size, f"layers.{i}.o_proj")
            moe = layer.moe
            # experts stacked per layer (the native decode block reads them in place); the per-expert
            # modules the torch path calls are views into the stacks
            moe.packed_experts = _stack_experts(moe, method, dtype, group_size, i)
            _, w13, s13, w2, s2, *_ = moe.packed_experts
            make = ((lambda q, s: Int8Linear(None, dtype, (q, s))) if method == "int8" else
                    (lambda q, s: Int4Linear(None, dtype, group_size, quantized=(q, s))))
            moe.q13 = nn.ModuleList(make(w13[e], s13[e]) for e in range(len(w13)))
            moe.q2 = nn.ModuleList(make(w2[e], s2[e]) for e in range(len(w2)))
            del moe.w13, moe.w2
            moe.w13 = moe.w2 = None
        model.lm_head = Int8Linear(model.lm_head.weight, dtype)
    model.quantization = method
    return model
