"""The FP8 kernels (float8_e4m3fn weights with 128x128 float32 block scales, read in place) against
dequantize-then-bf16 torch products: exact conversion of every code, partial edge blocks, decode rows,
the expert block over separate per-expert tensors, and the tiled prefill GEMM."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from minimax2.model import fp8, fp8_kernels
from model_support import kernels_or_skip


@pytest.fixture(scope="module")
def ext():
    return kernels_or_skip(fp8_kernels.kernels(), "the fp8 kernels")


def exact_weights(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """W in float64: each code times its block scale, never rounded."""
    return q.double() * fp8._expand(s.double(), tuple(q.shape), (128, 128))


def quantized(n: int, k: int, g: torch.Generator, pow2: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """fp8.quantize of a random [n, k] weight; with pow2 the scales are rounded to powers of two, so
    dequantizing to bf16 is exact and the bf16 reference has no rounding of its own in the weights."""
    q, s = fp8.quantize(torch.randn(n, k, generator=g) / k ** 0.5)
    if pow2:
        s = torch.exp2(torch.randint(-12, -4, s.shape, generator=g).float())
    return q, s


def test_every_e4m3_code_converts_exactly(ext):
    codes = torch.arange(256, dtype=torch.uint8)
    got = fp8_kernels.fp8_to_bf16(codes)
    want = codes.view(torch.float8_e4m3fn).to(torch.bfloat16)
    finite = torch.tensor([c not in (0x7F, 0xFF) for c in range(256)])
    assert torch.equal(got[finite].view(torch.int16), want[finite].view(torch.int16))  # bit for bit, -0 included
    assert got[~finite].isnan().all()
    odd = torch.randint(0, 256, (1000,), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    odd[(odd & 0x7F) == 0x7F] = 0  # any length, any position in a 64-byte chunk
    assert torch.equal(fp8_kernels.fp8_to_bf16(odd.view(torch.float8_e4m3fn)), odd.view(torch.float8_e4m3fn).bfloat16())


def test_gemv_reads_every_code_at_every_position_exactly(ext):
    """y = e_m @ W.T picks one weight: every code (but NaN) at each of the 128 columns of a block."""
    n, k = 256, 128
    codes = (torch.arange(n)[:, None] + torch.arange(k)[None, :]) % 256
    codes[(codes & 0x7F) == 0x7F] = 0
    w = codes.to(torch.uint8).view(torch.float8_e4m3fn)
    eye = torch.eye(k, dtype=torch.bfloat16)
    got = torch.cat([fp8_kernels.gemv_fp8(eye[i:i + 16], w, torch.ones(2, 1)) for i in range(0, k, 16)])
    assert torch.equal(got, w.bfloat16().T.contiguous())


@pytest.mark.parametrize("m", [1, 3, 5, 8, 16, 40])
@pytest.mark.parametrize("n, k", [(1, 32), (7, 96), (200, 288), (333, 160), (1531, 1056)])
def test_gemv_equals_dequantized_bf16_linear(ext, m, n, k):
    """Power-of-two block scales: dequantize-to-bf16 is exact, so the bf16 kernel's test applies as is."""
    g = torch.Generator().manual_seed(m * 1000 + n)
    q, s = quantized(n, k, g, pow2=True)
    x = torch.randn(m, k, generator=g).bfloat16()
    got, torch_out = fp8_kernels.gemv_fp8(x, q, s), F.linear(x, fp8.dequantize(q, s, dtype=torch.bfloat16))
    exact = x.double() @ exact_weights(q, s).T
    assert ((got.double() - exact).abs() <= exact.abs() * 2 ** -8 + 1e-6).all()
    assert (got == torch_out).float().mean() > 0.99  # the rest differ by float32 summation order only


