"""The paged engine against the reference loop and transformers: arrival order, chunking, prefix
cache, preemption, seeds, abort, n > 1, logprobs."""

from __future__ import annotations

import pytest
import torch

from minimax2 import SamplingParams
from engine_support import generate_batch
from minimax2.engine.llm_engine import EngineConfig, LLMEngine
from minimax2.model.loader import load_model
from minimax2.chat.tokenizer import Tokenizer

TEXTS = ["Once upon a time there was a small model that", "def add(a, b):\n    return", "東京 is a city",
         "The quick brown fox jumps over the lazy dog and then the dog", "Let me think step by step about this"]


@pytest.fixture(scope="module")
def parts(tiny_ckpt):
    model = load_model(tiny_ckpt, torch.float32)
    tok = Tokenizer(tiny_ckpt)
    return model, tok, [tok.encode(t) for t in TEXTS]


def greedy(n):
    return SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)


def run(engine, schedule):
    """schedule: {step: [(rid, ids, params)]}; returns {rid: [token ids of completion 0..n-1]}."""
    out, step = {}, 0
    while engine.has_unfinished() or any(k >= step for k in schedule):
        for rid, ids, sp in schedule.get(step, []):
            engine.add_request(rid, ids, sp)
        for o in engine.step():
            out.setdefault(o.request_id, {}).setdefault(o.index, []).extend(o.new_token_ids)
        step += 1
    return {rid: [v[k] for k in sorted(v)] for rid, v in out.items()}


def reference(model, tok, ids, sp):
    return generate_batch(model, tok, [ids], [sp], [])[0].token_ids


def test_mixed_arrivals_and_chunked_prefill_match_reference(parts):
    model, tok, prompts = parts
    lens = [12, 5, 20, 9, 15]
    want = [reference(model, tok, p, greedy(n)) for p, n in zip(prompts, lens)]
    for budget in (512, 7):  # 7: prompts are prefilled in chunks, beside running decodes
        engine = LLMEngine(model, tok, [], EngineConfig(block_size=4, max_num_batched_tokens=budget, num_kv_blocks=200))
        sched = {0: [("a", prompts[0], greedy(12)), ("b", prompts[1], greedy(5))],
                 3: [("c", prompts[2], greedy(20))], 4: [("d", prompts[3], greedy(9))], 11: [("e", prompts[4], greedy(15))]}
        got = run(engine, sched)
        assert [got[r][0] for r in "abcde"] == want, f"budget {budget}"
        assert engine.block_manager.num_free_blocks == 200


def test_matches_transformers(parts, tiny_ckpt):
    from transformers import MiniMaxM2ForCausalLM

    model, tok, prompts = parts
    ref = MiniMaxM2ForCausalLM.from_pretrained(tiny_ckpt, dtype=torch.float32).eval()
    engine = LLMEngine(model, tok, [], EngineConfig(block_size=4, max_num_batched_tokens=9, num_kv_blocks=100))
    got = run(engine, {0: [(str(i), p, greedy(10)) for i, p in enumerate(prompts[:3])]})
    for i, p in enumerate(prompts[:3]):
        with torch.no_grad():
            want = ref.generate(torch.tensor([p]), max_new_tokens=10, min_new_tokens=10, do_sample=False)[0, len(p):]
        assert got[str(i)][0] == want.tolist()


