"""Prefill attention on a CPU in blocks of keys (`attention._blocked_attention`): exact causal GQA attention
up to the model dtype's rounding, for chunks after a cached prefix, over several key and query blocks, and
in the paged engine's chunked prefill."""

from __future__ import annotations

import pytest
import torch

from engine_support import generate_batch
from minimax2 import SamplingParams
from minimax2.chat.tokenizer import Tokenizer
from minimax2.engine.llm_engine import EngineConfig, LLMEngine
from minimax2.model import attention
from minimax2.model.attention import _blocked_attention, _causal_mask, _manual_attention
from minimax2.model.loader import load_model


def exact(q, k, v, scale):
    """float64 causal attention; the n queries are the last n of the ctx positions."""
    n, hq, _ = q.shape
    ctx, kv = k.shape[:2]
    kk, vv = (t.double().repeat_interleave(hq // kv, 1) for t in (k, v))
    s = torch.einsum("nhd,chd->hnc", q.double(), kk) * scale
    s.masked_fill_(~_causal_mask(n, ctx, "cpu"), float("-inf"))
    return torch.einsum("hnc,chd->nhd", s.softmax(-1), vv)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 keys and 48 queries, so that small shapes cross several of each."""
    monkeypatch.setattr(attention, "KEY_BLOCK", 64)
    monkeypatch.setattr(attention, "QUERY_BLOCK", 48)


@pytest.mark.parametrize("n, ctx", [(1, 1), (5, 5), (100, 100), (37, 300), (130, 130), (200, 457), (1, 200)])
@pytest.mark.parametrize("hq, kv", [(4, 2), (6, 1), (8, 8)])
def test_blocked_attention_is_causal_attention(small_blocks, n, ctx, hq, kv):
    g = torch.Generator().manual_seed(n * ctx + hq)
    q, k, v = (torch.randn(m, h, 32, generator=g) * 2 for m, h in ((n, hq), (ctx, kv), (ctx, kv)))
    want = exact(q, k, v, 32 ** -0.5)
    assert torch.allclose(_blocked_attention(q, k, v, 32 ** -0.5).double(), want, atol=1e-5)  # float32
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    got = _blocked_attention(qb, kb, vb, 32 ** -0.5)
    mask = None if n == 1 else _causal_mask(n, ctx, "cpu")
    whole = _manual_attention(qb, kb, vb, mask, 32 ** -0.5)  # scores rounded to bf16 as well
    assert got.dtype == torch.bfloat16 and got.shape == q.shape
    assert (got.double() - want).abs().max() <= 1.5 * (whole.double() - want).abs().max() + 1e-3


def test_chunked_prefill_through_key_blocks_gives_the_reference_tokens(small_blocks, tiny_ckpt):
    """A 700-token prompt in chunks of 256: the later chunks (256 queries over up to 700 keys, 4 heads) are
    above BLOCKED_MIN_SCORES and attend in blocks; the greedy tokens equal the cache-free reference's."""
    model = load_model(tiny_ckpt, torch.float32)
    tok = Tokenizer(tiny_ckpt)
    prompt = torch.randint(10, 1000, (700,), generator=torch.Generator().manual_seed(1)).tolist()
    assert 256 * 700 * model.cfg.num_attention_heads >= attention.BLOCKED_MIN_SCORES
    sp = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    eng = LLMEngine(model, tok, [], EngineConfig(block_size=16, num_kv_blocks=64, max_num_batched_tokens=256))
    eng.add_request("long", prompt, sp)
    got = []
    while eng.has_unfinished():
        got += [t for o in eng.step() for t in o.new_token_ids]
    assert got == generate_batch(model, tok, [prompt], [sp], [])[0].token_ids