@pytest.mark.parametrize("m", [1, 3, 16])
@pytest.mark.parametrize("n, k", [(7, 96), (333, 160), (1531, 1056)])
def test_gemv_with_real_block_scales_is_closer_to_exact_than_the_bf16_reference(ext, m, n, k):
    """Scales as the quantizer sets them: the bf16 reference rounds each dequantized weight, the kernel
    never does, so it stays within one bf16 rounding of the exact product and no farther from it."""
    g = torch.Generator().manual_seed(m * 7 + n)
    q, s = quantized(n, k, g, pow2=False)
    x = torch.randn(m, k, generator=g).bfloat16()
    got, ref = fp8_kernels.gemv_fp8(x, q, s), F.linear(x, fp8.dequantize(q, s, dtype=torch.bfloat16))
    wd = exact_weights(q, s)
    exact, mag = x.double() @ wd.T, x.double().abs() @ wd.abs().T
    err, ref_err = (got.double() - exact).abs(), (ref.double() - exact).abs()
    assert (err <= exact.abs() * 2 ** -8 + 1e-6).all()
    assert ((got.double() - ref.double()).abs() <= exact.abs() * 2 ** -7 + mag * 2 ** -8 + 1e-6).all()
    if n * m > 1000:
        assert err.mean() <= ref_err.mean()


@pytest.mark.parametrize("n, k", [(7, 96), (333, 160), (1531, 1056)])
def test_gemv_rows_do_not_depend_on_the_batch(ext, n, k):
    """Five or more rows of x take two weight rows at a time (gemv_fp8.cpp: pair_span), in passes of up to
    eight, fewer take one; each (weight row, x row) sums its products in the same order either way, so
    every row's result is bit for bit what it is alone (k = 160 and 1056 end in a partial block, n = 7
    and 333 in a lone row)."""
    g = torch.Generator().manual_seed(n + k)
    q, s = quantized(n, k, g, pow2=False)
    x = torch.randn(fp8_kernels.MAX_ROWS, k, generator=g).bfloat16()
    alone = torch.cat([fp8_kernels.gemv_fp8(x[i:i + 1], q, s) for i in range(len(x))])
    for m in (4, 5, 8, 9, 13, 16, 17, 40, 64):
        assert torch.equal(fp8_kernels.gemv_fp8(x[:m], q, s), alone[:m]), m


def test_gemv_rejects_what_it_cannot_do(ext):
    q, s = fp8.quantize(torch.randn(8, 64))
    with pytest.raises(RuntimeError, match="M <= 64"):
        fp8_kernels.gemv_fp8(torch.randn(65, 64).bfloat16(), q, s)
    with pytest.raises(RuntimeError, match="scale_inv must be"):
        fp8_kernels.gemv_fp8(torch.randn(1, 64).bfloat16(), q, torch.ones(2, 1))
    with pytest.raises(RuntimeError, match="float8_e4m3fn w"):
        fp8_kernels.gemv_fp8(torch.randn(1, 64).bfloat16(), q.float(), s)


def _experts(e: int, h: int, i: int, g: torch.Generator, pow2: bool):
    """Per-expert fp8 tensors as zero-copy views into one byte buffer at odd offsets (as memory-mapped
    safetensors shards hold them: separate, not stacked, not aligned), and their scales."""
    mats = [[quantized(*shape, g, pow2) for _ in range(e)] for shape in ((i, h), (i, h), (h, i))]
    buf = torch.zeros(sum(q.numel() + 3 for ms in mats for q, _ in ms), dtype=torch.uint8)
    views, off = [], 0
    for ms in mats:
        views.append([])
        for q, _ in ms:
            off += 3
            v = buf[off:off + q.numel()].view(torch.float8_e4m3fn).view(q.shape)
            v.copy_(q)
            views[-1].append(v)
            off += q.numel()
    scales = [[s for _, s in ms] for ms in mats]
    return fp8_kernels.Fp8ExpertTables(*views, *scales), views, scales


