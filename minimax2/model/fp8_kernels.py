"""MiniMax-M2's released FP8 weights on CPU, read as they are on disk: float8_e4m3fn with float32
128x128 block scales (`weight_scale_inv`, W[i, j] = float(W_fp8[i, j]) * scale_inv[i // 128, j // 128],
partial edge blocks; see fp8.py). One byte per weight, nothing requantized.

* `gemv_fp8(x, w, scale_inv)`: decode rows and short prefill chunks (M <= 64) through the native
  kernel (csrc/gemv_fp8.cpp): each e4m3 byte becomes its exact bf16 value through AVX512-VBMI byte
  tables, products are exact bf16 pairs summed in float32 per 128-column block and scaled per block,
  rounded to bf16 once.
* `moe_experts_fp8(x, idx, weights, experts)`: the expert block of decode steps and prefill chunks
  (csrc/experts_fp8.cpp) over separate per-expert w1 / w3 / w2 tensors (zero-copy views of the
  checkpoint), addressed through the pointer tables of an `Fp8ExpertTables` built once at load.
* `fp8_linear_prefill(x, w, scale_inv)`: any number of rows; 128-row tiles of W dequantized to x's
  dtype a few at a time (natively for bf16: `dequantize_rows`) into torch's GEMM, so the whole
  dequantized weight never exists.

The serving forms (linear.Fp8Linear, experts.Fp8Experts) choose between them once, at load: the
kernels where the model is bf16 and they are built, the tiled GEMM otherwise; per call only the batch
kind (decode rows or prefill) is left.

Results equal dequantize-then-bf16 products to the bf16 kernels' tolerance (tests/test_fp8_kernels.py);
they are closer to the exact product, since the dequantized weight is never rounded to bf16.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import cpu_kernels
from .fp8 import FP8_DTYPE, scale_shape

BLOCK = 128
MAX_ROWS = 64  # rows of x the matrix-vector kernel takes
# Up to this many rows a product (a projection's rows, an active expert's tokens in a prefill chunk)
# takes the matrix-vector kernel, beyond it the tiled dequantize-and-GEMM: on expert and attention shapes
# (Zen 5, 2 threads) the kernel took 0.41-0.58x the tiled path's time at 16-17 rows, 0.71-0.96x at 48 and
# 0.97-1.08x at 64, where the GEMM's speed overtakes it (and it writes no dequantized tile).
KERNEL_ROWS = 48
TILE_BYTES = 8 << 20  # dequantized bytes per GEMM in the prefill path (1 MiB tiles: 2-4x slower GEMMs, measured)


def kernels():
    """The native extension with the fp8 kernels, or None where they cannot run here."""
    ext = cpu_kernels.load()
    return ext if ext is not None and hasattr(ext, "gemv_fp8") else None


def _check(w: torch.Tensor, scale_inv: torch.Tensor) -> None:
    if w.dtype != FP8_DTYPE or w.dim() != 2:
        raise ValueError(f"expected a 2-D float8_e4m3fn weight, got {w.dtype} {tuple(w.shape)}")
    want = scale_shape(tuple(w.shape), (BLOCK, BLOCK))
    if scale_inv.dtype != torch.float32 or tuple(scale_inv.shape) != want:
        raise ValueError(f"weight_scale_inv must be float32 {want} for a {tuple(w.shape)} weight, "
                         f"got {scale_inv.dtype} {tuple(scale_inv.shape)}")


def fp8_to_bf16(codes: torch.Tensor) -> torch.Tensor:
    """bf16 values of float8_e4m3fn (or uint8) codes through the kernels' own conversion (for tests)."""
    return kernels().fp8_e4m3_to_bf16(codes)


def gemv_fp8(x: torch.Tensor, w: torch.Tensor, scale_inv: torch.Tensor) -> torch.Tensor:
    """x [M, K] bf16 (1 <= M <= MAX_ROWS) @ W.T -> [M, N] bf16, for w [N, K] float8_e4m3fn and scale_inv
    [ceil(N/128), ceil(K/128)] float32, both contiguous. Needs the native kernels (`kernels()`)."""
    return kernels().gemv_fp8(x.contiguous(), w, scale_inv)


