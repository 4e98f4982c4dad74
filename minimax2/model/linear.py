"""The serving forms of a linear layer (attention projections, the router, lm_head), one module type each.

The form is chosen once, at load (`forms.py`), from the checkpoint, the requested quantization and
the device; each module's forward is the kernel of its form, bound at construction. The only choice
left per call is the batch kind: decode rows (at most `MAX_ROWS`) take the native matrix-vector
kernel, larger batches (prefill) torch's GEMM.

* `Linear`: float weights through torch's ops (training, float32, GPUs, CPUs without the kernels);
* `Bf16Linear`: bf16 weights, the native bf16 matrix-vector kernel for decode rows;
* `Int8Linear`: symmetric int8 per output row, `int8_mm` (bf16 GEMM on converted tiles) / native int8 kernel (decode
  activations quantised to int16 per 128 columns, or to int8 when built under `int8_activations(True)`);
* `Int4Linear`: asymmetric int4 in groups of the input, torch's int4pack layout / native int4 kernel
  (decode activations quantised to int16 per group, or to int8 under `int8_activations(True)`);
* `Int6Linear`: asymmetric 6-bit in groups of 64 inputs (a 6-bit lm_head, `--lm-head int6`: 6.5 bits a
  weight, Q6_K's size), the int4 layout plus a plane of top bits / the native kernel for every batch.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels

MAX_ROWS = cpu_kernels.MAX_ROWS


class Linear(nn.Linear):
    """`nn.Linear` without bias and with the state-dict names of the model: the float / training form."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Bf16Linear(nn.Module):
    """bf16 weights on a CPU with the native kernels (the caller checked `cpu_kernels.loaded()`). A fused
    projection mapped from a checkpoint (q/k/v) keeps its parts separate (`parts`, views of the file)
    instead of a concatenated copy; otherwise the one weight is a buffer."""

    def __init__(self, weight: torch.Tensor | None = None, parts: list[torch.Tensor] | None = None):
        super().__init__()
        if parts is None:
            self.register_buffer("weight", weight.detach().contiguous())
        self.parts = None if parts is None else tuple(parts)  # not buffers: views of the file
        self.gemv = cpu_kernels.load().gemv_bf16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = self.gemv if 0 < x.shape[0] <= MAX_ROWS else F.linear
        if self.parts is None:
            return fn(x, self.weight)
        ys = [fn(x, w) for w in self.parts]
        return ys[0] if len(ys) == 1 else torch.cat(ys, dim=-1)


_INT8_ACTIVATIONS: ContextVar[bool] = ContextVar("int8_activations", default=False)


@contextmanager
def int8_activations(enabled: bool):
    """The int8, int4 and 6-bit modules (Int8Linear, Int4Linear, Int6Linear, Int8Experts, Int4Experts) built
    inside this block quantise their decode activations to int8 (int8: per 128 columns, the native
    `gemv_int8_a8` and `moe_experts_int8_a8`; int4 and 6-bit: per weight group, `gemv_int4(..., a8=True)`
    and its peers), llama.cpp's arithmetic for Q8_0 and Q4_0, instead of int16 when `enabled`: each
    activation off by up to 1/254 of its block's largest value, against 1/65534. `vpdpbusd` then takes 64
    products an instruction against 32 (int8 weights: about 1.35x faster at 8 rows of x). Prefill keeps
    torch's ops."""
    token = _INT8_ACTIVATIONS.set(enabled)
    try:
        yield
    finally:
        _INT8_ACTIVATIONS.reset(token)


def int8_activations_on(k: int = 128) -> bool:
    """Whether a product built now takes int8 activations: an int8 one over `k` inputs needs k % 128 == 0
    (int4 and 6-bit ones quantise per weight group, so any k of theirs will do)."""
    return _INT8_ACTIVATIONS.get() and k % 128 == 0


