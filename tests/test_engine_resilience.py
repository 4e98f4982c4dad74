"""One request can never stop the engine (issue 16 item 1).

The sampler is numerically safe for every value SamplingParams accepts (fuzzed), and a failure inside
an engine step ends only the requests of that step (or only the offending one), frees their blocks,
and the loop goes on serving: in the engine, the async loop and through a real server.
"""

from __future__ import annotations

import asyncio
import math

import anthropic
import openai
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minimax2 import SamplingParams
from minimax2.chat.tokenizer import Tokenizer
from minimax2.engine.async_engine import AsyncEngine, RequestFailed
from minimax2.engine.llm_engine import EngineConfig, LLMEngine
from minimax2.engine.sampler import make_generator, sample
from minimax2.model.loader import load_model
from server_support.http import get, post, wait_idle

pytest_plugins = ["server_support.fixtures"]

EXTREMES = [0.0, 5e-324, 1e-300, 1e-40, 1e-6, 1e-5, 0.5, 1.0, 2.0, 1e300, math.inf, -math.inf, math.nan, -1.0]
floats = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True))
ints = st.one_of(st.sampled_from([-1, 0, 1, 2, 40, 2**31, 2**63 - 1, 2**64 - 1, -2**63]), st.integers())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(temperature=floats, top_p=floats, top_k=ints, min_p=floats, repetition_penalty=floats,
       presence_penalty=floats, frequency_penalty=floats, seed=st.one_of(st.none(), ints),
       logprobs=st.one_of(st.none(), st.integers(-2, 25)), n=st.integers(1, 3),
       scale=st.sampled_from([1.0, 1e-30, 1e4, 3e38]), special=st.sampled_from([None, "inf", "-inf", "nan", "allneg"]))
def test_fuzzed_sampler_never_raises(temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty,
                                     frequency_penalty, seed, logprobs, n, scale, special):
    try:
        p = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, seed=seed,
                           repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                           frequency_penalty=frequency_penalty, logprobs=logprobs, n=n)
    except ValueError:
        return  # rejected up front: the server turns this into a 400
    vocab = 64
    logits = torch.randn(n, vocab) * scale
    if special == "inf":
        logits[:, 3] = math.inf
    elif special == "-inf":
        logits[:, ::2] = -math.inf
    elif special == "nan":
        logits[:, 5] = math.nan
    elif special == "allneg":
        logits = -logits.abs() - 1e30
    gens = [make_generator(p, offset=i) for i in range(n)]
    history = [([1, 2, 3, 4], [5, 5, 6])] * n
    tokens, infos = sample(logits, [p] * n, gens, history)
    assert all(0 <= t < vocab for t in tokens), tokens


def test_tiny_temperatures_are_greedy():
    logits = torch.randn(4, 100)
    for t in (5e-324, 1e-40, 1e-6):
        tokens, _ = sample(logits, [SamplingParams(temperature=t, seed=1)] * 4, [None] * 4)
        assert tokens == logits.argmax(-1).tolist()


@pytest.fixture
def engine(tiny_ckpt):
    model = load_model(tiny_ckpt, torch.float32)
    return LLMEngine(model, Tokenizer(tiny_ckpt), [], EngineConfig(block_size=4, num_kv_blocks=64,
                                                                    max_num_batched_tokens=32))


def _run(eng: LLMEngine) -> dict[str, list]:
    outs: dict[str, list] = {}
    while eng.has_unfinished():
        for o in eng.step():
            outs.setdefault(o.request_id, []).append(o)
    return outs


def test_failing_processor_ends_only_its_request(engine):
    def broken(_ids, _row):
        raise RuntimeError("grammar bug")

    sp = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    engine.add_request("good", [5, 6, 7, 8], sp)
    engine.add_request("bad", [5, 6, 7, 9], SamplingParams(max_tokens=6, temperature=0, ignore_eos=True,
                                                            logits_processors=[broken]))
    outs = _run(engine)
    assert outs["bad"][-1].finish_reason == "error" and isinstance(outs["bad"][-1].error, RuntimeError)
    assert outs["good"][-1].finish_reason == "length" and outs["good"][-1].completion_tokens == 6
    assert engine.block_manager.num_free_blocks == 64


