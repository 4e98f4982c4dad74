"""Numerical parity with transformers' MiniMaxM2ForCausalLM on checkpoints it saved itself."""

from __future__ import annotations

import pytest
import torch

from conftest import edit_config, hf_checkpoint
from minimax2 import LLM, SamplingParams
from minimax2.model.attention import AttentionMetadata
from minimax2.model.loader import load_model

CONFIGS = {
    # head_dim (16) != hidden/heads (8); rotary 8 < head_dim; GQA 8:2; top-2 of 8
    "gqa4-partial-rope": dict(hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=8,
                              num_key_value_heads=2, head_dim=16, rotary_dim=8, num_local_experts=8,
                              num_experts_per_tok=2),
    # GQA 4:1, top-4 of 16, head_dim 24 with rotary 12, sharded with an index
    "gqa4-top4-sharded": dict(hidden_size=48, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
                              num_key_value_heads=1, head_dim=24, rotary_dim=12, num_local_experts=16,
                              num_experts_per_tok=4),
    # plain MHA, full-width RoPE, top-1; config rewritten in MiniMax's own spelling (rotary_dim, rope_theta)
    "mha-minimax-spelling": dict(hidden_size=32, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=4, head_dim=8, rotary_dim=8, num_local_experts=4,
                                 num_experts_per_tok=1),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request, tmp_path_factory):
    from transformers import MiniMaxM2ForCausalLM

    name = request.param
    path = tmp_path_factory.mktemp(name)
    hf_checkpoint(path, seed=1, max_shard_size="20KB" if "sharded" in name else None, **CONFIGS[name])
    if name == "mha-minimax-spelling":
        edit_config(path, rope_parameters=None, rope_theta=10000.0, rotary_dim=8)
    if "sharded" in name:
        assert (path / "model.safetensors.index.json").exists()
    ref = MiniMaxM2ForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return path, ref


def test_config_spelling_is_read(pair):
    path, ref = pair
    ours = load_model(path, dtype=torch.float32)
    assert ours.cfg.rotary_dim == int(ref.config.head_dim * ref.config.rope_parameters["partial_rotary_factor"])
    assert ours.cfg.rope_theta == ref.config.rope_parameters["rope_theta"]


def test_logits_match_transformers(pair):
    path, ref = pair
    ours = load_model(path, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 80), generator=g)
    with torch.no_grad():
        want = ref(ids).logits
        got = ours(ids.flatten(), torch.arange(80).repeat(2), AttentionMetadata.for_batch(2, 80)).view_as(want)
    assert (got - want).abs().max().item() < 1e-4


def test_correction_bias_changes_the_choice(pair):
    """The fixture's bias must matter, or the test above would not cover 'bias only chooses'."""
    path, _ = pair
    ours = load_model(path, dtype=torch.float32)
    moe = ours.layers[0].moe
    x = torch.randn(64, ours.cfg.hidden_size)
    with torch.no_grad():
        idx_bias, _ = moe.route(x)
        bias = moe.e_score_correction_bias.clone()
        moe.e_score_correction_bias.zero_()
        idx_plain, _ = moe.route(x)
        moe.e_score_correction_bias.copy_(bias)
    assert not torch.equal(idx_bias.sort(-1).values, idx_plain.sort(-1).values)


def test_greedy_continuation_matches_transformers(pair):
    path, ref = pair
    llm = LLM(path, dtype="float32", skip_tokenizer_init=True)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, llm.cfg.vocab_size, (64,), generator=g).tolist()
    with torch.no_grad():
        want = ref.generate(torch.tensor([prompt]), max_new_tokens=32, min_new_tokens=32, do_sample=False)[0, 64:].tolist()
    out = llm.generate([prompt], SamplingParams(max_tokens=32, temperature=0, ignore_eos=True))[0].outputs[0]
    assert out.token_ids == want


def test_bfloat16_close_to_float32(pair):
    path, _ = pair
    ours32, ours16 = load_model(path, dtype=torch.float32), load_model(path, dtype=torch.bfloat16)
    assert ours16.layers[0].moe.e_score_correction_bias.dtype == torch.float32
    ids = torch.arange(40) % ours32.cfg.vocab_size
    meta = AttentionMetadata.for_batch(1, 40)
    with torch.no_grad():
        a, b = ours32(ids, torch.arange(40), meta), ours16(ids, torch.arange(40), meta).float()
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.99


def test_gathered_experts_match_the_grouped_loop(pair):
    """The GPU decode path (each token's chosen experts in two batched products) against the loop."""
    path, _ = pair
    moe = load_model(path, dtype=torch.float32).layers[0].moe
    x = torch.randn(5, moe.experts.w13.shape[-1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        idx, weights = moe.route(x)
        assert torch.allclose(moe.experts._gathered(x, idx, weights), moe(x), atol=1e-6, rtol=1e-5)
