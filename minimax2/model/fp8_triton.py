"""Products against FP8 block-quantized weights on a GPU, in Triton kernels that read the e4m3 weights as
they are stored (one byte per weight), scale them per 128x128 block and accumulate in float32. No
dequantized copy, no activation rounding: the weights' exact values times the activations, as the
CPU's FP8 kernels compute them.

* `gemv(x, w, scale_inv, rows)`, decode: x [P, K], w [E, N, K] float8_e4m3fn, scale_inv [E, N/128, K/128]
  float32, rows [P] int32 (row p uses w[rows[p]]) -> [P, N] float32.
* `moe(x, idx, w13, s13, w2, s2)`, prefill: every (token, choice) pair through its expert's SwiGLU MLP in
  two launches, whatever the number of active experts.

N and K are multiples of 128. Triton ships with torch's CUDA wheels; where it is missing, both are None
and fp8_cuda.py uses its other paths. On CPU tensors they run in Triton's interpreter
(TRITON_INTERPRET=1 before the import), which is how tests/test_fp8_triton.py checks them without a GPU.
"""

from __future__ import annotations

import contextlib
import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch: no Triton, and no GPU to run it on
    triton = None

BLOCK_N = 64  # output rows per program: half a scale block
BLOCK_K = 128  # one scale block of the reduction per step
# Triton's interpreter multiplies bf16 tiles as raw integers, so there the tiles go to float32 first
# (exact products either way: e4m3 and bf16 values are exact in float32, sums are float32).
DOT_F32 = os.environ.get("TRITON_INTERPRET") == "1"
MOE_BLOCK_M = (16, 32, 64)  # (token, choice) pairs of one expert per program in `moe`; runs are padded to
# it, so it follows the mean pairs an expert (a 512-token chunk of M2: 16 over 256 experts)