def _torch_experts(x, idx, views, scales, product):
    """[M, k, H]: each chosen expert by the torch path, `product(x, w_fp8, s)` rounded to bf16."""
    (w1, w3, w2), (s1, s3, s2) = views, scales
    ys = torch.empty(x.shape[0], idx.shape[1], x.shape[1], dtype=torch.bfloat16)
    for m in range(x.shape[0]):
        for j, e in enumerate(idx[m].tolist()):
            gate, up = product(x[m:m + 1], w1[e], s1[e]), product(x[m:m + 1], w3[e], s3[e])
            ys[m, j] = product(F.silu(gate) * up, w2[e], s2[e])[0]
    return ys


def _dequantized_bf16(x, w, s):  # the reference: dequantize to bf16, then the bf16 ops
    return F.linear(x, fp8.dequantize(w, s, dtype=torch.bfloat16))


def _exact_weights_rounded(x, w, s):  # the same rounding points, weights never rounded
    return (x.double() @ exact_weights(w, s).T).bfloat16()


def _combined(ys, weights):
    return (weights[:, :, None] * ys).sum(1).to(torch.bfloat16)


@pytest.mark.parametrize("tokens", [1, 3, 16, 40])
def test_expert_block_equals_the_dequantized_bf16_experts(ext, tokens):
    g = torch.Generator().manual_seed(tokens)
    e, h, i, k = 6, 160, 176, 3  # partial edge blocks in both dimensions of every weight
    experts, views, scales = _experts(e, h, i, g, pow2=True)
    x = torch.randn(tokens, h, generator=g).bfloat16()
    idx = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(tokens)])  # experts shared across tokens
    weights = torch.rand(tokens, k, generator=g)
    got = fp8_kernels.moe_experts_fp8(x, idx, weights, experts)
    want = _combined(_torch_experts(x, idx, views, scales, _dequantized_bf16), weights)
    # the bf16 expert block's tolerance (tests/test_cpu_kernels.py)
    assert got.shape == want.shape and (got.float() - want.float()).abs().max() <= want.abs().max() * 2 ** -6
    assert (got == want).float().mean() > 0.95


@pytest.mark.parametrize("tokens", [1, 5, 16, 40])
def test_expert_block_with_real_scales_rounds_where_the_torch_path_rounds(ext, tokens):
    g = torch.Generator().manual_seed(50 + tokens)
    e, h, i, k = 8, 288, 96, 4
    experts, views, scales = _experts(e, h, i, g, pow2=False)
    x = torch.randn(tokens, h, generator=g).bfloat16()
    scores, idx = torch.randn(tokens, e, generator=g).sigmoid().topk(k)  # int64 [M, k], as moe_route gives
    weights = scores / scores.sum(-1, keepdim=True)
    got = fp8_kernels.moe_experts_fp8(x, idx, weights, experts)
    same_points = _combined(_torch_experts(x, idx, views, scales, _exact_weights_rounded), weights)
    assert (got.float() - same_points.float()).abs().max() <= same_points.abs().max() * 2 ** -6
    assert (got == same_points).float().mean() > 0.95
    bf16_ref = _combined(_torch_experts(x, idx, views, scales, _dequantized_bf16), weights)
    assert (got.float() - bf16_ref.float()).abs().max() <= bf16_ref.abs().max() * 2 ** -6


def test_expert_block_takes_more_pairs_per_expert_than_rows_per_pass(ext):
    """32 (token, expert) pairs on one expert (every token lists it twice): two passes of 16 rows."""
    g = torch.Generator().manual_seed(7)
    experts, views, scales = _experts(2, 160, 176, g, pow2=True)
    x = torch.randn(16, 160, generator=g).bfloat16()
    idx, weights = torch.ones(16, 2, dtype=torch.int64), torch.rand(16, 2, generator=g)
    got = fp8_kernels.moe_experts_fp8(x, idx, weights, experts)
    want = _combined(_torch_experts(x, idx, views, scales, _dequantized_bf16), weights)
    assert (got.float() - want.float()).abs().max() <= want.abs().max() * 2 ** -6
    assert (got == want).float().mean() > 0.95


