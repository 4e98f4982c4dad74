"""The offline LLM API: batching, sampling, stop conditions, chat, errors, and the CLI around it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minimax2 import SamplingParams
from minimax2.chat import parse_output

PROMPTS = ["Once upon a time", "def add(a, b):", "東京", "The quick brown fox jumps over the lazy dog and"]


def _greedy(n):
    return SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)


def test_batch_equals_one_by_one(tiny_llm):
    """Sequences of different lengths that finish at different steps do not disturb each other."""
    params = [_greedy(n) for n in (5, 17, 9, 12)]
    batch = tiny_llm.generate(PROMPTS, params)
    for p, sp, b in zip(PROMPTS, params, batch):
        alone = tiny_llm.generate([p], sp)[0]
        assert b.outputs[0].token_ids == alone.outputs[0].token_ids
        assert len(b.outputs[0].token_ids) == sp.max_tokens and b.outputs[0].finish_reason == "length"
        assert b.outputs[0].text == tiny_llm.tokenizer.decode(b.outputs[0].token_ids, skip_special_tokens=True)


def test_token_id_prompts(tiny_llm):
    ids = tiny_llm.tokenizer.encode(PROMPTS[0])
    a = tiny_llm.generate([ids], _greedy(8))[0]
    b = tiny_llm.generate(PROMPTS[0], _greedy(8))[0]
    assert a.prompt_token_ids == ids and a.prompt is None and b.prompt == PROMPTS[0]
    assert a.outputs[0].token_ids == b.outputs[0].token_ids


def test_reset_prefix_cache_recomputes_the_next_prompt(tiny_llm):
    prompt = " ".join(PROMPTS) * 3  # several full blocks
    bm = tiny_llm.engine.block_manager
    first = tiny_llm.generate(prompt, _greedy(4))[0].outputs[0].token_ids
    hits = bm.prefix_hits
    assert tiny_llm.generate(prompt, _greedy(4))[0].outputs[0].token_ids == first and bm.prefix_hits > hits
    assert tiny_llm.reset_prefix_cache() > 0
    hits = bm.prefix_hits
    assert tiny_llm.generate(prompt, _greedy(4))[0].outputs[0].token_ids == first and bm.prefix_hits == hits


def test_seed_reproducible_whatever_the_batch(tiny_llm):
    sp = SamplingParams(max_tokens=16, temperature=1.0, top_p=0.9, top_k=50, seed=1234, ignore_eos=True)
    alone = tiny_llm.generate([PROMPTS[1]], sp)[0].outputs[0].token_ids
    mates = [SamplingParams(max_tokens=n, temperature=1.0, ignore_eos=True) for n in (3, 20)]
    mixed = tiny_llm.generate([PROMPTS[0], PROMPTS[1], PROMPTS[2]], [mates[0], sp, mates[1]])
    assert mixed[1].outputs[0].token_ids == alone
    other = tiny_llm.generate([PROMPTS[1]], SamplingParams(**{**sp.__dict__, "seed": 99}))[0].outputs[0].token_ids
    assert other != alone


def test_degenerate_sampling_is_greedy(tiny_llm):
    want = tiny_llm.generate([PROMPTS[3]], _greedy(10))[0].outputs[0].token_ids
    for sp in (SamplingParams(max_tokens=10, temperature=0.7, top_k=1, ignore_eos=True),
               SamplingParams(max_tokens=10, temperature=0.7, top_p=1e-6, ignore_eos=True)):
        assert tiny_llm.generate([PROMPTS[3]], sp)[0].outputs[0].token_ids == want


def test_stop_string_and_stop_token(tiny_llm):
    full = tiny_llm.generate([PROMPTS[0]], _greedy(24))[0].outputs[0]
    stop = full.text[6:9]
    assert stop and stop in full.text
    cut = tiny_llm.generate([PROMPTS[0]], SamplingParams(max_tokens=24, temperature=0, stop=[stop], ignore_eos=True))[0]
    assert cut.outputs[0].finish_reason == "stop"
    assert cut.outputs[0].text == full.text[: full.text.find(stop)]
    tok = full.token_ids[4]
    by_id = tiny_llm.generate([PROMPTS[0]], SamplingParams(max_tokens=24, temperature=0, stop_token_ids=[tok],
                                                           ignore_eos=True))[0].outputs[0]
    assert by_id.finish_reason == "stop" and by_id.token_ids == full.token_ids[: full.token_ids.index(tok)]


def test_streaming_deltas_add_up(tiny_llm):
    deltas = {}
    outs = tiny_llm.generate(PROMPTS[:2], _greedy(12), on_delta=lambda i, d: deltas.setdefault(i, []).append(d))
    for i, o in enumerate(outs):
        assert "".join(deltas.get(i, [])) == o.outputs[0].text


def test_chat_renders_and_parses(tiny_llm):
    messages = [{"role": "user", "content": "What is 2+2?"}]
    reply = tiny_llm.chat(messages, sampling_params=_greedy(12))
    assert reply.prompt.endswith("]~b]ai\n<think>\n") and "What is 2+2?" in reply.prompt
    assert reply.prompt_tokens == len(tiny_llm.tokenizer.encode(reply.prompt)) and reply.completion_tokens == 12
    want = parse_output(reply.text)  # the reply is the raw generation, split by the one output parser
    assert (reply.reasoning, reply.content, reply.tool_calls) == (want.reasoning, want.content, [])
    assert reply.text == tiny_llm.tokenizer.decode(
        tiny_llm.generate([reply.prompt], _greedy(12))[0].outputs[0].token_ids, skip_special_tokens=True)


@pytest.mark.parametrize("kw, msg", [
    (dict(max_tokens=0), "max_tokens"), (dict(temperature=-1), "temperature"),
    (dict(top_p=0), "top_p"), (dict(top_k=-5), "top_k")])
def test_sampling_params_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        SamplingParams(**kw)


def test_bad_prompts(tiny_llm):
    with pytest.raises(ValueError, match="prompt 0: empty prompt"):
        tiny_llm.generate([[]], _greedy(2))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny_llm.generate([[1, 10**6]], _greedy(2))
    with pytest.raises(ValueError, match="4096"):
        tiny_llm.generate([[5] * 5000], _greedy(2))


def test_cli_generate_streams(tiny_ckpt):
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "generate", "-m", str(tiny_ckpt), "-p", "Once upon",
                        "--max-tokens", "8", "--temperature", "0", "--dtype", "float32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "8 generated tokens" in r.stderr and r.stdout.strip()
