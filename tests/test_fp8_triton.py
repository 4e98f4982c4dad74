"""The Triton FP8 kernels (model/fp8_triton.py) against dequantized products: compiled on a GPU, and on
a machine without one in Triton's interpreter, where the same kernel code runs on CPU tensors (tiles
multiplied in float32 there: the interpreter cannot multiply bf16 tiles). Skipped where Triton is not
installed (CPU-only torch does not bring it: `pip install triton` to run these).
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and "triton" not in sys.modules:
    # Triton reads this as it imports (its own helpers are built for the interpreter then) and as kernels are
    # decorated; set for the rest of the session, which on a machine without a GPU runs no other Triton code
    os.environ["TRITON_INTERPRET"] = "1"
triton = pytest.importorskip("triton", reason="no Triton here (pip install triton runs these in its interpreter)")

from minimax2.model import fp8_cuda, fp8_triton  # noqa: E402
from minimax2.model.experts import grouped, swiglu  # noqa: E402
from minimax2.model.fp8 import dequantize, quantize  # noqa: E402


@pytest.fixture(scope="module")
def kernels():
    """fp8_triton with its kernels compiled for the GPU, or built for the interpreter on the CPU."""
    if DEVICE == "cuda":
        return fp8_triton
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton was imported before this module could ask for its interpreter: run this file alone")
    return fp8_triton if fp8_triton.DOT_F32 else importlib.reload(fp8_triton)


def stacks(g: torch.Generator, experts: int, hidden: int, inter: int):
    """Expert stacks w13 [E, 2I, H], s13, w2 [E, H, I], s2 quantized from random weights."""
    parts = [quantize(torch.randn(2 * inter, hidden, generator=g) * 0.05) for _ in range(experts)]
    downs = [quantize(torch.randn(hidden, inter, generator=g) * 0.05) for _ in range(experts)]
    return [torch.stack([p[j] for p in ps]).contiguous() for ps in (parts, downs) for j in (0, 1)]


@pytest.mark.parametrize("flat,experts", [([3, 0, 3, 3, 1], 4), ([], 2), ([1] * 70 + [0] * 3, 3), ([2], 3)])
def test_align_groups_pairs_by_expert_in_padded_runs(flat, experts):
    flat = torch.tensor(flat, dtype=torch.long)
    rows, owner = fp8_triton.align(flat, experts, 4)
    p = flat.numel()
    assert owner.numel() == -(-p // 4) + experts and rows.numel() == 4 * owner.numel()
    assert sorted(rows[rows < p].tolist()) == list(range(p))  # every pair exactly once
    used = owner < experts
    assert used.tolist() == sorted(used.tolist(), reverse=True)  # used blocks first, in expert order
    assert owner[used].tolist() == sorted(owner[used].tolist())
    for b, e in enumerate(owner.tolist()):
        block = rows[4 * b: 4 * b + 4]
        live = block[block < p]
        if e < experts:
            assert len(live) and (flat[live.long()] == e).all()  # each block holds its own expert's pairs
        else:
            assert not len(live)
    counts = torch.bincount(flat, minlength=experts)
    assert used.sum().item() == ((counts + 3) // 4).sum().item()  # runs padded to whole blocks, no more


@pytest.mark.parametrize("p", [1, 5, 33])
def test_gemv_multiplies_each_row_by_its_experts_weight_in_place(kernels, p):
    g = torch.Generator().manual_seed(p)
    ws = [quantize(torch.randn(256, 384, generator=g) * 0.02) for _ in range(4)]
    w, s = torch.stack([q for q, _ in ws]), torch.stack([sc for _, sc in ws])
    rows = torch.randint(0, 4, (p,), generator=g, dtype=torch.int32)
    x = torch.randn(p, 384, generator=g).to(torch.bfloat16)
    got = kernels.gemv(x.to(DEVICE), w.to(DEVICE), s.to(DEVICE), rows.to(DEVICE)).cpu()
    want = torch.stack([x[i].float() @ dequantize(*ws[rows[i]]).T for i in range(p)])
    assert got.dtype == torch.float32 and ((got - want).abs().max() / want.abs().max()).item() < 1e-5


@pytest.mark.parametrize("tokens,top_k", [(1, 2), (37, 3), (80, 1), (60, 3)])  # blocks of 16, 32, 16, 64
def test_moe_runs_each_pair_through_its_experts_weights_in_place(kernels, tokens, top_k):
    g = torch.Generator().manual_seed(tokens)
    w13, s13, w2, s2 = stacks(g, 5, 256, 128)
    x = torch.randn(tokens, 256, generator=g).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(5, generator=g)[:top_k] for _ in range(tokens)])
    if tokens == 80:
        idx[:70] = 4  # one expert with more pairs than a block (16 here), the others few or none
    got = kernels.moe(*(z.to(DEVICE) for z in (x, idx, w13, s13, w2, s2))).cpu()
    want = []
    for p, e in enumerate(idx.flatten().tolist()):
        h = swiglu(x[p // top_k].float() @ dequantize(w13[e], s13[e]).T).to(torch.bfloat16).float()
        want.append(h @ dequantize(w2[e], s2[e]).T)
    want = torch.stack(want)
    assert got.shape == want.shape and got.dtype == torch.float32
    # h goes to bf16 once on both sides (rounded on a GPU, truncated by the interpreter: up to one ulp,
    # 2^-8 to 2^-7 of each h); a wrong expert, block scale or row would be off by its whole size
    assert ((got - want).norm() / want.norm()).item() < 1e-2
    assert torch.nn.functional.cosine_similarity(got, want, dim=-1).min() > 0.999


def test_moe_refuses_shapes_it_cannot_take(kernels):
    g = torch.Generator().manual_seed(0)
    w13, s13, w2, s2 = stacks(g, 2, 256, 128)
    x = torch.randn(3, 256).to(torch.bfloat16)
    idx = torch.zeros(3, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="fp8 moe"):
        kernels.moe(x.float(), idx, w13, s13, w2, s2)  # float32 activations: the fp8 path serves bf16/fp16
    with pytest.raises(ValueError, match="fp8 moe"):
        kernels.moe(x, idx, w13, s13, w2[:, :, :64].contiguous(), s2)
    assert kernels.moe(x[:0], idx[:0], w13, s13, w2, s2).shape == (0, 256)


def test_expert_stack_serves_prefill_through_the_moe_kernel(kernels):
    """Fp8CudaExperts with the `moe` kernel (as the probe selects it on a GPU) against the per-expert path
    on the dequantized weights."""
    g = torch.Generator().manual_seed(5)
    w13, s13, w2, s2 = stacks(g, 6, 256, 128)
    experts = fp8_cuda.Fp8CudaExperts(6, 256, 128, torch.device(DEVICE))
    for e in range(6):
        experts.put(e, w13[e, :128], w13[e, 128:], w2[e], s13[e, :1], s13[e, 1:], s2[e])
    experts.finish().moe = kernels.moe
    x = torch.randn(20, 256, generator=g).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(6, generator=g)[:2] for _ in range(20)])
    weights = torch.rand(20, 2, generator=g)
    with torch.no_grad():
        got = experts(x.to(DEVICE), idx.to(DEVICE), weights.to(DEVICE)).float().cpu()  # 40 pairs > 6 experts

    def expert(e: int, xs: torch.Tensor) -> torch.Tensor:
        return swiglu(xs.float() @ dequantize(w13[e], s13[e]).T) @ dequantize(w2[e], s2[e]).T

    want = grouped(x, idx, weights, 6, expert)[0].float()
    assert torch.nn.functional.cosine_similarity(got, want, dim=-1).min() > 0.999


def test_load_probe_selects_both_kernels(kernels):
    """The check fp8_cuda runs once per GPU before it serves through these kernels, run here on the
    kernels as they are built on this machine: both agree with the dequantized products."""
    g = torch.Generator().manual_seed(0)
    w, s = quantize(torch.randn(256, 384, generator=g))
    x = torch.randn(5, 384, generator=g).to(torch.bfloat16)
    found = fp8_cuda._probe_kernels(DEVICE, x, w, s, x.float() @ dequantize(w, s).T)
    assert set(found) == {"gemv", "moe"}
    assert found["moe"] is kernels.moe