def test_model_failure_ends_its_batch_and_the_engine_serves_on(engine):
    real, calls = engine.runner.run, []

    def fails_once(batch):  # a fault injected into one step (e.g. an allocation failure in a kernel)
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected fault")
        return real(batch)

    engine.runner.run = fails_once
    sp = SamplingParams(max_tokens=5, temperature=0, ignore_eos=True)
    engine.add_request("a", [1, 2, 3], sp)
    engine.add_request("b", [4, 5, 6], sp)
    outs = _run(engine)
    assert {o[-1].finish_reason for o in outs.values()} == {"error"}
    assert engine.block_manager.num_free_blocks == 64 and not engine.requests
    engine.add_request("c", [1, 2, 3], sp)
    assert _run(engine)["c"][-1].finish_reason == "length"


def test_async_loop_survives_a_failed_step(engine):
    aeng = AsyncEngine(engine)
    real, calls = engine.runner.run, []

    def fails_once(batch):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected fault")
        return real(batch)

    engine.runner.run = fails_once

    async def collect(rid):
        n = 0
        async for o in aeng.add_request(rid, [1, 2, 3], SamplingParams(max_tokens=4, temperature=0, ignore_eos=True)):
            n = o.completion_tokens
        return n

    try:
        with pytest.raises(RequestFailed, match="injected fault"):
            asyncio.run(collect("first"))
        assert aeng.alive
        assert asyncio.run(collect("second")) == 4
    finally:
        aeng.shutdown()


# -- the exact requests that stopped the server -----------------------------------------------------
@pytest.mark.parametrize("temperature", [1e-40, 5e-324])
def test_tiny_temperature_is_served_on_every_route(server, temperature):
    body = {"model": "tiny", "max_tokens": 4, "temperature": temperature}
    chat = post(server.url + "/v1/chat/completions", {**body, "messages": [{"role": "user", "content": "hi"}]})
    comp = post(server.url + "/v1/completions", {**body, "prompt": "hi"})
    msgs = post(server.url + "/v1/messages", {**body, "messages": [{"role": "user", "content": "hi"}]})
    assert [chat[0], comp[0], msgs[0]] == [200, 200, 200], (chat[1], comp[1], msgs[1])
    assert get(server.url + "/health")[0] == 200


def test_tiny_repetition_penalty_is_a_400_and_nothing_breaks(server):
    status, body, _ = post(server.url + "/v1/chat/completions", {
        "model": "tiny", "max_tokens": 4, "repetition_penalty": 1e-300,
        "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and "repetition_penalty" in body["error"]["message"]
    status, body, _ = post(server.url + "/v1/messages", {
        "model": "tiny", "max_tokens": 4, "repetition_penalty": 1e-300,
        "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and body["type"] == "error"
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert r.choices[0].finish_reason in ("stop", "length")


def test_injected_step_failure_leaves_the_server_answering(server):
    backend = server.app.state.server.backend
    start = wait_idle(backend)["free_blocks"]
    runner = backend.aengine.engine.runner
    real = runner.run

    def fails_once(batch):
        runner.run = real
        raise RuntimeError("injected fault")

    runner.run = fails_once
    try:
        client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, timeout=60)
        with pytest.raises(anthropic.InternalServerError, match="injected fault"):
            client.messages.create(model="tiny", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    finally:
        runner.run = real
    assert get(server.url + "/health")[0] == 200
    msg = client.messages.create(model="tiny", max_tokens=4, messages=[{"role": "user", "content": "again"}])
    assert msg.usage.output_tokens > 0
    wait_idle(backend, free_blocks=start)
