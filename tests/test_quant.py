"""Weight-only int8 / int4: kernels match their dequantised weights; whole models stay close to float."""

from __future__ import annotations

import pytest
import torch

from minimax2 import LLM, SamplingParams
from minimax2.model.attention import AttentionMetadata
from minimax2.model.loader import load_model
from minimax2.model.quant import Int4Linear, Int8Linear, quantize_model


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_kernel_is_per_channel_symmetric(dtype):
    w = torch.randn(96, 64) * torch.linspace(0.1, 3, 96)[:, None]
    q = Int8Linear(w, dtype)
    deq = q.weight.float() * q.scale.float()[:, None]
    step = q.scale.float()[:, None]
    assert ((deq - w).abs() <= step * 0.51).all()  # round to nearest: at most half a step
    x = torch.randn(5, 64, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 0.15
    assert torch.allclose(q(x).float(), x.float() @ deq.t(), atol=tol, rtol=0.02)


@pytest.mark.parametrize("group", [32, 64])
def test_int4_kernel_groups(group):
    w = torch.randn(64, 128)
    q = Int4Linear(w, torch.float32, group)
    x = torch.eye(128)
    deq = q(x).t()  # identity input reads the dequantised weight back
    err = (deq - w).abs().view(64, -1, group)
    span = w.view(64, -1, group)
    assert (err <= (span.amax(-1, keepdim=True) - span.amin(-1, keepdim=True)) / 30 + 1e-5).all()
    with pytest.raises(ValueError, match="does not divide the 100 input features"):
        Int4Linear(torch.randn(8, 100), torch.float32, 32, "x")


@pytest.mark.parametrize("method, group, max_kl", [("int8", 128, 1e-4), ("int4", 32, 5e-3)])
def test_quantised_model_stays_close(tiny_ckpt, method, group, max_kl):
    base = load_model(tiny_ckpt, torch.float32)
    quant = quantize_model(load_model(tiny_ckpt, torch.float32), method, group)
    assert type(quant.layers[0].moe.experts).__name__ == f"{method.capitalize()}Experts"
    assert quant.layers[0].moe.gate.weight.dtype == torch.float32
    assert isinstance(quant.lm_head, Int8Linear)  # int8 under both methods
    ids = torch.arange(3, 67)
    meta = AttentionMetadata.for_batch(1, 64)
    with torch.no_grad():
        ref = base(ids, torch.arange(64), meta).log_softmax(-1)
        got = quant(ids, torch.arange(64), meta).log_softmax(-1)
    kl = torch.nn.functional.kl_div(got, ref, log_target=True, reduction="batchmean")
    assert 0 < kl < max_kl


def test_llm_quantization_flag(tiny_ckpt):
    llm = LLM(tiny_ckpt, dtype="bfloat16", quantization="int8", num_kv_blocks=64)
    out = llm.generate(["Once upon"], SamplingParams(max_tokens=6, temperature=0, ignore_eos=True))[0].outputs[0]
    assert len(out.token_ids) == 6
    with pytest.raises(ValueError, match="unknown quantization"):
        LLM(tiny_ckpt, quantization="int3")


def test_benchmark_measures_quality_on_trained_text(tiny_ckpt):
    from minimax2.bench.quality import trained_text_quality

    q = trained_text_quality(tiny_ckpt, ("bf16", "int8"), conversations=3)
    assert q["tokens"] > 100 and set(q) == {"model", "conversations", "tokens", "int8", "bf16 vs float32"}
    for v in (q["int8"], q["bf16 vs float32"]):
        assert 0.5 < v["top1_agreement"] <= 1 and 0 <= v["kl"] < 0.05


def test_quality_runs_each_text_as_its_own_sequence(tiny_ckpt):
    """Two texts score as the token-weighted mean of each alone: the second does not sit behind the first."""
    from minimax2.bench.quality import quality

    ref = load_model(tiny_ckpt, torch.float32)
    q = quantize_model(load_model(tiny_ckpt, torch.float32), "int4", 32)
    a, b = list(range(3, 40)), list(range(50, 75))
    both, qa, qb = quality(q, ref, [a, b]), quality(q, ref, [a]), quality(q, ref, [b])
    assert both["kl"] == pytest.approx((qa["kl"] * len(a) + qb["kl"] * len(b)) / (len(a) + len(b)), rel=1e-4)
    assert quality(q, ref, [a + b])["kl"] != pytest.approx(both["kl"], rel=1e-3)