def test_expert_block_checks_its_inputs(ext):
    g = torch.Generator().manual_seed(9)
    experts, views, scales = _experts(4, 64, 32, g, pow2=False)
    x = torch.randn(2, 64).bfloat16()
    with pytest.raises(RuntimeError, match="expert index"):
        fp8_kernels.moe_experts_fp8(x, torch.full((2, 1), 4), torch.ones(2, 1), experts)
    with pytest.raises(ValueError, match="expert 1 w2"):
        fp8_kernels.Fp8ExpertTables(views[0], views[1], [views[2][0], views[2][1].T, *views[2][2:]], *scales)
    with pytest.raises(ValueError, match="weight_scale_inv"):
        fp8_kernels.Fp8ExpertTables(*views, scales[0], scales[1], [torch.ones(2, 1), *scales[2][1:]])


@pytest.mark.parametrize("n, k", [(200, 288), (1531, 1056), (130, 96)])
def test_prefill_equals_dequantized_linear(n, k):
    g = torch.Generator().manual_seed(n + k)
    q, s = quantized(n, k, g, pow2=False)
    x = torch.randn(2, 20, k, generator=g).bfloat16()
    want = F.linear(x, fp8.dequantize(q, s, dtype=torch.bfloat16))
    for tile_bytes in (1, 1 << 20, fp8_kernels.TILE_BYTES):  # 128-row tiles, a few, the default
        got = fp8_kernels.fp8_linear_prefill(x, q, s, tile_bytes=tile_bytes)
        assert got.shape == want.shape and got.dtype == torch.bfloat16
        assert (got.float() - want.float()).abs().max() <= want.abs().max() * 2 ** -7
        assert (got == want).float().mean() > 0.99  # the rest: the GEMM's summation order per tile size
    assert torch.allclose(fp8_kernels.fp8_linear_prefill(x.float(), q, s, tile_bytes=1),
                          x.float() @ fp8.dequantize(q, s).T, rtol=1e-5, atol=1e-5)  # float32 in, float32 out
    assert torch.equal(fp8_kernels.dequantize_rows(q, s, 128, n, torch.float32), fp8.dequantize(q, s)[128:])


@pytest.mark.parametrize("n, k", [(200, 288), (130, 100), (1531, 1056)])
def test_native_tile_dequantization_rounds_like_fp8_dequantize(ext, n, k):
    g = torch.Generator().manual_seed(n * k)
    q, s = fp8.quantize(torch.randn(n, k, generator=g) * torch.logspace(-3, 2, k))
    want = fp8.dequantize(q, s, dtype=torch.bfloat16)
    for r0, r1 in ((0, n), (128, n), (0, 128), (128, 128)):
        assert torch.equal(fp8_kernels.dequantize_rows(q, s, r0, r1), want[r0:r1])  # bit for bit
    with pytest.raises(RuntimeError, match="r0 % 128"):
        fp8_kernels.dequantize_rows(q, s, 64, n)


def test_fp8_forms_take_the_kernel_for_short_batches_of_a_bf16_model_only(ext):
    from minimax2.model.experts import Fp8Experts
    from minimax2.model.linear import Fp8Linear

    g = torch.Generator().manual_seed(3)
    q, s = quantized(200, 288, g, pow2=False)
    x1, x48, x49 = (torch.randn(n, 288, generator=g).bfloat16() for n in (1, fp8_kernels.KERNEL_ROWS, 49))
    lin = Fp8Linear([(q, s)], torch.bfloat16)
    assert torch.equal(lin(x1), fp8_kernels.gemv_fp8(x1, q, s))
    assert torch.equal(lin(x48), fp8_kernels.gemv_fp8(x48, q, s))  # a short prefill chunk: the kernel too
    assert torch.equal(lin(x49), fp8_kernels.fp8_linear_prefill(x49, q, s))
    assert Fp8Linear([(q, s)], torch.float32).gemv is None  # float32 model: the tiled GEMM for every batch
    experts, _, _ = _experts(2, 160, 176, g, pow2=True)
    tensors = [list(t) for t in experts.tensors]
    assert Fp8Experts(*tensors, torch.bfloat16).block is not None
    assert Fp8Experts(*tensors, torch.float32).block is None
