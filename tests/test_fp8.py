"""FP8 block quantisation: the converter writes the official layout, the loader dequantises it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from conftest import hf_checkpoint
from minimax2 import LLM, SamplingParams
from minimax2.model import fp8
from minimax2.model.loader import load_model
from minimax2.model.weights import hf_state_dict
from minimax2.model.writer import save_checkpoint

# 160 and 72 are not multiples of 128, so edge blocks are partial.
CFG = dict(hidden_size=160, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           head_dim=40, rotary_dim=20, num_local_experts=4, num_experts_per_tok=2)


def _within_fp8(orig: torch.Tensor, deq: torch.Tensor, scale: torch.Tensor) -> bool:
    # e4m3 keeps 3 mantissa bits: relative error <= 2^-4, plus subnormal steps of scale * 2^-9
    step = fp8._expand(scale, tuple(orig.shape), (128, 128)) * 2.0 ** -9
    return bool(((orig - deq).abs() <= orig.abs() * 2.0 ** -4 + step + 1e-12).all())


def test_quantize_roundtrip_partial_blocks():
    w = torch.randn(200, 300) * torch.logspace(-3, 1, 300)
    q, s = fp8.quantize(w)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (2, 3) and s.dtype == torch.float32
    assert _within_fp8(w, fp8.dequantize(q, s), s)
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        fp8.dequantize(q, s[:, :2])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    src = hf_checkpoint(tmp_path_factory.mktemp("src"), seed=3, **CFG)
    dst = tmp_path_factory.mktemp("fp8")
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "convert", "--model", str(src), "--out", str(dst),
                        "--to-fp8", "--shard-size-mb", "0.2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return src, dst


def test_converted_layout_is_official(converted):
    _, dst = converted
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["quantization_config"]["quant_method"] == "fp8"
    assert cfg["quantization_config"]["weight_block_size"] == [128, 128]
    index = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(index.values())) > 1
    def dtype_of(name):
        with safe_open(str(dst / index[name]), "pt") as f:
            return f.get_tensor(name).dtype
    assert dtype_of("model.layers.0.self_attn.q_proj.weight") == torch.float8_e4m3fn
    assert dtype_of("model.layers.1.block_sparse_moe.experts.3.w2.weight") == torch.float8_e4m3fn
    for kept in ("model.layers.0.block_sparse_moe.gate.weight", "lm_head.weight", "model.embed_tokens.weight",
                 "model.layers.0.block_sparse_moe.e_score_correction_bias", "model.layers.0.self_attn.q_norm.weight"):
        assert dtype_of(kept) == torch.float32, kept
    with safe_open(str(dst / index["model.layers.0.block_sparse_moe.experts.0.w1.weight_scale_inv"]), "pt") as f:
        assert f.get_tensor("model.layers.0.block_sparse_moe.experts.0.w1.weight_scale_inv").shape == (1, 2)


def test_dequantised_weights_match_originals(converted):
    src, dst = converted
    a, b = load_model(src, torch.float32), load_model(dst, torch.float32)
    deq = dict(hf_state_dict(b))
    for name, w in hf_state_dict(a):
        if name.endswith("_proj.weight") or ".experts." in name:
            assert _within_fp8(w, deq[name], fp8.quantize(w)[1]), name
            assert not torch.equal(w, deq[name]), f"{name} was not quantised"
        else:
            assert torch.equal(w, deq[name]), name


def test_greedy_matches_transformers_on_dequantised_weights(converted, tmp_path):
    from transformers import MiniMaxM2ForCausalLM

    _, dst = converted
    ours = LLM(dst, dtype="float32", skip_tokenizer_init=True)
    plain = save_checkpoint(ours.model, tmp_path / "deq")  # the same dequantised weights, unquantised layout
    ref = MiniMaxM2ForCausalLM.from_pretrained(plain, dtype=torch.float32).eval()
    prompt = (torch.arange(48) * 7 % 300).tolist()
    with torch.no_grad():
        want = ref.generate(torch.tensor([prompt]), max_new_tokens=24, min_new_tokens=24, do_sample=False)[0, 48:]
    got = ours.generate([prompt], SamplingParams(max_tokens=24, temperature=0, ignore_eos=True))[0].outputs[0]
    assert got.token_ids == want.tolist()
