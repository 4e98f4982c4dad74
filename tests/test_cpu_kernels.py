"""The native decode kernels: same results as the torch ops they replace, used only where they apply."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from minimax2.model import cpu_kernels
from minimax2.model.attention import AttentionMetadata
from minimax2.model.linear import int8_mm
from minimax2.model.loader import load_model
from model_support import (assert_weighted_sum, expert_outputs, int8_expert_case, kernels_or_skip,
                           teacher_forced_logits)


@contextlib.contextmanager
def torch_ops_only():
    """The torch fallbacks everywhere, as on a machine without the kernels (restored on exit)."""
    saved, cpu_kernels._ext = cpu_kernels._ext, None
    try:
        yield
    finally:
        cpu_kernels._ext = saved


@pytest.fixture(scope="module")
def ext():
    return kernels_or_skip(cpu_kernels.load(), "the native kernels")


@pytest.mark.parametrize("m", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("n, k", [(1, 32), (7, 64), (1531, 1024)])
def test_gemv_equals_torch_linear(ext, m, n, k):
    g = torch.Generator().manual_seed(m * 1000 + n)
    x = torch.randn(m, k, generator=g).bfloat16()
    w = (torch.randn(n, k, generator=g) / k ** 0.5).bfloat16()
    got, torch_out = ext.gemv_bf16(x, w), F.linear(x, w)
    exact = F.linear(x.float(), w.float())
    # one bf16 rounding of a float32 sum: within half an ulp of the exact product, like torch's kernel
    assert ((got.float() - exact).abs() <= exact.abs() * 2 ** -8 + 1e-6).all()
    assert (got == torch_out).float().mean() > 0.99  # the rest differ by float32 summation order only


def test_gemv_rejects_what_it_cannot_do(ext):
    with pytest.raises(RuntimeError, match="K % 32"):
        ext.gemv_bf16(torch.randn(1, 40).bfloat16(), torch.randn(8, 40).bfloat16())
    with pytest.raises(RuntimeError, match="bf16 only"):
        ext.gemv_bf16(torch.randn(1, 64), torch.randn(8, 64))


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 16])
@pytest.mark.parametrize("n, k", [(1, 32), (7, 96), (1531, 1024)])
@pytest.mark.parametrize("outlier", [False, True])
def test_int8_gemv_is_as_close_to_the_exact_product_as_the_int8pack_op(ext, m, n, k, outlier):
    from minimax2.model.quant import int8_rows

    g = torch.Generator().manual_seed(m * 1000 + n + outlier)
    w, s = int8_rows(torch.randn(n, k, generator=g), torch.bfloat16)
    x = torch.randn(m, k, generator=g).bfloat16()
    if outlier:  # one large activation: the int16 scale of its block is set by it
        x[:, k // 3] = 60.0
    got, torch_out = ext.gemv_int8(x, w, s), torch.ops.aten._weight_int8pack_mm(x, w, s)
    exact = x.double() @ (w.double() * s.double()[:, None]).T
    err, torch_err = (got.double() - exact).abs(), (torch_out.double() - exact).abs()
    # the int16 activations add at most 2^-16 of a block's largest value per term: well under the
    # one bf16 rounding of the result that both kernels make
    assert (err <= exact.abs() * 2 ** -8 + x.float().abs().amax() * k * 2 ** -15).all()
    if n * m > 1000:  # enough outputs for a mean: on average as close as torch's kernel
        assert err.mean() <= torch_err.mean() * 1.1
        assert (got == torch_out).float().mean() > 0.9


@pytest.mark.parametrize("n, k", [(7, 96), (1531, 1056)])
def test_int8_gemv_rows_do_not_depend_on_the_batch(ext, n, k):
    """Five or more rows of x take two weight rows at a time, up to eight rows of x a pass (int8_dot.h:
    pair_i8; an odd last weight row alone), fewer take one: the integer sums are exact and the float
    steps run in the same order, so every row's result is bit for bit what it is alone (k = 1056 ends in
    a partial activation block; n = 7 and 1531 leave an odd weight row)."""
    from minimax2.model.quant import int8_rows

    g = torch.Generator().manual_seed(n + k)
    w, s = int8_rows(torch.randn(n, k, generator=g), torch.bfloat16)
    x = torch.randn(16, k, generator=g).bfloat16()
    alone = torch.cat([ext.gemv_int8(x[i:i + 1], w, s) for i in range(16)])
    for m in (2, 3, 4, 5, 8, 9, 13, 16):
        assert torch.equal(ext.gemv_int8(x[:m], w, s), alone[:m]), m


@pytest.mark.parametrize("m, n, k", [(17, 64, 96), (200, 300, 256), (512, 1000, 64)])
def test_int8_prefill_product_is_the_int8_product(monkeypatch, m, n, k):
    """int8_mm dequantizes rows of w to bf16 a tile at a time (several tiles here) into torch's GEMM: as
    close to the exact product as aten._weight_int8pack_mm, within the weights' bf16 rounding; float32
    goes to the aten op itself."""
    from minimax2.model import linear

    monkeypatch.setattr(linear, "INT8_TILE_BYTES", 64 * k)  # 32 rows a tile
    g = torch.Generator().manual_seed(m + n)
    w = torch.randint(-128, 128, (n, k), generator=g, dtype=torch.int8)
    scale = (torch.rand(n, generator=g) / 50).bfloat16()
    x = torch.randn(m, k, generator=g).bfloat16()
    exact = (x.double() @ w.double().T) * scale.double()
    got, ref = int8_mm(x, w, scale), torch.ops.aten._weight_int8pack_mm(x, w, scale)
    assert got.dtype == torch.bfloat16 and got.shape == (m, n)
    mag = x.double().abs() @ (w.double().abs() * scale.double()[:, None]).T  # sum of |products|
    # the result's rounding, and each dequantized weight's (relative 2^-9 at most)
    assert ((got.double() - exact).abs() <= exact.abs() * 2 ** -8 + mag * 2 ** -8 + 1e-6).all()
    assert (got.double() - exact).abs().mean() <= 2 * (ref.double() - exact).abs().mean()
    xf, sf = x.float(), scale.float()
    assert torch.equal(int8_mm(xf, w, sf), torch.ops.aten._weight_int8pack_mm(xf, w, sf))


def test_int8_linear_uses_the_kernel_for_decode_rows_only(ext):
    from minimax2.model.quant import Int8Linear

    lin = Int8Linear(torch.randn(64, 96), torch.bfloat16)
    x1, x32 = torch.randn(1, 96).bfloat16(), torch.randn(32, 96).bfloat16()
    assert torch.equal(lin(x1), ext.gemv_int8(x1, lin.weight, lin.scale))
    assert torch.equal(lin(x32), int8_mm(x32, lin.weight, lin.scale))  # prefill
    from minimax2.model.linear import Int8Linear

    odd = Int8Linear(None, torch.bfloat16, (torch.zeros(8, 40, dtype=torch.int8), torch.ones(8).bfloat16()))
    assert odd.gemv is None  # K not a multiple of 32: the form binds torch's op
    lin = Int8Linear(torch.randn(8, 64), torch.bfloat16)
    x1, x17 = torch.randn(1, 64).bfloat16(), torch.randn(cpu_kernels.MAX_ROWS + 1, 64).bfloat16()
    assert torch.equal(lin(x1), ext.gemv_int8(x1, lin.weight, lin.scale))
    assert torch.equal(lin(x17), int8_mm(x17, lin.weight, lin.scale))
    with pytest.raises(RuntimeError, match="K % 32"):
        ext.gemv_int8(torch.randn(1, 40).bfloat16(), torch.zeros(8, 40, dtype=torch.int8), torch.ones(8).bfloat16())


def test_int4pack_layout_is_the_one_the_native_kernels_read():
    """int4_dot.h reads torch's packed weights in place: blocks of 64 rows, 32 bytes per column,
    byte j holding row j (low nibble) and row 32 + j (high nibble). A torch upgrade that changes
    this must fail here, not give wrong tokens."""
    n, k = 192, 256
    q = torch.randint(0, 16, (n, k), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    assert packed.dtype == torch.uint8 and packed.shape == (n, k // 2)
    rows, cols = torch.arange(n)[:, None].expand(n, k), torch.arange(k)[None, :].expand(n, k)
    byte = packed.flatten()[((rows // 64) * k * 32 + cols * 32 + rows % 32).flatten()].view(n, k).int()
    assert torch.equal(torch.where(rows % 64 < 32, byte & 15, byte >> 4), q)


@pytest.mark.parametrize("m", [1, 3, 4, 8, 16])
@pytest.mark.parametrize("n, k, group", [(64, 64, 32), (192, 256, 64), (1536, 1024, 128), (128, 512, 256)])
def test_int4_gemv_is_as_close_to_the_exact_product_as_the_int4pack_op(ext, m, n, k, group):
    from minimax2.model.quant import Int4Linear

    g = torch.Generator().manual_seed(m * 1000 + n + group)
    lin = Int4Linear(torch.randn(n, k, generator=g), torch.bfloat16, group)
    x = torch.randn(m, k, generator=g).bfloat16()
    got = ext.gemv_int4(x, lin.packed, group, lin.scale_zeros)
    torch_out = torch.ops.aten._weight_int4pack_mm_for_cpu(x, lin.packed, group, lin.scale_zeros)
    deq = torch.ops.aten._weight_int4pack_mm_for_cpu(torch.eye(k, dtype=torch.float32), lin.packed, group,
                                                     lin.scale_zeros.float()).double().T  # [n, k] weights
    exact = x.double() @ deq.T
    err, torch_err = (got.double() - exact).abs(), (torch_out.double() - exact).abs()
    assert (err <= exact.abs() * 2 ** -8 + x.float().abs().amax() * k * 2 ** -14).all()
    if n * m > 1000:
        assert err.mean() <= torch_err.mean() * 1.1
        assert (got == torch_out).float().mean() > 0.9
    assert torch.equal(lin(x), got)  # Int4Linear takes the kernel for decode rows
    with pytest.raises(RuntimeError, match="group % 32"):  # the int16 quantiser works 16 values at a time
        ext.gemv_int4(x, lin.packed, 16, lin.scale_zeros)
    assert Int4Linear(None, torch.bfloat16, 16, quantized=(lin.packed, lin.scale_zeros)).gemv is None
    with pytest.raises(RuntimeError, match="N % 64"):
        ext.gemv_int4(x, lin.packed[:32], group, lin.scale_zeros[:, :32].contiguous())


def test_int4_gemv_rows_do_not_depend_on_the_batch(ext):
    """Rows of x go in passes of at most three, split evenly (int4_dot.h: rows_i4); each row's sums are
    exact integers scaled in the same order whatever its pass, so every row is bit for bit what it is
    alone."""
    from minimax2.model.quant import Int4Linear

    g = torch.Generator().manual_seed(4)
    lin = Int4Linear(torch.randn(192, 256, generator=g), torch.bfloat16, 64)
    x = torch.randn(16, 256, generator=g).bfloat16()
    alone = torch.cat([ext.gemv_int4(x[i:i + 1], lin.packed, 64, lin.scale_zeros) for i in range(16)])
    for m in (2, 3, 4, 5, 7, 8, 13, 16):
        assert torch.equal(ext.gemv_int4(x[:m], lin.packed, 64, lin.scale_zeros), alone[:m]), m


def test_linear_form_binds_the_kernel_only_where_it_applies(ext):
    from minimax2.model.forms import make_linear
    from minimax2.model.linear import Bf16Linear, Linear

    w = torch.randn(48, 64).bfloat16()
    lin = make_linear(w, "float", torch.bfloat16)
    assert isinstance(lin, Bf16Linear)
    x1 = torch.randn(1, 64).bfloat16()
    assert torch.equal(lin(x1), ext.gemv_bf16(x1, w))
    for x in (torch.randn(cpu_kernels.MAX_ROWS + 1, 64).bfloat16(),  # prefill-sized batch: torch's GEMM
              torch.randn(0, 64).bfloat16()):  # a step where no sequence samples
        assert torch.equal(lin(x), F.linear(x, w))
    assert isinstance(make_linear(w.float(), "float", torch.float32), Linear)  # float32 (training, parity tests)
    assert isinstance(make_linear(w[:, :40], "float", torch.bfloat16), Linear)  # K not a multiple of 32


def test_one_token_forward_matches_torch(ext, tiny_ckpt):
    model = load_model(tiny_ckpt, torch.bfloat16)
    layer = model.layers[0]
    assert layer.input_norm.norm_kernel is not None and layer.attn.decode_kernel is not None  # bound at load
    ids = torch.tensor([5])
    with torch.inference_mode():
        got = model(ids, torch.tensor([0]), AttentionMetadata.for_batch(1, 1)).float()
        with torch_ops_only():  # forms are chosen at load: a model loaded without the kernels
            torch_model = load_model(tiny_ckpt, torch.bfloat16)
            want = torch_model(ids, torch.tensor([0]), AttentionMetadata.for_batch(1, 1))
    layer = torch_model.layers[0]
    assert layer.input_norm.norm_kernel is None and layer.attn.decode_kernel is None
    want = want.float()
    assert (got - want).abs().max() < 0.05 * want.abs().max()
    assert got.argmax() == want.argmax()


def test_kernels_can_be_turned_off():
    env = {**os.environ, "MINIMAX2_CPU_KERNELS": "0"}
    out = subprocess.run([sys.executable, "-c", "from minimax2.model import cpu_kernels; print(cpu_kernels.load())"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "None"


@pytest.mark.parametrize("tokens", [1, 3, 9, 40])  # 40: a prefill chunk, 20 tokens an expert
def test_expert_block_equals_the_per_expert_ops(ext, tokens):
    g = torch.Generator().manual_seed(tokens)
    e, h, i, k = 6, 64, 96, 3
    w13 = (torch.randn(e, 2 * i, h, generator=g) / 8).bfloat16()
    w2 = (torch.randn(e, h, i, generator=g) / 10).bfloat16()
    x = torch.randn(tokens, h, generator=g).bfloat16()
    idx = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(tokens)])  # experts shared across tokens
    want = torch.empty(tokens, k, h, dtype=torch.bfloat16)
    for m in range(tokens):
        for j, ex in enumerate(idx[m].tolist()):
            gate, up = F.linear(x[m:m + 1], w13[ex]).chunk(2, dim=-1)
            want[m, j] = F.linear(F.silu(gate) * up, w2[ex])[0]
    from minimax2.model.experts import Bf16Experts

    weights = torch.rand(tokens, k, generator=g)
    experts = Bf16Experts.from_stacks(w13, w2)
    assert_weighted_sum(experts.block(x, idx, weights), want, weights)
    separate = Bf16Experts(*([w.clone() for w in ws] for ws in experts.parts))  # not rows of one stack
    assert torch.equal(separate.block(x, idx, weights), experts.block(x, idx, weights))
    with pytest.raises(RuntimeError, match="expert index"):
        ext.moe_experts_bf16(x, torch.full((tokens, 1), 6), weights[:, :1], *experts.tables, i, h)


@pytest.mark.parametrize("tokens", [1, 3, 9, 16, 40])
def test_int8_expert_block_equals_the_int8pack_ops(ext, tokens):
    from minimax2.model.experts import Int8Experts
    from minimax2.model.linear import Int8Linear

    w13, s13, w2, s2, x, idx, weights = int8_expert_case(100 + tokens, tokens, e=6, h=64, i=96, k=3)

    def expert(ex, row):
        gate, up = Int8Linear(None, torch.bfloat16, (w13[ex], s13[ex]))(row).chunk(2, dim=-1)
        return Int8Linear(None, torch.bfloat16, (w2[ex], s2[ex]))(F.silu(gate) * up)

    want = expert_outputs(x, idx, expert)
    assert_weighted_sum(Int8Experts(w13, s13, w2, s2, native=True).block(x, idx, weights), want, weights)
    with pytest.raises(RuntimeError, match="expert index"):
        ext.moe_experts_int8(x, w13, s13, w2, s2, torch.full((tokens, 1), 6), weights[:, :1])


@pytest.mark.parametrize("tokens, experts, k", [(1, 8, 2), (5, 32, 4), (16, 256, 8), (512, 256, 8)])
def test_native_router_chooses_and_weighs_like_torch(ext, tokens, experts, k):
    g = torch.Generator().manual_seed(tokens * experts)
    logits = torch.randn(tokens, experts, generator=g).bfloat16()
    bias = torch.randn(experts, generator=g) / 10
    scores = torch.sigmoid(logits.float())
    _, want_idx = torch.topk(scores + bias, k, dim=-1)
    want_w = scores.gather(1, want_idx)
    want_w = want_w / want_w.sum(-1, keepdim=True)
    idx, w = cpu_kernels.route(logits, bias, k)
    assert torch.equal(idx, want_idx)  # same experts, in descending biased score
    torch.testing.assert_close(w, want_w, rtol=1e-6, atol=1e-7)
    with pytest.raises(RuntimeError, match="1 <= k <= E"):
        ext.moe_route(logits, bias, experts + 1)


@pytest.mark.parametrize("method", ["int8", "int4"])
@pytest.mark.parametrize("tokens", [1, 4, 100])  # 100: a prefill chunk takes the native block too
def test_quantised_model_runs_decode_experts_natively_with_the_torch_result(ext, tiny_ckpt, method, tokens):
    from minimax2.model.quant import quantize_model

    model = quantize_model(load_model(tiny_ckpt, torch.bfloat16), method, group_size=32)
    moe = model.layers[0].moe
    x = torch.randn(tokens, model.cfg.hidden_size, generator=torch.Generator().manual_seed(tokens)).bfloat16()
    assert moe.experts.block is not None
    with torch.no_grad():
        native = moe(x)
        moe.experts._gemv = None  # the per-expert torch ops, over the same weights
        ref = moe.experts(x, *moe.route(x))
    assert (native.float() - ref.float()).abs().max() <= ref.abs().max() * 2 ** -6
    if tokens == 1:  # one token's torch path also sums in float32 (the grouped one rounds each term)
        assert (native == ref).float().mean() > 0.8  # the rest differ by a bf16 rounding of an expert output


@pytest.mark.parametrize("tokens", [1, 5])
def test_attention_prologue_equals_the_torch_ops(ext, tiny_ckpt, tokens):
    from minimax2.model.minimax_m2 import apply_rope, rope_cos_sin

    model = load_model(tiny_ckpt, torch.bfloat16)
    a, c = model.layers[1].attn, model.cfg
    g = torch.Generator().manual_seed(tokens)
    with torch.no_grad():
        a.q_norm.weight.copy_(1 + torch.randn(c.q_size, generator=g) / 4)  # not all ones: the weight must count
        a.k_norm.weight.copy_(1 + torch.randn(c.kv_size, generator=g) / 4)
        qkv = torch.randn(tokens, c.q_size + 2 * c.kv_size, generator=g).bfloat16()
        cos, sin = rope_cos_sin(torch.randint(0, 500, (tokens,), generator=g), c.rotary_dim, c.rope_theta, torch.bfloat16)
        k_cache = torch.zeros(64, c.num_key_value_heads, c.head_dim, dtype=torch.bfloat16)
        v_cache = torch.zeros_like(k_cache)
        slots = torch.randperm(64, generator=g)[:tokens]
        q = ext.attention_prep_bf16(qkv, a.q_norm.weight, a.k_norm.weight, cos, sin, a.q_norm.eps,
                                    c.num_attention_heads, k_cache, v_cache, slots)
        tq, tk, tv = qkv.split([c.q_size, c.kv_size, c.kv_size], dim=-1)
        want_q = apply_rope(a.q_norm(tq).view(tokens, -1, c.head_dim), cos, sin)
        want_k = apply_rope(a.k_norm(tk).view(tokens, -1, c.head_dim), cos, sin)
    for got, want in ((q, want_q), (k_cache[slots], want_k)):
        assert (got.float() - want.float()).abs().max() <= want.abs().max() * 2 ** -7
        assert (got == want).float().mean() > 0.98
    assert torch.equal(v_cache[slots], tv.view(tokens, -1, c.head_dim))
    assert k_cache.abs().sum() == k_cache[slots].abs().sum()  # nothing written elsewhere
    with pytest.raises(RuntimeError, match="slot out of range"):
        ext.attention_prep_bf16(qkv, a.q_norm.weight, a.k_norm.weight, cos, sin, 1e-6, c.num_attention_heads,
                                k_cache, v_cache, slots + 64)


@pytest.mark.parametrize("b, n", [(1, 1), (1, 70), (5, 130)])
def test_decode_attention_reads_the_paged_cache_like_the_torch_path(ext, b, n):
    from minimax2.model.attention import _decode_attention

    g = torch.Generator().manual_seed(b * 100 + n)
    kv, group, d, slots_total = 2, 4, 64, 4096
    k_cache = torch.randn(slots_total, kv, d, generator=g).bfloat16()
    v_cache = torch.randn(slots_total, kv, d, generator=g).bfloat16()
    lens = torch.randint(1, n + 1, (b,), generator=g)
    lens[0] = n
    width = -(-n // 64) * 64
    slots = torch.zeros(b, width, dtype=torch.long)  # scattered slots, as blocks from a shared pool are
    chosen = torch.randperm(slots_total, generator=g)[: b * width].view(b, width)
    for i in range(b):
        slots[i, : lens[i]] = chosen[i, : lens[i]]
    mask = (torch.arange(width)[None] < lens[:, None])[:, None, None, :]
    q = torch.randn(b, kv * group, d, generator=g).bfloat16()
    with torch.inference_mode():
        got = ext.decode_attention_bf16(q, k_cache, v_cache, slots, lens, d ** -0.5)
    want = _decode_attention(q, k_cache, v_cache, slots, mask, d ** -0.5)
    assert (got.float() - want.float()).abs().max() <= 2 ** -7 * want.abs().max()
    assert (got == want).float().mean() > 0.99
    with pytest.raises(RuntimeError, match="lengths"):
        ext.decode_attention_bf16(q, k_cache, v_cache, slots, torch.zeros(b, dtype=torch.long), 0.1)


def _norm_pair(h: int, g: torch.Generator):
    """(native, torch): two RMSNorms with the same random bf16 weight, the first with its kernels bound."""
    from minimax2.model.minimax_m2 import RMSNorm

    weight = (1 + torch.randn(h, generator=g) / 4).bfloat16()
    native, torch_norm = RMSNorm(h, 1e-6), RMSNorm(h, 1e-6)
    for norm in (native, torch_norm):
        norm.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
    native.bind_kernels()
    assert native.norm_kernel is not None and torch_norm.norm_kernel is None
    return native, torch_norm


def test_norm_binds_its_kernels_only_for_bf16_weights_on_the_cpu(ext):
    from minimax2.model.minimax_m2 import RMSNorm

    norm = RMSNorm(64, 1e-6)  # float32 weights (training): torch's ops
    norm.bind_kernels()
    assert norm.norm_kernel is None and norm.add_norm_kernel is None
    with torch_ops_only():  # a machine without the kernels
        norm.weight = torch.nn.Parameter(norm.weight.bfloat16(), requires_grad=False)
        norm.bind_kernels()
    assert norm.norm_kernel is None
    norm.bind_kernels()
    assert norm.norm_kernel is not None and norm.add_norm_kernel is not None


@pytest.mark.parametrize("rows, h", [(1, 64), (3, 1024), (2, 96)])
def test_add_rms_norm_equals_the_residual_add_then_the_norm(ext, rows, h):
    g = torch.Generator().manual_seed(rows + h)
    norm, torch_norm = _norm_pair(h, g)
    x, delta = (torch.randn(2, rows, h, generator=g) * 3).bfloat16()
    with torch.no_grad():
        s, y = norm.add_norm(x, delta)
        want_s, want_y = torch_norm.add_norm(x, delta)
    assert torch.equal(s, want_s)  # the bf16 sum is exact to rounding in both
    assert (y.float() - want_y.float()).abs().max() <= want_y.abs().max() * 2 ** -7
    assert (y == want_y).float().mean() > 0.98
    with pytest.raises(RuntimeError, match="same shape"):
        ext.add_rms_norm_bf16(x, torch.cat([delta, delta]), norm.weight, 1e-6)


def _kernel_shaped_models(head_dim: int = 64):
    """(float32, bf16) copies of one random model whose shapes the native kernels take (head_dim 64)."""
    from minimax2.model.config import ModelConfig
    from minimax2.model.minimax_m2 import MiniMaxM2
    from minimax2.model.quant import serving_model
    from minimax2.train.random_init import init_weights

    cfg = ModelConfig(hidden_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=head_dim, rotary_dim=head_dim // 2, num_local_experts=8, num_experts_per_tok=2,
                      intermediate_size=64, vocab_size=300, max_position_embeddings=256)
    torch.manual_seed(0)
    fp32 = MiniMaxM2(cfg).eval()
    init_weights(fp32, 0)
    bf16 = MiniMaxM2(cfg).eval()
    bf16.load_state_dict(fp32.state_dict())
    return fp32, serving_model(bf16.to(torch.bfloat16))  # forms bound now: with the kernels unless switched off


def test_bf16_engine_with_kernels_serves_mixed_steps(ext):
    """Chunked prefill next to decodes, steps where nobody samples, batches of 1-3: all through the kernels."""
    from minimax2.engine.llm_engine import EngineConfig, LLMEngine
    from minimax2.engine.sampling_params import SamplingParams

    _, bf16 = _kernel_shaped_models()
    engine = LLMEngine(bf16, None, [], EngineConfig(max_num_seqs=3, max_num_batched_tokens=24, max_model_len=256))
    sp = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    for r, n in enumerate((70, 5, 33)):
        engine.add_request(f"r{r}", list(range(1, n + 1)), sp)
    done = {}
    while engine.has_unfinished():
        for o in engine.step():
            done.setdefault(o.request_id, []).extend(o.new_token_ids)
    engine.add_request("one", [7], sp)  # alone: a one-token prompt's prefill is shaped like a decode step
    while engine.has_unfinished():
        for o in engine.step():
            done.setdefault(o.request_id, []).extend(o.new_token_ids)
    assert {k: len(v) for k, v in done.items()} == {"r0": 12, "r1": 12, "r2": 12, "one": 12}


def test_decode_with_a_head_dim_the_attention_kernel_cannot_take_falls_back_whole(ext):
    """head_dim 16: the qkv row (128 wide) suits the native prologue but the decode attention needs
    head_dim % 32 == 0, so both must fall back to torch together (same logits as with no kernels)."""
    _, bf16 = _kernel_shaped_models(head_dim=16)
    attn = bf16.layers[0].attn
    assert attn.decode_kernel is None and attn.prologue_kernel is None and attn.q_norm.norm_kernel is not None
    tokens = torch.randint(0, 300, (30,), generator=torch.Generator().manual_seed(2)).tolist()
    with_kernels = teacher_forced_logits(bf16, tokens, 10)
    with torch_ops_only():
        torch_only = teacher_forced_logits(_kernel_shaped_models(head_dim=16)[1], tokens, 10)
    assert (with_kernels - torch_only).abs().max() < 0.05 * torch_only.abs().max()


def test_bf16_decode_with_kernels_is_as_close_to_float32_as_torch_bf16(ext):
    fp32, bf16 = _kernel_shaped_models()
    tokens = torch.randint(0, 300, (60,), generator=torch.Generator().manual_seed(1)).tolist()
    exact = teacher_forced_logits(fp32, tokens, 20)
    with_kernels = teacher_forced_logits(bf16, tokens, 20)
    with torch_ops_only():
        torch_only = teacher_forced_logits(_kernel_shaped_models()[1], tokens, 20)
    err_kernels = (with_kernels - exact).abs().mean()
    err_torch = (torch_only - exact).abs().mean()
    assert err_kernels <= 1.25 * err_torch + 1e-4, (err_kernels, err_torch)
    assert (with_kernels - torch_only).abs().max() < 0.05 * exact.abs().max()


@pytest.mark.parametrize("rows, h", [(1, 64), (3, 1024), (4, 96), (16, 6144)])
def test_rms_norm_equals_the_torch_ops(ext, rows, h):
    g = torch.Generator().manual_seed(rows)
    norm, torch_norm = _norm_pair(h, g)
    x = (torch.randn(rows, h, generator=g) * 3).bfloat16()
    wide = (torch.randn(rows, 2 * h + 32, generator=g) * 3).bfloat16()[:, 16:16 + h]  # strided rows, as q of qkv
    for x in (x, wide):
        with torch.no_grad():
            got, want = norm(x), torch_norm(x)
        assert (got.float() - want.float()).abs().max() <= want.abs().max() * 2 ** -7
        assert (got == want).float().mean() > 0.98
    big = torch.randn(cpu_kernels.MAX_ROWS + 1, h, generator=g).bfloat16()  # prefill rows: torch's ops
    assert torch.equal(norm(big), torch_norm(big))
