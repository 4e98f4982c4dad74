"""The Anthropic Messages API of a real server (tiny random model) through the official `anthropic` SDK."""

from __future__ import annotations

import anthropic
import pytest

from server_support.http import post

pytest_plugins = ["server_support.fixtures"]

TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]},
                                                            "days": {"type": "integer"}},
                           "required": ["city", "days"]}}]
USER = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture()
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key="none", max_retries=0, timeout=60)


def test_message_non_streaming(client):
    r = client.messages.create(model="tiny", max_tokens=10, messages=USER, extra_body={"temperature": 0.7})
    assert r.id.startswith("msg_") and r.role == "assistant" and r.model == "tiny"
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert r.usage.input_tokens > 5 and 0 < r.usage.output_tokens <= 10
    assert r.content[0].type == "thinking" and r.content[0].signature  # random text never closes </think>


def test_streaming_events_assemble_to_the_message(client):
    kw = dict(model="tiny", max_tokens=16, messages=USER, metadata={"user_id": "u"}, extra_body={"seed": 3, "top_k": 5})
    with client.messages.stream(**kw) as stream:
        kinds = [ev.type for ev in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0
    thinking = [b for b in final.content if b.type == "thinking"]
    assert thinking and thinking[0].signature


def test_tool_choice_tool_and_round_trip_with_signed_thinking(client):
    r = client.messages.create(model="tiny", max_tokens=80, messages=USER, tools=TOOLS,
                               tool_choice={"type": "tool", "name": "get_weather"},
                               thinking={"type": "enabled", "budget_tokens": 5})
    assert r.stop_reason == "tool_use"
    kinds = [b.type for b in r.content]
    assert kinds[0] == "thinking" and kinds[-1] == "tool_use"
    use = r.content[-1]
    assert use.id.startswith("toolu_") and use.name == "get_weather"
    assert use.input["city"] in ("Paris", "Oslo") and isinstance(use.input["days"], int)
    history = USER + [{"role": "assistant", "content": [b.model_dump() for b in r.content]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}]
    again = client.messages.create(model="tiny", max_tokens=3, messages=history, tools=TOOLS)
    assert again.stop_reason in ("end_turn", "max_tokens", "tool_use")
    forged = [dict(b) for b in history[1]["content"]]
    forged[0] = {**forged[0], "signature": "AAAA"}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="tiny", max_tokens=3, tools=TOOLS,
                               messages=[USER[0], {"role": "assistant", "content": forged}, history[2]])
    assert "signature" in str(e.value)


def test_thinking_disabled_has_no_thinking_block(client):
    r = client.messages.create(model="tiny", max_tokens=6, messages=USER, thinking={"type": "disabled"})
    assert all(b.type != "thinking" for b in r.content)


def test_count_tokens(client):
    n = client.messages.count_tokens(model="tiny", messages=USER).input_tokens
    more = client.messages.count_tokens(model="tiny", messages=USER, system="Be brief.", tools=TOOLS).input_tokens
    assert 5 < n < more


def test_errors_have_anthropic_shape(server, client):
    url = server.url + "/v1/messages"
    status, body, _ = post(url, {"model": "tiny", "messages": USER})  # no max_tokens
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    status, body, _ = post(url, b"{oops")
    assert status == 400 and body["type"] == "error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="other", max_tokens=5, messages=USER)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="tiny", max_tokens=5, messages=[{"role": "user", "content": "word " * 3000}])
    assert "1024" in str(e.value)
    status, body, _ = post(url, {"model": "tiny", "max_tokens": 5,
                                 "messages": [{"role": "critic", "content": "unknown roles become user"}]})
    assert status == 200


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_stop_sequence(client, seed):
    stops = ["zz", "e", "a"]
    r = client.messages.create(model="tiny", max_tokens=200, messages=USER, stop_sequences=stops,
                               thinking={"type": "disabled"}, extra_body={"seed": seed})
    text = r.content[0].text
    assert not any(s in text for s in stops)
    if r.stop_reason == "stop_sequence":  # which one: the one the unstopped generation shows next
        free = client.messages.create(model="tiny", max_tokens=200, messages=USER, thinking={"type": "disabled"},
                                      extra_body={"seed": seed}).content[0].text
        assert free.startswith(text) and r.stop_sequence in stops
        assert free[len(text):].lstrip().startswith(r.stop_sequence)  # (content is stripped of whitespace)
