"""Opt-in int8 activations for the int8 and int4 matrices (`--int8-activations`, csrc/int8_a8.h and
int4_dot.h): the kernels do exactly their documented arithmetic, stay within that arithmetic's error
bound of the exact product, give each row the same result whatever the batch, and the loader binds them
only where they were asked for (the 6-bit head's: test_int6_head.py)."""

from __future__ import annotations

import pytest
import torch

from minimax2.model import cpu_kernels
from minimax2.model.linear import Int4Linear, Int8Linear, int8_activations, int8_rows
from minimax2.model.loader import load_model
from model_support import (assert_weighted_sum, expert_outputs, group_activations, int8_expert_case,
                           kernels_or_skip, teacher_forced_logits)


@pytest.fixture(scope="module")
def ext():
    return kernels_or_skip(cpu_kernels.load(), "the native kernels")


def a8_reference(x: torch.Tensor, w: torch.Tensor, ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's arithmetic in float64: each block of 128 activations quantised to int8 in float32 as
    the kernel does it (scale = max / 127, round half to even), exact integer block sums, each scaled by
    its block's scale, then the row scale. Also each output's bound on the float32 steps' rounding."""
    m, k = x.shape
    xb = x.float().view(m, k // 128, 128)
    amax = xb.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, torch.tensor(127.0) / amax, torch.zeros_like(amax))  # float32, as the kernel
    q = (xb * inv).round()
    sums = torch.einsum("mbk,nbk->mnb", q.double(), w.double().view(-1, k // 128, 128))  # exact integers
    terms = sums * (amax.double() / 127).squeeze(-1)[:, None, :]
    slack = terms.abs().sum(-1) * 2 ** -20 * ws.double().abs()
    return terms.sum(-1) * ws.double(), slack


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 9, 16])
@pytest.mark.parametrize("n, k", [(1, 128), (7, 384), (1531, 1024)])
@pytest.mark.parametrize("outlier", [False, True])
def test_int8_activation_gemv_does_its_arithmetic(ext, m, n, k, outlier):
    g = torch.Generator().manual_seed(m * 1000 + n + outlier)
    w, s = int8_rows(torch.randn(n, k, generator=g), torch.bfloat16)
    x = torch.randn(m, k, generator=g).bfloat16()
    if outlier:  # one large activation sets its block's int8 scale
        x[:, k // 3] = 60.0
    got = ext.gemv_int8_a8(x, w, s).double()
    want, slack = a8_reference(x, w, s)
    assert ((got - want).abs() <= want.abs() * 2 ** -8 + slack + 1e-30).all()  # one bf16 rounding of the result
    # and within the arithmetic's error bound of the exact product: each activation is off by at most half
    # its block's step (max / 254), each output by the weights' sum of those
    exact = x.double() @ (w.double() * s.double()[:, None]).T
    step = x.float().view(m, k // 128, 128).abs().amax(-1).double() / 254  # [m, blocks]
    wabs = (w.double().abs() * s.double()[:, None]).view(n, k // 128, 128).sum(-1)  # [n, blocks]
    bound = step @ wabs.T
    assert ((got - exact).abs() <= exact.abs() * 2 ** -8 + bound * (1 + 2 ** -8) + slack).all()


def test_int8_activation_rows_do_not_depend_on_the_batch(ext):
    """Rows of x go in passes of up to eight; each row's integer sums and float steps are its own, so a
    row's result is bit for bit what it is alone, at any batch size."""
    g = torch.Generator().manual_seed(3)
    w, s = int8_rows(torch.randn(521, 640, generator=g), torch.bfloat16)
    x = torch.randn(16, 640, generator=g).bfloat16()
    alone = torch.cat([ext.gemv_int8_a8(x[i:i + 1], w, s) for i in range(16)])
    for m in (2, 7, 8, 9, 16):
        assert torch.equal(ext.gemv_int8_a8(x[:m], w, s), alone[:m]), m


def test_int8_activation_gemv_rejects_what_it_cannot_do(ext):
    with pytest.raises(RuntimeError, match="K % 128"):
        ext.gemv_int8_a8(torch.randn(1, 96).bfloat16(), torch.zeros(8, 96, dtype=torch.int8), torch.ones(8).bfloat16())
    with pytest.raises(RuntimeError, match="M <= 16"):
        ext.gemv_int8_a8(torch.randn(17, 128).bfloat16(), torch.zeros(8, 128, dtype=torch.int8),
                         torch.ones(8).bfloat16())


def test_int8_linear_takes_int8_activations_only_when_built_for_them(ext):
    w = torch.randn(64, 256)
    x1, x32 = torch.randn(1, 256).bfloat16(), torch.randn(32, 256).bfloat16()
    plain = Int8Linear(w, torch.bfloat16)
    with int8_activations(True):
        fast = Int8Linear(w, torch.bfloat16)
        narrow = Int8Linear(torch.randn(8, 96), torch.bfloat16)  # K not a multiple of 128: int16 activations
    after = Int8Linear(w, torch.bfloat16)  # the choice ends with the block
    assert torch.equal(fast(x1), ext.gemv_int8_a8(x1, fast.weight, fast.scale))
    assert torch.equal(plain(x1), ext.gemv_int8(x1, plain.weight, plain.scale))
    assert torch.equal(after(x1), plain(x1)) and not torch.equal(fast(x1), plain(x1))
    x96 = torch.randn(1, 96).bfloat16()
    assert torch.equal(narrow(x96), ext.gemv_int8(x96, narrow.weight, narrow.scale))
    assert torch.equal(fast(x32), plain(x32))  # prefill: torch's op, bf16 activations, either way


@pytest.mark.parametrize("tokens", [1, 3, 9, 16, 40])
def test_int8_activation_expert_block_equals_its_products(ext, tokens):
    """The expert block under int8 activations: each chosen expert as two int8-activation products with
    SwiGLU between (bf16 roundings as the torch ops make them), weighted."""
    from minimax2.model.experts import Int8Experts

    w13, s13, w2, s2, x, idx, weights = int8_expert_case(200 + tokens, tokens, e=6, h=256, i=128, k=3)

    def expert(ex, row):
        gate, up = ext.gemv_int8_a8(row, w13[ex], s13[ex]).chunk(2, dim=-1)
        return ext.gemv_int8_a8((torch.nn.functional.silu(gate) * up).contiguous(), w2[ex], s2[ex])

    want = expert_outputs(x, idx, expert)
    with int8_activations(True):
        block = Int8Experts(w13, s13, w2, s2, native=True)
    got = block.block(x, idx, weights)
    assert_weighted_sum(got, want, weights)
    plain = Int8Experts(w13, s13, w2, s2, native=True).block(x, idx, weights)
    assert not torch.equal(got, plain)  # the default block keeps int16 activations
    with pytest.raises(RuntimeError, match="H % 128 == 0 and I % 128 == 0"):
        ext.moe_experts_int8_a8(x[:, :64].contiguous(), w13[:, :, :64].contiguous(), s13, w2[:, :64].contiguous(),
                                s2[:, :64].contiguous(), idx, weights)


@pytest.fixture(scope="module")
def wide_ckpt(tmp_path_factory):
    """A tiny checkpoint 128 wide (experts too), so every int8 product takes 128-column activation blocks."""
    from minimax2.train.random_init import SHAPES, build_random_checkpoint

    shape = {**SHAPES["tiny"], "hidden_size": 128, "intermediate_size": 128}
    return build_random_checkpoint(tmp_path_factory.mktemp("wide"), shape, seed=1,
                                   dtype=torch.float32)


def test_load_model_with_int8_activations_costs_little_beside_int8_weights(ext, wide_ckpt):
    """Against the float32 model's logits (teacher-forced, 17 decode steps through the KV cache), int8
    activations add little to what the int8 weights already cost (measured here: rms error 0.0039 with
    them, 0.0032 without, top-1 agreement 100% in both)."""
    tokens = list(range(3, 40))
    models = {a8: load_model(wide_ckpt, torch.bfloat16, quantization="int8", int8_activations=a8)
              for a8 in (False, True)}
    assert models[True].lm_head.gemv == ext.gemv_int8_a8 and models[False].lm_head.gemv == ext.gemv_int8
    assert models[True].layers[0].attn.qkv_proj.gemv == ext.gemv_int8_a8
    assert models[True].layers[0].moe.experts._kernel == ext.moe_experts_int8_a8
    assert models[False].layers[0].moe.experts._kernel == ext.moe_experts_int8
    got, int16 = (teacher_forced_logits(models[a8], tokens, 20) for a8 in (True, False))
    ref = teacher_forced_logits(load_model(wide_ckpt, torch.float32), tokens, 20)
    assert not torch.equal(got[1:], int16[1:])  # the decode rows took the other kernels
    rms = lambda t: (t[1:] - ref[1:]).pow(2).mean().sqrt()
    assert rms(got) <= 1.5 * rms(int16)
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.85


def test_int8_activations_need_int8_matrices(wide_ckpt):
    with pytest.raises(ValueError, match="--int8-activations applies to int8, int4 and 6-bit weights"):
        load_model(wide_ckpt, torch.bfloat16, int8_activations=True)
    model = load_model(wide_ckpt, torch.bfloat16, lm_head="int8", int8_activations=True)  # the int8 head alone
    assert isinstance(model.lm_head, Int8Linear)


def int4_weights(lin: Int4Linear) -> torch.Tensor:
    k = lin.packed.shape[1] * 2
    return torch.ops.aten._weight_int4pack_mm_for_cpu(torch.eye(k), lin.packed, lin.group_size,
                                                      lin.scale_zeros.float()).double().T


@pytest.mark.parametrize("m", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("n, k, group", [(64, 64, 32), (192, 256, 64), (1536, 1024, 128), (128, 512, 256)])
def test_int4_gemv_with_int8_activations_does_its_arithmetic(ext, m, n, k, group):
    """Activations quantised to int8 per weight group, `vpdpbusd` on the unsigned nibbles: the exact product
    of those activations with the int4 weights, to one bf16 rounding and the float32 steps."""
    g = torch.Generator().manual_seed(m * 1000 + n + group)
    lin = Int4Linear(torch.randn(n, k, generator=g), torch.bfloat16, group)
    x = torch.randn(m, k, generator=g).bfloat16()
    x[0, k // 5] = 50.0
    w = int4_weights(lin)
    got = ext.gemv_int4(x, lin.packed, group, lin.scale_zeros, True).double()
    want = group_activations(x, group, 127) @ w.T
    slack = (x.double().abs() @ w.abs().T) * 2 ** -18
    assert ((got - want).abs() <= want.abs() * 2 ** -8 + slack).all()
    alone = torch.cat([ext.gemv_int4(x[i:i + 1], lin.packed, group, lin.scale_zeros, True) for i in range(m)])
    assert torch.equal(alone, got.bfloat16())  # each row its own, whatever the batch
    with int8_activations(True):
        fast = Int4Linear(None, torch.bfloat16, group, quantized=(lin.packed, lin.scale_zeros))
    assert fast.a8 and not lin.a8 and torch.equal(fast(x), got.bfloat16())


@pytest.mark.parametrize("tokens", [1, 3, 9, 40])
def test_int4_expert_block_with_int8_activations_equals_its_products(ext, tokens):
    from minimax2.model.experts import Int4Experts
    from minimax2.model.linear import int4_groups

    e, h, i, group = 5, 128, 64, 32
    g = torch.Generator().manual_seed(300 + tokens)
    parts = [int4_groups(torch.randn(2 * i, h, generator=g), torch.bfloat16, group) for _ in range(e)]
    downs = [int4_groups(torch.randn(h, i, generator=g), torch.bfloat16, group) for _ in range(e)]
    p13, sz13 = (torch.stack([p[j] for p in parts]) for j in (0, 1))
    p2, sz2 = (torch.stack([p[j] for p in downs]) for j in (0, 1))
    x = torch.randn(tokens, h, generator=g).bfloat16()
    idx = torch.stack([torch.randperm(e, generator=g)[:2] for _ in range(tokens)])
    weights = torch.rand(tokens, 2, generator=g)

    def expert(ex, row):
        gate, up = ext.gemv_int4(row, p13[ex], group, sz13[ex], True).chunk(2, dim=-1)
        return ext.gemv_int4((torch.nn.functional.silu(gate) * up).contiguous(), p2[ex], group, sz2[ex], True)

    with int8_activations(True):
        block = Int4Experts(p13, sz13, p2, sz2, group, native=True)
    got = block.block(x, idx, weights)
    assert_weighted_sum(got, expert_outputs(x, idx, expert), weights)
    assert not torch.equal(got, Int4Experts(p13, sz13, p2, sz2, group, native=True).block(x, idx, weights))
    assert torch.equal(block._expert(int(idx[0, 0]), x[:1]), expert(int(idx[0, 0]), x[:1]))


def test_int4_loads_take_int8_activations_by_default(ext, wide_ckpt):
    """Under int4 the activations are int8 unless asked otherwise (the weights' 4-bit rounding dwarfs
    theirs: on the demo model, KL to float32 0.1235 with them, 0.1245 without); under int8 they stay int16."""
    def a8(model):
        return model.layers[0].moe.experts.a8, model.layers[0].attn.qkv_proj.a8, model.lm_head.gemv == ext.gemv_int8_a8

    assert a8(load_model(wide_ckpt, torch.bfloat16, quantization="int4")) == (True, True, True)
    assert a8(load_model(wide_ckpt, torch.bfloat16, quantization="int4", int8_activations=False)) == (False, False, False)
    int8 = load_model(wide_ckpt, torch.bfloat16, quantization="int8")
    assert int8.layers[0].attn.qkv_proj.gemv == ext.gemv_int8 and int8.lm_head.gemv == ext.gemv_int8
