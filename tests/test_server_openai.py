"""The OpenAI API of a real server (tiny random model) through the official `openai` SDK."""

from __future__ import annotations

import json

import openai
import pytest

from server_support.http import get, post

pytest_plugins = ["server_support.fixtures"]

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]},
                                                            "days": {"type": "integer"},
                                                            "unit": {"type": "string", "enum": ["c", "f"]}},
                           "required": ["days", "unit"]}}}]
NO_THINK = {"chat_template_kwargs": {"enable_thinking": False}}


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)


def ask(client, stream=False, **kw):
    args = dict(model="tiny", messages=[{"role": "user", "content": "What is the weather in Paris?"}], max_tokens=12,
                seed=7, stream=stream)
    args.update(kw)
    return client.chat.completions.create(**args)


def test_models_health_version(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert get(server.url + "/health")[0] == 200
    status, body = get(server.url + "/version")
    assert status == 200 and json.loads(body)["backend"] == "local"


def test_chat_non_streaming(client):
    r = ask(client)
    c = r.choices[0]
    assert r.id.startswith("chatcmpl-") and r.model == "tiny" and r.object == "chat.completion"
    assert c.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    extra = c.message.model_extra
    assert extra["reasoning_content"] == extra["reasoning"]  # a random model never closes </think>: all reasoning


def test_chat_streaming_equals_non_streaming(client):
    full = ask(client, max_tokens=20).choices[0]
    chunks = list(ask(client, stream=True, max_tokens=20, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    reasoning = "".join((ch.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for ch in chunks if ch.choices)
    content = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert reasoning == (full.message.model_extra["reasoning_content"] or "")
    assert content == (full.message.content or "")
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == [full.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_named_tool_choice_forces_that_call(client):
    r = ask(client, tools=WEATHER, tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=120, extra_body=NO_THINK)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls", repr(c.message.content)
    call = c.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.id.startswith("call_") and len(call.id) == 29
    args = json.loads(call.function.arguments)
    assert isinstance(args["days"], int) and args["unit"] in ("c", "f")


def test_streamed_tool_call_deltas(client):
    kw = dict(tools=WEATHER, tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=120,
              extra_body=NO_THINK, seed=21)
    full = ask(client, **kw).choices[0]
    deltas = [c.choices[0].delta.tool_calls for c in ask(client, stream=True, **kw) if c.choices and
              c.choices[0].delta.tool_calls]
    first = deltas[0][0]
    assert first.index == 0 and first.id.startswith("call_") and first.type == "function"
    assert first.function.name == "get_weather"
    args = "".join(d[0].function.arguments or "" for d in deltas)
    assert args == full.message.tool_calls[0].function.arguments
    assert all(d[0].id is None for d in deltas[1:])


def test_two_turn_tool_round_trip_keeps_reasoning(client, prompt_log):
    first = ask(client, tools=WEATHER, tool_choice="required", parallel_tool_calls=False, max_tokens=150,
                extra_body={"thinking_budget": 6}).choices[0]
    assert first.finish_reason == "tool_calls"
    reasoning = first.message.model_extra["reasoning_content"]
    assert reasoning
    call = first.message.tool_calls[0]
    history = [{"role": "user", "content": "What is the weather in Paris?"},
               {"role": "assistant", "content": first.message.content, "reasoning_content": reasoning,
                "tool_calls": [{"id": call.id, "type": "function",
                                "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
               {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    prompt_log.clear()
    second = client.chat.completions.create(model="tiny", messages=history, tools=WEATHER, max_tokens=4, seed=1)
    assert second.choices[0].finish_reason in ("stop", "length", "tool_calls")
    prompt = prompt_log[-1]
    assert f"]~b]ai\n<think>\n{reasoning}\n</think>\n\n" in prompt  # the current agent turn keeps its thinking
    assert '<invoke name="get_weather">' in prompt and "<response>sunny, 21 C</response>" in prompt


def test_structured_output_follows_schema(client):
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "green"]}, "ok": {"type": "boolean"},
                                               "n": {"type": "integer", "minimum": 0, "maximum": 9}},
              "required": ["color", "ok", "n"], "additionalProperties": False}
    r = ask(client, max_tokens=60, n=3, response_format={"type": "json_schema",
                                                         "json_schema": {"name": "s", "schema": schema}},
            extra_body=NO_THINK)
    for choice in r.choices:  # each of the n sequences has its own grammar state
        value = json.loads(choice.message.content)
        assert set(value) == {"color", "ok", "n"} and value["color"] in ("red", "green")
        assert isinstance(value["ok"], bool) and isinstance(value["n"], int) and 0 <= value["n"] <= 9


@pytest.mark.parametrize("form", ["reasoning_content", "reasoning", "reasoning_details", "think_tag"])
def test_previous_reasoning_forms_are_rendered(client, prompt_log, form):
    said = "I should greet back."
    turn = {"role": "assistant", "content": "Hello!"}
    if form == "think_tag":
        turn["content"] = f"<think>{said}</think>Hello!"
    elif form == "reasoning_details":
        turn["reasoning_details"] = [{"type": "reasoning.text", "text": said}]
    else:
        turn[form] = said
    msgs = [{"role": "user", "content": "hi"}, turn]
    client.chat.completions.create(model="tiny", messages=msgs, max_tokens=1)
    assert f"<think>\n{said}\n</think>\n\nHello!" in prompt_log[-1]


def test_reasoning_split(client):
    r = ask(client, max_tokens=5, extra_body={"reasoning_split": True})
    details = r.choices[0].message.model_extra["reasoning_details"]
    assert details[0]["text"] == r.choices[0].message.model_extra["reasoning_content"]


def test_n_and_logprobs(client):
    r = ask(client, n=2, logprobs=True, top_logprobs=2, max_tokens=4)
    assert [c.index for c in r.choices] == [0, 1]
    lp = r.choices[0].logprobs.content
    assert len(lp) >= 1 and len(lp[0].top_logprobs) == 2 and lp[0].logprob <= 0


def test_completions(client):
    r = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5, seed=3, temperature=0,
                                  logprobs=2)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens <= 5
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == r.usage.completion_tokens
    assert all(1 <= len(top) <= 2 for top in lp.top_logprobs)  # a dict by text: equal texts merge
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=5, seed=3, temperature=0, stream=True) if c.choices)
    assert streamed == r.choices[0].text


def test_errors_have_openai_shape(server, client):
    url = server.url + "/v1/chat/completions"
    status, body, _ = post(url, b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body, _ = post(url, {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"})
    assert status == 400 and "temperature" in body["error"]["message"]
    with pytest.raises(openai.NotFoundError) as e:
        ask(client, model="nope")
    assert "nope" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, messages=[{"role": "user", "content": "word " * 3000}])
    msg = e.value.body["message"]
    assert "1024" in msg and any(ch.isdigit() for ch in msg.replace("1024", ""))
    status, body, _ = post(url, {"model": "tiny", "messages": [{"role": "assistant", "content": "",
                                 "tool_calls": [{"id": "c", "type": "function",
                                                 "function": {"name": "f", "arguments": "{bad"}}]}]})
    assert status == 400 and "messages[0]" in body["error"]["message"]
    status, body, _ = post(url, b"x" * (2**20 + 10))
    assert status == 413 and "error" in body


def test_metrics_use_vllm_names(server, client):
    ask(client, max_tokens=2)
    status, text = get(server.url + "/metrics")
    text = text.decode()
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:prefix_cache_queries_total",
                 "vllm:prefix_cache_hits_total", "vllm:time_to_first_token_seconds_bucket",
                 "vllm:inter_token_latency_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket",
                 "minimax2:num_requests_running"):
        assert name in text, name


def test_structured_output_greedy_n_identical_histories(client):
    """n sequences with the same history (greedy) share, then split, grammar state correctly."""
    r = ask(client, max_tokens=40, n=2, temperature=0, response_format={"type": "json_object"}, extra_body=NO_THINK)
    outs = [c.message.content for c in r.choices]
    assert outs[0] == outs[1]
    for o in outs:
        if r.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(o), dict)
        else:
            assert o.startswith("{")