def align(flat: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs `flat` [P] (each one's expert) grouped by expert, each expert's run padded to `block_m`:
    (rows [B * block_m] int32: a pair's index, or P in padding; experts [B] int32: each block's expert,
    num_experts past the last). B = ceil(P / block_m) + num_experts bounds the blocks used, so the grid
    is known without asking the GPU (no host sync)."""
    p, dev = flat.numel(), flat.device
    nblocks = -(-p // block_m) + num_experts
    counts = torch.zeros(num_experts, dtype=torch.long, device=dev).index_add_(0, flat, torch.ones_like(flat))
    blocks = (counts + block_m - 1) // block_m
    block_end = blocks.cumsum(0)
    order = flat.argsort(stable=True)
    by_expert = flat[order]
    rank = torch.arange(p, device=dev) - (counts.cumsum(0) - counts)[by_expert]  # place within its expert's run
    rows = torch.full((nblocks * block_m,), p, dtype=torch.int32, device=dev)
    rows[(block_end - blocks)[by_expert] * block_m + rank] = order.to(torch.int32)
    experts = torch.searchsorted(block_end, torch.arange(nblocks, device=dev), right=True).to(torch.int32)
    return rows, experts


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

    @triton.jit
    def _moe_kernel(x_ptr, w_ptr, s_ptr, rows_ptr, experts_ptr, y_ptr, P, TOP_K, N, K, E,
                    GATED: tl.constexpr, DOT_F32: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        """One block of BLOCK_M pairs of one expert against BLOCK_N of its output rows. GATED: x holds the
        tokens [T, K] (pair p reads token p // TOP_K), w is w13 [E, 2N, K], and the block writes
        silu(gate) * up [P, N] in x's dtype; else x holds the pairs [P, K], w is w2 [E, N, K], and the block
        writes float32 [P, N]."""
        b = tl.program_id(0)
        e = tl.load(experts_ptr + b)
        if e < E:  # blocks past the last expert's run do nothing
            pairs = tl.load(rows_ptr + b * BLOCK_M + tl.arange(0, BLOCK_M))
            live = pairs < P
            src = pairs // TOP_K if GATED else pairs
            rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
            rk = tl.arange(0, BLOCK_K)
            kb_n = K // BLOCK_K
            rows_w = 2 * N if GATED else N
            w_base = w_ptr + e.to(tl.int64) * rows_w * K  # 64-bit: 256 experts x 3072 x 3072 bytes pass 2^31
            s_base = s_ptr + e.to(tl.int64) * (rows_w // 128) * kb_n + (tl.program_id(1) * BLOCK_N // 128) * kb_n
            up_s = (N // 128) * kb_n  # the up half's scales start this far after the gate's
            acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            acc_up = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            for kb in range(0, kb_n):
                a = tl.load(x_ptr + src[:, None].to(tl.int64) * K + kb * BLOCK_K + rk[None, :], mask=live[:, None],
                            other=0.0)
                dt = tl.float32 if DOT_F32 else a.dtype
                a = a.to(dt)
                w = tl.load(w_base + rn[None, :] * K + kb * BLOCK_K + rk[:, None]).to(dt)  # [K, N], exact in dt
                acc += tl.dot(a, w) * tl.load(s_base + kb)
                if GATED:
                    wu = tl.load(w_base + (N + rn[None, :]) * K + kb * BLOCK_K + rk[:, None]).to(dt)
                    acc_up += tl.dot(a, wu) * tl.load(s_base + up_s + kb)
            out = y_ptr + pairs[:, None].to(tl.int64) * N + rn[None, :]
            if GATED:
                tl.store(out, (acc / (1.0 + tl.exp(-acc)) * acc_up).to(y_ptr.dtype.element_ty), mask=live[:, None])
            else:
                tl.store(out, acc, mask=live[:, None])

    def moe(x: torch.Tensor, idx: torch.Tensor, w13: torch.Tensor, s13: torch.Tensor, w2: torch.Tensor,
            s2: torch.Tensor) -> torch.Tensor:
        """x [T, H] (bf16 or float16), idx [T, k] experts chosen -> each pair's expert output [T*k, H] float32
        (weight and sum them with experts.combine_pairs). w13 [E, 2I, H] and w2 [E, H, I] e4m3, s13 and s2
        their [E, rows/128, cols/128] float32 scales, all contiguous; H and I multiples of 128."""
        t, hdim = x.shape
        e, i2 = w13.shape[:2]
        inter = i2 // 2
        shapes_ok = (tuple(w13.shape) == (e, 2 * inter, hdim) and tuple(w2.shape) == (e, hdim, inter)
                     and tuple(s13.shape) == (e, i2 // 128, hdim // 128)
                     and tuple(s2.shape) == (e, hdim // 128, inter // 128))
        if (hdim % 128 or inter % 128 or not shapes_ok or w13.dtype != torch.float8_e4m3fn
                or w2.dtype != torch.float8_e4m3fn or not all(z.is_contiguous() for z in (w13, s13, w2, s2))
                or x.dtype not in (torch.bfloat16, torch.float16)):
            raise ValueError(f"fp8 moe: x [T, H] bf16/fp16, w13 [E, 2I, H] and w2 [E, H, I] e4m3 contiguous with "
                             f"[E, rows/128, cols/128] scales, H and I multiples of 128; got {tuple(x.shape)} "
                             f"{x.dtype}, {tuple(w13.shape)}, {tuple(s13.shape)}, {tuple(w2.shape)}, {tuple(s2.shape)}")
        p = idx.numel()
        h = torch.empty(p, inter, dtype=x.dtype, device=x.device)
        y = torch.empty(p, hdim, dtype=torch.float32, device=x.device)
        if not p:
            return y
        block_m = next((m for m in MOE_BLOCK_M if p <= m * e), MOE_BLOCK_M[-1])
        rows, experts = align(idx.flatten(), e, block_m)
        x = x.contiguous()
        with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
            stages = ((x, w13, s13, h, inter, hdim, True), (h, w2, s2, y, hdim, inter, False))
            for src, w, s, out, n, k, gated in stages:
                _moe_kernel[(experts.numel(), n // BLOCK_N)](
                    src, w, s, rows, experts, out, p, idx.shape[1], n, k, e,
                    GATED=gated, DOT_F32=DOT_F32, BLOCK_M=block_m, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K)
        return y
else:
    gemv = moe = None
