"""AsyncEngine: concurrent streams equal the offline results; disconnects and aborts free the cache."""

from __future__ import annotations

import asyncio

import pytest
import torch

from minimax2 import SamplingParams
from minimax2.chat.tokenizer import Tokenizer
from minimax2.engine.async_engine import AsyncEngine
from engine_support import generate_batch
from minimax2.engine.llm_engine import EngineConfig, LLMEngine
from minimax2.model.loader import load_model


@pytest.fixture
def aengine(tiny_ckpt):
    model = load_model(tiny_ckpt, torch.float32)
    tok = Tokenizer(tiny_ckpt)
    eng = AsyncEngine(LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=128, max_num_batched_tokens=16)))
    yield eng, model, tok
    eng.shutdown()


async def collect(eng, rid, ids, sp):
    toks, text, last = [], "", None
    async for o in eng.add_request(rid, ids, sp):
        toks += o.new_token_ids
        text += o.text
        last = o
    return toks, text, last


def test_concurrent_streams_match_reference(aengine):
    eng, model, tok = aengine
    prompts = [tok.encode(f"Request number {i} says hello" * (1 + i % 3)) for i in range(8)]
    sp = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)

    async def main():
        return await asyncio.gather(*(collect(eng, f"r{i}", p, sp) for i, p in enumerate(prompts)))

    results = asyncio.run(main())
    ref = generate_batch(model, tok, prompts, [sp] * len(prompts), [])
    for (toks, text, last), r in zip(results, ref):
        assert toks == r.token_ids and text == r.text
        assert last.finish_reason == "length" and last.completion_tokens == 10
    assert eng.engine.block_manager.num_free_blocks == 128


def test_disconnect_aborts_and_frees(aengine):
    eng, _, tok = aengine

    async def main():
        gen = eng.add_request("d", tok.encode("a prompt to abandon"), SamplingParams(max_tokens=400, ignore_eos=True))
        n = 0
        async for _ in gen:
            n += 1
            if n == 3:
                break
        await gen.aclose()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not eng.engine.has_unfinished():
                break

    asyncio.run(main())
    assert not eng.engine.has_unfinished()
    assert eng.engine.block_manager.num_free_blocks == 128


def test_rejected_request_raises_in_the_stream(aengine):
    eng, _, _ = aengine

    async def main():
        with pytest.raises(ValueError, match="empty prompt"):
            await collect(eng, "bad", [], SamplingParams())

    asyncio.run(main())
    assert eng.alive