def test_prefix_hit_gives_the_same_tokens(parts):
    model, tok, _ = parts
    shared = tok.encode("You are a helpful assistant. " * 6)
    a, b = shared + tok.encode(" First question?"), shared + tok.encode(" Second one!")
    cold = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=100, enable_prefix_caching=False))
    want = run(cold, {0: [("b", b, greedy(8))]})["b"]
    warm = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=100))
    run(warm, {0: [("a", a, greedy(8))]})
    bm = warm.block_manager
    hits_before = bm.prefix_hits
    got = run(warm, {0: [("b", b, greedy(8))]})["b"]
    assert bm.prefix_hits - hits_before >= (len(shared) // 4 - 1) * 4
    assert got == want


def test_reset_prefix_cache_makes_the_next_prompt_cold_and_keeps_its_tokens(parts):
    model, tok, _ = parts
    prompt = tok.encode("You are a helpful assistant. " * 6)
    eng = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=100))
    first = run(eng, {0: [("a", prompt, greedy(6))]})["a"]
    bm = eng.block_manager
    hits = bm.prefix_hits
    assert run(eng, {0: [("b", prompt, greedy(6))]})["b"] == first
    assert bm.prefix_hits - hits == (len(prompt) - 1) // 4 * 4  # served from the cache
    dropped = eng.reset_prefix_cache()
    assert dropped >= (len(prompt) - 1) // 4 and not bm.cached
    hits = bm.prefix_hits
    assert run(eng, {0: [("c", prompt, greedy(6))]})["c"] == first
    assert bm.prefix_hits == hits  # computed in full
    assert eng.reset_prefix_cache() > 0 and eng.reset_prefix_cache() == 0


def test_reset_prefix_cache_leaves_the_blocks_of_running_requests(parts):
    model, tok, _ = parts
    prompt = tok.encode("Shared system prompt, long enough for blocks. " * 3)
    eng = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=100))
    eng.add_request("live", prompt, greedy(50))
    eng.step()  # prefilled and committed; still decoding
    eng.reset_prefix_cache()
    hits = eng.block_manager.prefix_hits
    got = run(eng, {0: [("twin", prompt, greedy(3))]})
    assert eng.block_manager.prefix_hits - hits == (len(prompt) - 1) // 4 * 4  # the live blocks still serve
    assert len(got["live"][0]) == 49 and len(got["twin"][0]) == 3


def test_preemption_under_a_tiny_cache(parts):
    model, tok, prompts = parts
    want = [reference(model, tok, p, greedy(16)) for p in prompts]
    engine = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=16, max_num_batched_tokens=16))
    got = run(engine, {0: [(str(i), p, greedy(16)) for i, p in enumerate(prompts)]})
    assert engine.scheduler.num_preemptions > 0
    assert [got[str(i)][0] for i in range(len(prompts))] == want
    assert engine.block_manager.num_free_blocks == 16


def test_a_request_larger_than_the_cache_is_an_error_not_a_hang(parts):
    model, tok, prompts = parts
    engine = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=4, max_num_batched_tokens=64))
    with pytest.raises(ValueError, match="needs up to 20 tokens of KV cache but the whole cache holds 16"):
        engine.add_request("x", prompts[3][:12], greedy(8))
    engine.add_request("y", prompts[3][:12], greedy(4))  # exactly fits
    while engine.has_unfinished():
        engine.step()
    assert engine.block_manager.num_free_blocks == 4


def test_seeded_sampling_ignores_batch_mates(parts):
    model, tok, prompts = parts
    sp = SamplingParams(max_tokens=12, temperature=0.9, top_k=30, min_p=0.01, seed=7, ignore_eos=True)
    alone = run(LLMEngine(model, tok, [], EngineConfig(num_kv_blocks=64)), {0: [("s", prompts[1], sp)]})["s"][0]
    noisy = SamplingParams(max_tokens=20, temperature=1.0, ignore_eos=True)
    busy = LLMEngine(model, tok, [], EngineConfig(num_kv_blocks=64, max_num_batched_tokens=8))
    got = run(busy, {0: [("x", prompts[0], noisy)], 2: [("s", prompts[1], sp)], 3: [("y", prompts[2], noisy)]})
    assert got["s"][0] == alone


def test_abort_frees_everything(parts):
    model, tok, prompts = parts
    engine = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=64, max_num_batched_tokens=8))
    for i, p in enumerate(prompts):
        engine.add_request(str(i), p, greedy(50))
    for _ in range(6):
        engine.step()
    assert engine.block_manager.num_free_blocks < 64
    for i in range(len(prompts)):
        assert engine.abort(str(i))
    assert engine.block_manager.num_free_blocks == 64 and not engine.has_unfinished()
    assert not engine.abort("nope")


