"""Decode rows against FP8 block-quantized weights on a GPU, in one Triton kernel: each row is multiplied
by the e4m3 weight of its own expert (or of one projection), read as it is stored (one byte per weight)
and scaled per 128x128 block, accumulated in float32. No dequantized copy, no activation rounding:
the weights' exact values times the activations, as the CPU's FP8 kernels compute them.

`gemv(x, w, scale_inv, rows)`: x [P, K], w [E, N, K] float8_e4m3fn, scale_inv [E, N/128, K/128] float32,
rows [P] int32 (row p uses w[rows[p]]) -> [P, N] float32. N and K are multiples of 128. Triton ships
with torch's CUDA wheels; where it is missing, `gemv` is None and fp8_cuda.py uses its eager path.
"""

from __future__ import annotations

import contextlib

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch: no Triton, and no GPU to run it on
    triton = None

BLOCK_N = 64  # output rows per program: half a scale block
BLOCK_K = 128  # one scale block of the reduction per step


if triton is not None:
    @triton.jit
    def _gemv_kernel(x_ptr, w_ptr, s_ptr, rows_ptr, y_ptr, N, K, KB, NB,
                     BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        p = tl.program_id(0)
        nb = tl.program_id(1)
        e = tl.load(rows_ptr + p).to(tl.int64)
        rn = nb * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        w_base = w_ptr + e * N * K  # 64-bit: 256 experts x 3072 x 3072 bytes pass 2^31
        s_base = s_ptr + e * NB * KB + ((nb * BLOCK_N) // 128) * KB
        acc = tl.zeros([BLOCK_N], dtype=tl.float32)
        for kb in range(0, KB):
            xk = tl.load(x_ptr + p * K + kb * BLOCK_K + rk).to(tl.float32)
            w = tl.load(w_base + rn[:, None] * K + kb * BLOCK_K + rk[None, :]).to(tl.float32)
            acc += tl.sum(w * xk[None, :], axis=1) * tl.load(s_base + kb)
        tl.store(y_ptr + p * N + rn, acc)

    def gemv(x: torch.Tensor, w: torch.Tensor, scale_inv: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        p, k = x.shape
        e, n = w.shape[:2]
        if (w.shape[2] != k or k % BLOCK_K or n % 128 or tuple(scale_inv.shape) != (e, n // 128, k // BLOCK_K)
                or not (w.is_contiguous() and scale_inv.is_contiguous()) or w.dtype != torch.float8_e4m3fn
                or scale_inv.dtype != torch.float32 or rows.dtype != torch.int32 or rows.shape != (p,)):
            raise ValueError(f"fp8 gemv: x [P, K], w [E, N, K] e4m3 contiguous, scale_inv [E, N/128, K/128] float32, "
                             f"rows [P] int32 with N, K multiples of 128; got {tuple(x.shape)}, {tuple(w.shape)}, "
                             f"{tuple(scale_inv.shape)}, {tuple(rows.shape)} {rows.dtype}")
        y = torch.empty(p, n, dtype=torch.float32, device=x.device)
        if p:
            # launch on the tensors' GPU, not the current one (CPU tensors: Triton's interpreter, for tests)
            with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
                _gemv_kernel[(p, n // BLOCK_N)](x.contiguous(), w, scale_inv, rows, y, n, k, k // BLOCK_K, n // 128,
                                                BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K)
        return y
else:
    gemv = None