def dequantize_rows(w: torch.Tensor, scale_inv: torch.Tensor, r0: int, r1: int,
                    dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """W[r0:r1] in `dtype`, r0 a multiple of 128: float32 products rounded once, as fp8.dequantize. bf16
    tiles come from the native kernel where it runs (torch's e4m3 conversion is scalar: ~20x slower)."""
    ext = kernels() if dtype == torch.bfloat16 and w.is_contiguous() and scale_inv.is_contiguous() else None
    if ext is not None:
        return ext.fp8_dequantize_bf16(w, scale_inv, r0, r1)
    rows, k = r1 - r0, w.shape[1]
    t = w[r0:r1].to(torch.float32)
    s = scale_inv[r0 // BLOCK: -(-r1 // BLOCK)].repeat_interleave(BLOCK, 0)[:rows]  # [rows, ceil(K/128)]
    full = k // BLOCK
    if full:
        t[:, : full * BLOCK].unflatten(1, (full, BLOCK)).mul_(s[:, :full, None])
    if k % BLOCK:
        t[:, full * BLOCK:].mul_(s[:, full:])
    return t.to(dtype)


def fp8_linear_prefill(x: torch.Tensor, w: torch.Tensor, scale_inv: torch.Tensor,
                       tile_bytes: int = TILE_BYTES) -> torch.Tensor:
    """x [..., K] @ W.T -> [..., N] in x's dtype for any number of rows: W dequantized a few 128-row
    tiles at a time (about `tile_bytes` each) into torch's GEMM, never whole."""
    _check(w, scale_inv)
    n, k = w.shape
    x2 = x.reshape(-1, k)
    rows = max(BLOCK, tile_bytes // max(1, k * x.element_size()) // BLOCK * BLOCK)
    if rows >= n:
        return F.linear(x, dequantize_rows(w, scale_inv, 0, n, x.dtype))
    out = torch.empty(x2.shape[0], n, dtype=x.dtype)
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        out[:, r0:r1] = F.linear(x2, dequantize_rows(w, scale_inv, r0, r1, x.dtype))
    return out.view(*x.shape[:-1], n)


class Fp8ExpertTables:
    """One layer's FP8 experts as separate tensors (w1 / w3 [I, H], w2 [H, I], float8_e4m3fn, and their
    float32 block scales), with the int64 tables of their data pointers that the native expert block
    reads. Built once at load; keeps the tensors alive, so the pointers stay valid."""

    def __init__(self, w1: Sequence[torch.Tensor], w3: Sequence[torch.Tensor], w2: Sequence[torch.Tensor],
                 s1: Sequence[torch.Tensor], s3: Sequence[torch.Tensor], s2: Sequence[torch.Tensor]):
        if not (len(w1) == len(w3) == len(w2) == len(s1) == len(s3) == len(s2) >= 1):
            raise ValueError("w1, w3, w2 and their scales need one tensor per expert each")
        self.intermediate, self.hidden = w1[0].shape
        i, h = self.intermediate, self.hidden
        for name, ws, ss, shape in (("w1", w1, s1, (i, h)), ("w3", w3, s3, (i, h)), ("w2", w2, s2, (h, i))):
            for e, (w, s) in enumerate(zip(ws, ss)):
                if tuple(w.shape) != shape or w.device.type != "cpu" or not w.is_contiguous() or not s.is_contiguous():
                    raise ValueError(f"expert {e} {name}: expected a contiguous CPU {shape} weight, got "
                                     f"{tuple(w.shape)} on {w.device}")
                _check(w, s)
        self.tensors = tuple(tuple(t) for t in (w1, w3, w2, s1, s3, s2))
        self.tables = tuple(torch.tensor([t.data_ptr() for t in ts], dtype=torch.int64) for ts in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


def moe_experts_fp8(x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor, experts: Fp8ExpertTables) -> torch.Tensor:
    """[M, H] bf16: each token of x [M, H] through its experts idx [M, k] (int64, as `cpu_kernels.route`
    returns them; SwiGLU), summed with `weights` [M, k] float32, grouped by expert so a chosen
    expert's weights are read once per step (SparseMoE passes at most `cpu_kernels.MAX_BLOCK_TOKENS` tokens);
    x bf16, the intermediate size a multiple of 16 (Fp8Experts binds it only where both hold)."""
    return kernels().moe_experts_fp8(x.contiguous(), idx, weights, *experts.tables, experts.intermediate,
                                     experts.hidden)