def test_n_completions_share_the_prompt(parts):
    model, tok, _ = parts
    prompt = tok.encode("A long shared prompt with several full blocks in it, for sure. " * 2)
    engine = LLMEngine(model, tok, [], EngineConfig(block_size=4, num_kv_blocks=100))
    sp = SamplingParams(max_tokens=10, temperature=1.0, seed=3, n=3, ignore_eos=True)
    got = run(engine, {0: [("r", prompt, sp)]})["r"]
    assert len(got) == 3 and all(len(g) == 10 for g in got) and len({tuple(g) for g in got}) > 1
    assert engine.block_manager.prefix_hits >= 2 * ((len(prompt) - 1) // 4) * 4
    assert engine.block_manager.num_free_blocks == 100


def test_logprobs(parts):
    model, tok, prompts = parts
    engine = LLMEngine(model, tok, [], EngineConfig(num_kv_blocks=64))
    engine.add_request("l", prompts[0], SamplingParams(max_tokens=3, temperature=0, logprobs=5, ignore_eos=True))
    infos = []
    while engine.has_unfinished():
        for o in engine.step():
            infos.extend(o.logprobs)
    assert len(infos) == 3
    for info in infos:
        assert len(info["top"]) == 5 and info["top"][0][0] == info["token_id"]
        assert info["logprob"] == pytest.approx(info["top"][0][1]) and info["logprob"] <= 0


def test_penalties_change_greedy_and_follow_their_definition():
    from minimax2.engine.sampler import apply_penalties

    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    sp = SamplingParams(repetition_penalty=2.0, presence_penalty=0.5, frequency_penalty=0.25)
    out = apply_penalties(logits, sp, prompt_ids=[0], output_ids=[1, 1, 3])
    assert out.tolist() == pytest.approx([1.0, -2.0 - 0.5 - 0.5, 0.5, 1.5 - 0.5 - 0.25])


def test_request_errors(parts):
    model, tok, _ = parts
    engine = LLMEngine(model, tok, [], EngineConfig(num_kv_blocks=8, max_model_len=32))
    for ids, msg in (([], "empty prompt"), ([1, 99999], "outside the vocabulary"), ([5] * 32, "context is 32")):
        with pytest.raises(ValueError, match=msg):
            engine.add_request("x", ids, greedy(2))
    engine.add_request("x", [5] * 30, greedy(10))
    with pytest.raises(ValueError, match="already running"):
        engine.add_request("x", [5], greedy(2))
    outs = []
    while engine.has_unfinished():
        outs.extend(engine.step())
    assert outs[-1].finish_reason == "length" and outs[-1].completion_tokens == 2  # clipped by the context


def test_logits_processor_constrains_every_step(parts):
    model, tok, prompts = parts
    allowed = torch.tensor([7, 11, 13])
    seen = []

    def only_three(out_ids, logits):
        seen.append(len(out_ids))
        mask = torch.full_like(logits, float("-inf"))
        mask[allowed] = 0
        return logits + mask

    engine = LLMEngine(model, tok, [], EngineConfig(num_kv_blocks=64))
    sp = SamplingParams(max_tokens=6, temperature=1.0, seed=0, ignore_eos=True, logits_processors=[only_three])
    got = run(engine, {0: [("c", prompts[0], sp)]})["c"][0]
    assert set(got) <= {7, 11, 13} and seen == list(range(6))


def test_stop_reason_and_a_fully_masked_row(parts):
    model, tok, prompts = parts
    full = LLMEngine(model, tok, [], EngineConfig(num_kv_blocks=64))
    text = ""
    full.add_request("t", prompts[0], greedy(12))
    while full.has_unfinished():
        text += "".join(o.text for o in full.step())
    engine = LLMEngine(model, tok, [], EngineConfig(num_kv_blocks=64))
    stop = text[4:7]
    engine.add_request("s", prompts[0], SamplingParams(max_tokens=12, temperature=0, stop=["zzz", stop], ignore_eos=True))
    engine.add_request("m", prompts[1], SamplingParams(max_tokens=5, logits_processors=[lambda ids, l: l * 0 - float("inf")]))
    last = {}
    while engine.has_unfinished():
        for o in engine.step():
            last[o.request_id] = o
    assert last["s"].finish_reason == "stop" and last["s"].stop_reason == stop
    assert last["m"].finish_reason == "stop" and last["m"].completion_tokens == 0