def int8_rows(weight: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output row: (q int8, scale in `dtype`), weight ~= q * scale[:, None]."""
    w = weight.float()
    scale = (w.abs().amax(dim=-1) / 127).clamp(min=1e-12).to(dtype)  # round first: q uses the stored scale
    return (w / scale.float()[..., None]).round().clamp(-128, 127).to(torch.int8), scale


def int4_groups(weight: torch.Tensor, dtype: torch.dtype, group_size: int,
                name: str = "weight") -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric int4 in groups of `group_size` inputs: (packed [N, K/2] in torch's int4pack layout,
    scale_zeros [K/group, N, 2] in `dtype`); the kernels compute (q - 8) * scale + zero."""
    n, k = weight.shape
    if k % group_size:
        raise ValueError(f"int4 group size {group_size} does not divide the {k} input features of {name}; "
                         f"use --quantization int8 or a group size that divides {k}")
    w = weight.float().view(n, k // group_size, group_size)
    lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    scale = ((hi - lo) / 15).clamp(min=1e-12)
    q = ((w - lo) / scale).round().clamp(0, 15).to(torch.int32).view(n, k)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    sz = torch.cat([scale, lo + 8 * scale], dim=-1).transpose(0, 1).contiguous()  # [groups, n, 2]
    return packed, sz.to(dtype)


INT6_GROUP = 64


def check_int6(n: int, k: int, name: str = "weight", group_size: int = INT6_GROUP) -> None:
    if n % 64 or k % group_size:
        raise ValueError(f"a 6-bit {name} needs a multiple of 64 rows and of {group_size} columns, not {n} x {k}; "
                         f"use --lm-head int8")


def int6_groups(weight: torch.Tensor, dtype: torch.dtype, group_size: int = INT6_GROUP,
                name: str = "weight") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 6-bit in groups of `group_size` inputs: (packed [N, K/2], the low 4 bits in torch's
    int4pack layout; top [N, K/4], the top 2 bits as csrc/int4_dot.h reads them; scale_zeros
    [N/64, K/group, 64, 2] in `dtype`, a block of 64 rows' pairs together), w ~= (u - 32) * scale + zero.
    N must be a multiple of 64 (the layout's row blocks)."""
    n, k = weight.shape
    check_int6(n, k, name, group_size)
    w = weight.float().view(n, k // group_size, group_size)
    lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    scale = ((hi - lo) / 63).clamp(min=1e-12).to(dtype).float()  # rounded first: u uses the stored pair
    zero = (lo + 32 * scale).to(dtype).float()
    u = ((w - zero) / scale + 32).round().clamp(0, 63).to(torch.int32).view(n, k)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(u & 15, 1)
    h = (u >> 4).view(n // 64, 2, 32, k // 2, 2).permute(0, 3, 2, 4, 1)  # [block, pair, j, k parity, row half]
    shifts = torch.tensor([[0, 2], [4, 6]], dtype=torch.int32)  # (k + parity, row 32 * half) -> bit
    top = (h << shifts).sum((-2, -1)).to(torch.uint8).reshape(n, k // 4)
    sz = torch.cat([scale, zero], dim=-1).view(n // 64, 64, k // group_size, 2).transpose(1, 2)
    return packed, top, sz.to(dtype).contiguous()


def int6_dequantize(packed: torch.Tensor, top: torch.Tensor, scale_zeros: torch.Tensor) -> torch.Tensor:
    """The float32 weights [N, K] of an `int6_groups` triple (rows a multiple of 64: any slice of blocks)."""
    n, k = packed.shape[0], packed.shape[1] * 2
    p = packed.view(n // 64, k, 32).int()
    lo = torch.stack([p & 15, p >> 4], 1).transpose(2, 3)  # [block, row half, j, k]
    t = top.view(n // 64, k // 2, 32, 1, 1).int() >> torch.tensor([[0, 2], [4, 6]], dtype=torch.int32)
    h = (t & 3).permute(0, 4, 2, 1, 3)  # [block, row half, j, pair, k parity]
    u = (lo.reshape(n, k) + 16 * h.reshape(n, k)).float()
    sz = scale_zeros.float().transpose(1, 2).reshape(n, -1, 2)  # [N, groups, 2]
    g = k // sz.shape[1]
    scale, zero = (sz[:, :, i].repeat_interleave(g, dim=1) for i in (0, 1))
    return (u - 32) * scale + zero


def _native_int8(weight: torch.Tensor) -> bool:
    return cpu_kernels.loaded() and weight.shape[1] % 32 == 0


def _native_int4(packed: torch.Tensor, group: int, scale_zeros: torch.Tensor) -> bool:
    return (cpu_kernels.loaded() and packed.shape[0] % 64 == 0 and group % 32 == 0
            and scale_zeros.dtype == torch.bfloat16)


INT8_TILE_BYTES = 8 << 20  # bf16 bytes of int8 weight rows converted per GEMM in `int8_mm`


def int8_mm(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [M, K] @ (w [N, K] int8 * scale [N]).T for prefill-sized M. In bf16 on a CPU: rows of w dequantized
    to bf16 (q * scale rounded once per weight) a few MiB at a time into torch's bf16 GEMM, whose result
    is rounded once, as the FP8 prefill path does. On attention shapes at 64-512 rows that took 0.25-0.6x
    the time of `aten._weight_int8pack_mm` (Zen 5, 2 threads), which widens in its inner loop. (Rounding
    the unscaled product and then the scaled one instead raised the demo model's int8 KL to bf16 from
    0.0042 to 0.0073.)"""
    if x.dtype != torch.bfloat16 or x.device.type != "cpu" or x.dim() != 2:
        return torch.ops.aten._weight_int8pack_mm(x, w, scale)
    n, k = w.shape
    rows = max(1, INT8_TILE_BYTES // (2 * k))
    out = torch.empty(x.shape[0], n, dtype=x.dtype)
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        tile = (w[r0:r1].float() * scale[r0:r1, None].float()).to(x.dtype)  # q * scale, rounded per weight
        out[:, r0:r1] = F.linear(x, tile)
    return out


class Int8Linear(nn.Module):
    def __init__(self, weight: torch.Tensor | None, dtype: torch.dtype, quantized: tuple | None = None):
        super().__init__()
        q, scale = quantized if quantized is not None else int8_rows(weight, dtype)
        self.register_buffer("weight", q)
        self.register_buffer("scale", scale)
        self.out_features = q.shape[0]
        self.gemv = None
        if _native_int8(q) and dtype == torch.bfloat16:
            ext = cpu_kernels.load()
            self.gemv = ext.gemv_int8_a8 if int8_activations_on(q.shape[1]) else ext.gemv_int8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gemv is not None and 0 < x.shape[0] <= MAX_ROWS:
            return self.gemv(x, self.weight, self.scale)
        return int8_mm(x, self.weight, self.scale)


class Int4Linear(nn.Module):
    def __init__(self, weight: torch.Tensor | None, dtype: torch.dtype, group_size: int, name: str = "weight",
                 quantized: tuple | None = None):
        super().__init__()
        packed, sz = quantized if quantized is not None else int4_groups(weight, dtype, group_size, name)
        self.register_buffer("packed", packed)
        self.register_buffer("scale_zeros", sz)
        self.group_size, self.out_features = group_size, sz.shape[1]
        self.gemv = cpu_kernels.load().gemv_int4 if _native_int4(packed, group_size, sz) else None
        self.a8 = int8_activations_on()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gemv is not None and 0 < x.shape[0] <= MAX_ROWS:
            return self.gemv(x, self.packed, self.group_size, self.scale_zeros, self.a8)
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, self.group_size, self.scale_zeros)


class Fp8Linear(nn.Module):
    """The official FP8 weights as released: float8_e4m3fn parts [N_i, K] with their float32 128x128
    block scales, read in place (views of the mapped checkpoint). A fused projection (q/k/v) keeps its
    parts separate instead of a concatenated copy. Up to `fp8_kernels.KERNEL_ROWS` rows in a bf16 model:
    the native FP8 matrix-vector kernel (where the kernels are built); more rows and other dtypes:
    128-row tiles dequantized into torch's GEMM."""

    def __init__(self, parts: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype):
        super().__init__()
        from . import fp8_kernels

        self.parts = parts  # not buffers: views of the file, never copied by .to() or state_dict
        self.out_features = sum(w.shape[0] for w, _ in parts)
        native = dtype == torch.bfloat16 and fp8_kernels.kernels() is not None
        self.gemv = fp8_kernels.gemv_fp8 if native else None
        self.prefill = fp8_kernels.fp8_linear_prefill
        self.kernel_rows = fp8_kernels.KERNEL_ROWS  # decode batches and short prefill chunks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = self.gemv if self.gemv is not None and 0 < x.shape[0] <= self.kernel_rows else self.prefill
        ys = [fn(x, w, s) for w, s in self.parts]
        return ys[0] if len(ys) == 1 else torch.cat(ys, dim=-1)


class Int6Linear(nn.Module):
    """6-bit weights (`int6_groups`) through the native `gemv_int6`, 16 rows of x at a time (each row's result
    is its own, so a prefill batch gets exactly its decode rows' logits). It needs the native kernels and a
    bf16 model: there is no torch op for this layout, and dequantising the whole matrix per call would cost
    seconds on M2's head."""

    def __init__(self, weight: torch.Tensor | None, dtype: torch.dtype, name: str = "weight",
                 quantized: tuple | None = None):
        super().__init__()
        packed, top, sz = quantized if quantized is not None else int6_groups(weight, dtype, name=name)
        self.register_buffer("packed", packed)
        self.register_buffer("top", top)
        self.register_buffer("scale_zeros", sz)
        self.group_size, self.out_features = packed.shape[1] * 2 // sz.shape[1], packed.shape[0]
        if dtype != torch.bfloat16 or not _native_int4(packed, self.group_size, sz):
            raise ValueError(f"a 6-bit {name} runs on the native CPU kernels in a bf16 model (AVX512-VNNI/VBMI, a C++ "
                             f"compiler; this load: {dtype}, kernels {'built' if cpu_kernels.loaded() else 'unavailable'}); "
                             f"use --lm-head int8")
        self.gemv = cpu_kernels.load().gemv_int6
        self.a8 = int8_activations_on()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:
            return x.new_empty(0, self.out_features)
        if x.shape[0] <= MAX_ROWS:
            return self.gemv(x.contiguous(), self.packed, self.top, self.group_size, self.scale_zeros, self.a8)
        return torch.cat([self.gemv(x[a:a + MAX_ROWS].contiguous(), self.packed, self.top, self.group_size,
                                    self.scale_zeros, self.a8) for a in range(0, x.shape[0], MAX_ROWS)])
