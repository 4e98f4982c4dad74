"""The OpenAI Responses API of a real server, through the official `openai` SDK and the
`openai-agents` SDK (whose default transport it is).

Two servers: the tiny random model (shapes, usage, streaming, store, structured output), and a
`RemoteBackend` in front of a scripted engine that emits fixed M2 outputs (a tool call, then an
answer), so tool round trips and the agent loop are deterministic."""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
import urllib.request
from typing import Literal

import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from server_support import ServerThread
from server_support.http import get, post
from server_support.scripted_engine import FAIL, PIECE, ScriptedEngine

pytest_plugins = ["server_support.fixtures"]

THOUGHT = "The user wants the weather; I call the tool."
ANSWER = "It is sunny in Paris, 21 °C."
SCRIPT = [
    f'{THOUGHT}</think>\n\n<minimax:tool_call>\n<invoke name="get_weather">\n'
    '<parameter name="city">Paris</parameter>\n</invoke>\n</minimax:tool_call>',
    f"The tool says sunny, 21 C.</think>\n\n{ANSWER}",
]
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
Q = "What is the weather in Paris?"


class Pick(pydantic.BaseModel):
    color: Literal["red", "green"]
    ok: bool


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)


@contextmanager
def scripted_front(ckpt, script: list[str]):
    """A real server (`RemoteBackend`, served as "m2") in front of a scripted engine."""
    from minimax2.server.app import create_app
    from minimax2.server.backends import RemoteBackend
    from minimax2.server.service import ServerConfig

    with ScriptedEngine(script, tokenizer=ckpt) as engine:
        app = create_app(RemoteBackend(ckpt, engine.url, model="scripted"), ServerConfig(served_model_name="m2"))
        with ServerThread(app) as front:
            front.engine = engine
            front.client = openai.OpenAI(base_url=front.url + "/v1", api_key="none", max_retries=0, timeout=60)
            yield front


@pytest.fixture(scope="module")
def scripted(tiny_ckpt):
    with scripted_front(tiny_ckpt, SCRIPT) as front:
        yield front


def strictly_valid(url: str, body: dict) -> list[str]:
    """Every streamed event and the non-streaming response validate strictly against the SDK's types
    (the SDK itself parses leniently, so a missing required field would go unnoticed)."""
    events = pydantic.TypeAdapter(ResponseStreamEvent)
    kinds = []
    req = urllib.request.Request(url + "/v1/responses", data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        for line in r:
            if line.startswith(b"data: "):
                kinds.append(events.validate_python(json.loads(line[6:])).type)
    status, created, _ = post(url + "/v1/responses", body)
    assert status == 200
    Response.model_validate(created)
    status, raw = get(f"{url}/v1/responses/{created['id']}")
    assert status == 200 and Response.model_validate_json(raw).id == created["id"]
    return kinds


def test_shapes_validate_strictly(server, scripted):
    kinds = strictly_valid(server.url, {"model": "tiny", "input": "Hello", "max_output_tokens": 12})
    assert "response.output_text.delta" in kinds or "response.reasoning_text.delta" in kinds
    kinds = strictly_valid(scripted.url, {"model": "m2", "input": Q, "tools": TOOLS, "reasoning": {"summary": "auto"},
                                          "include": ["reasoning.encrypted_content"]})
    assert {"response.reasoning_summary_part.added", "response.content_part.done",
            "response.function_call_arguments.done"} <= set(kinds)


# -- the tiny model: shapes, usage, streaming, store ------------------------------------------------
def test_create_and_retrieve(client):
    r = client.responses.create(model="tiny", input="Hello", max_output_tokens=10, temperature=0)
    assert r.object == "response" and r.id.startswith("resp_") and r.status in ("completed", "incomplete")
    assert r.output and r.output[-1].type in ("message", "function_call")
    u = r.usage
    assert u.input_tokens > 0 and 0 < u.output_tokens <= 10 and u.total_tokens == u.input_tokens + u.output_tokens
    assert 0 <= u.output_tokens_details.reasoning_tokens <= u.output_tokens
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"
    assert client.responses.retrieve(r.id).model_dump() == r.model_dump()


def test_streaming_matches_the_final_response(client):
    events = list(client.responses.create(model="tiny", input="Hello", max_output_tokens=16, extra_body={"seed": 3}, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text
    got = [i for i in final.output if i.type == "reasoning"]
    assert reasoning == (got[0].content[0].text if got and got[0].content else "")
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [i.model_dump() for i in done] == [i.model_dump() for i in final.output]
    assert client.responses.retrieve(final.id).model_dump() == final.model_dump()


def test_store_false_and_unknown_ids_are_404(client, server):
    r = client.responses.create(model="tiny", input="Hello", max_output_tokens=4, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="tiny", input="Hi", max_output_tokens=4, previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id" and e.value.body["code"] == "response_not_found"
    kept = client.responses.create(model="tiny", input="Hello", max_output_tokens=4)
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.retrieve(kept.id)
    assert e.value.body["type"] == "not_found_error"


def test_previous_response_id_continues_the_conversation(client, prompt_log):
    first = client.responses.create(model="tiny", input="My name is Ada.", instructions="Be brief.", max_output_tokens=6)
    second = client.responses.create(model="tiny", input="What is my name?", previous_response_id=first.id,
                                     max_output_tokens=6)
    assert second.previous_response_id == first.id
    prompt = prompt_log[-1]
    assert "My name is Ada." in prompt and "What is my name?" in prompt
    assert "Be brief." not in prompt  # instructions are not carried over


def test_json_schema_format(client):
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "green"]}, "ok": {"type": "boolean"}},
              "required": ["color", "ok"], "additionalProperties": False}
    r = client.responses.create(model="tiny", input="Pick a color.", max_output_tokens=40, reasoning={"effort": "none"},
                                text={"format": {"type": "json_schema", "name": "pick", "schema": schema, "strict": True}})
    value = json.loads(r.output_text)
    assert value["color"] in ("red", "green") and isinstance(value["ok"], bool)
    assert r.usage.output_tokens_details.reasoning_tokens == 0

    parsed = client.responses.parse(model="tiny", input="Pick a color.", max_output_tokens=40,
                                    reasoning={"effort": "none"}, text_format=Pick).output_parsed
    assert isinstance(parsed, Pick) and parsed.color in ("red", "green")


def test_cut_off_response_is_incomplete(client):
    kw = dict(model="tiny", input="Hello", max_output_tokens=3, extra_body={"ignore_eos": True})
    r = client.responses.create(**kw)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output[-1].status == "incomplete" and r.usage.output_tokens == 3
    events = list(client.responses.create(**kw, stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "incomplete"


@pytest.mark.parametrize("choice", [{"type": "function", "name": "get_weather"},
                                    {"type": "allowed_tools", "mode": "required",
                                     "tools": [{"type": "function", "name": "get_weather"}]}])
def test_forced_function_call(client, choice):
    tools = [{**TOOLS[0], "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}},
                                         "required": ["city"]}},
             {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]
    # one call: with parallel calls the unseeded tiny model may start a second one that max_output_tokens
    # cuts off, and a cut-off block is no call (test_a_call_cut_off_by_max_output_tokens_is_not_a_call)
    r = client.responses.create(model="tiny", input=Q, tools=tools, max_output_tokens=60, reasoning={"effort": "none"},
                                tool_choice=choice, parallel_tool_calls=False)
    calls = [i for i in r.output if i.type == "function_call"]
    assert r.status == "completed" and len(calls) == 1
    assert calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    assert json.loads(calls[0].arguments)["city"] in ("Paris", "Oslo")


def test_bad_requests_use_the_openai_error_shape(server):
    for body, param in (({"model": "tiny", "input": [{"type": "input_image"}]}, "input[0].type"),
                        ({"model": "tiny", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
                        ({"model": "tiny", "input": "x", "tool_choice": "required"}, "tool_choice"),
                        ({"model": "tiny", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format"),
                        ({"model": "tiny", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
                         "input[0].content[0].type"),
                        ({"model": "tiny", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id")):
        status, err, _ = post(server.url + "/v1/responses", body)
        assert status == 400 and err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == param
    for bad in ([{"role": "user", "content": None}], [{"type": "reasoning", "summary": "abc"}],
                [{"type": "reasoning", "content": [1]}], [{"type": "function_call_output", "call_id": "c", "output": {}}],
                [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{not json"}],
                [{"type": "reasoning", "encrypted_content": "m2r1.!!.x"}], [{"role": "tool", "content": "x"}], [7]):
        status, err, _ = post(server.url + "/v1/responses", {"model": "tiny", "input": bad, "max_output_tokens": 2})
        assert status == 400 and err["error"]["type"] == "invalid_request_error", (bad, err)
    for extra in ({"tools": [{"type": "function", "name": "f", "parameters": "x"}]},
                  {"tool_choice": {"type": "allowed_tools", "tools": "x"}, "tools": TOOLS},
                  {"text": {"format": {"type": "json_schema", "name": "s", "schema": None}}},
                  {"text": {"format": "json"}}, {"max_output_tokens": "5"}, {"background": True}):
        status, err, _ = post(server.url + "/v1/responses", {"model": "tiny", "input": "x", "max_output_tokens": 2, **extra})
        assert status == 400 and err["error"]["type"] == "invalid_request_error", (extra, err)
    status, err, _ = post(server.url + "/v1/responses", {"model": "nope", "input": "x"})
    assert status == 404 and err["error"]["code"] == "model_not_found"


# -- scripted outputs: tool round trips ------------------------------------------------------------
def test_tool_round_trip_sending_output_items_back(scripted):
    c = scripted.client
    first = c.responses.create(model="m2", input=Q, tools=TOOLS)
    kinds = [i.type for i in first.output]
    assert kinds == ["reasoning", "function_call"] and first.status == "completed"
    assert first.output[0].content[0].text == THOUGHT
    call = first.output[1]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert 0 < first.usage.output_tokens_details.reasoning_tokens < first.usage.output_tokens
    items = [{"role": "user", "content": Q}, *[i.model_dump(exclude_none=True) for i in first.output],
             {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}]
    second = c.responses.create(model="m2", input=items, tools=TOOLS)
    assert second.output_text == ANSWER
    prompt = scripted.engine.prompts[-1]
    assert f"<think>\n{THOUGHT}\n</think>" in prompt  # the current agent turn keeps its reasoning
    assert '<invoke name="get_weather">' in prompt and "<response>sunny, 21 C</response>" in prompt


def test_streamed_tool_call_events(scripted):
    with scripted.client.responses.stream(model="m2", input=Q, tools=TOOLS, reasoning={"summary": "auto"}) as s:
        events = list(s)
        final = s.get_final_response()
    kinds = [e.type for e in events]
    for kind in ("response.output_item.added", "response.reasoning_text.delta", "response.reasoning_summary_text.delta",
                 "response.function_call_arguments.delta", "response.function_call_arguments.done",
                 "response.output_item.done", "response.completed"):
        assert kind in kinds
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert args == done.arguments == final.output[1].arguments == '{"city": "Paris"}'
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == final.output[0].summary[0].text == THOUGHT


def test_tool_round_trip_with_previous_response_id(scripted):
    c = scripted.client
    first = c.responses.create(model="m2", input=Q, tools=TOOLS)
    call = first.output[-1]
    second = c.responses.create(model="m2", previous_response_id=first.id, tools=TOOLS,
                                input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text == ANSWER
    assert f"<think>\n{THOUGHT}\n</think>" in scripted.engine.prompts[-1] and Q in scripted.engine.prompts[-1]


def test_interleaved_reasoning_rule(scripted):
    """Reasoning items before the last user message are dropped from the prompt; later ones kept."""
    c = scripted.client
    c.responses.create(model="m2", input=[
        {"role": "user", "content": "q1"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "OLD-THOUGHT"}]},
        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}])
    assert "OLD-THOUGHT" not in scripted.engine.prompts[-1] and "a1" in scripted.engine.prompts[-1]


def test_instructions_and_developer_messages_share_the_system_block(scripted):
    scripted.client.responses.create(model="m2", instructions="Be brief.", input=[
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use metric units."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": Q}]}])
    assert "]~b]system\nBe brief.\n\nUse metric units." in scripted.engine.prompts[-1]


def test_encrypted_reasoning_round_trip(scripted, server):
    c = scripted.client
    first = c.responses.create(model="m2", input=Q, tools=TOOLS, store=False, include=["reasoning.encrypted_content"])
    rs, call = first.output
    assert rs.encrypted_content
    back = {"type": "reasoning", "id": rs.id, "summary": [], "encrypted_content": rs.encrypted_content}
    out = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    items = [{"role": "user", "content": Q}, back, call.model_dump(exclude_none=True), out]
    assert c.responses.create(model="m2", input=items, tools=TOOLS).output_text == ANSWER
    assert f"<think>\n{THOUGHT}\n</think>" in scripted.engine.prompts[-1]
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="m2", input=[items[0], {**back, "encrypted_content": "m2r1.eA.forgé"}])


def test_parallel_tool_calls_false_keeps_the_first_call(tiny_ckpt):
    two = ('r</think>\n\n<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
           '</invoke>\n<invoke name="get_weather">\n<parameter name="city">Oslo</parameter>\n</invoke>\n</minimax:tool_call>')
    with scripted_front(tiny_ckpt, [two]) as front:
        for parallel, cities in ((True, ["Paris", "Oslo"]), (False, ["Paris"])):
            for stream in (False, True):
                r = front.client.responses.create(model="m2", input=Q, tools=TOOLS, parallel_tool_calls=parallel,
                                                  stream=stream)
                r = list(r)[-1].response if stream else r
                assert [json.loads(i.arguments)["city"] for i in r.output if i.type == "function_call"] == cities


def test_a_call_cut_off_by_max_output_tokens_is_not_a_call(tiny_ckpt):
    """The second invoke is cut mid-parameter: the block is unclosed, so (as for Chat Completions) the
    response holds no call, only the raw text, and is incomplete; streamed or not, never a call whose
    arguments are not JSON."""
    two = ('r</think>\n\n<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
           '</invoke>\n<invoke name="get_weather">\n<parameter name="city">Oslo</parameter>\n</invoke>\n</minimax:tool_call>')
    cut = two.index("Oslo") // PIECE + 1  # pieces (the scripted engine's tokens) up to the middle of "Oslo"
    with scripted_front(tiny_ckpt, [two]) as front:
        for stream in (False, True):
            r = front.client.responses.create(model="m2", input=Q, tools=TOOLS, max_output_tokens=cut, stream=stream)
            r = list(r)[-1].response if stream else r
            assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
            assert [i.type for i in r.output] == ["reasoning", "message"]
            assert r.output_text == two[len("r</think>\n\n"):cut * PIECE]
            assert front.client.responses.retrieve(r.id).output[-1].type == "message"  # stored as answered
        r = front.client.responses.create(model="m2", input=Q, tools=TOOLS, max_output_tokens=cut + 100)
        assert r.status == "completed" and [json.loads(i.arguments)["city"] for i in r.output[1:]] == ["Paris", "Oslo"]


# -- the openai-agents SDK in its default configuration (Responses) ---------------------------------
@pytest.mark.parametrize("streamed", [False, True])
def test_agents_sdk_tool_loop(scripted, streamed):
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    agents.set_default_openai_client(openai.AsyncOpenAI(base_url=scripted.url + "/v1", api_key="none", max_retries=0),
                                     use_for_tracing=False)
    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        asked.append(city)
        return "sunny, 21 C"

    agent = agents.Agent(name="weather", instructions="Answer with the tool.", model="m2", tools=[get_weather])

    async def run():
        if not streamed:
            return await agents.Runner.run(agent, Q)
        result = agents.Runner.run_streamed(agent, Q)
        async for _ in result.stream_events():
            pass
        return result

    result = asyncio.run(run())
    assert result.final_output == ANSWER and asked == ["Paris"]
    assert len(result.raw_responses) == 2
    prompt = scripted.engine.prompts[-1]  # the agent sent its reasoning item back: the turn keeps it
    assert "Answer with the tool." in prompt and f"<think>\n{THOUGHT}\n</think>" in prompt


def test_engine_failure_is_an_error_event(tiny_ckpt):
    with scripted_front(tiny_ckpt, [FAIL]) as front:
        c = front.client
        events = list(c.responses.create(model="m2", input=Q, stream=True))
        assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
        assert "engine exploded" in events[-1].message and events[-1].sequence_number == 2
        with pytest.raises(openai.APIStatusError) as e:
            c.responses.create(model="m2", input=Q)
        assert e.value.status_code == 502 and "engine exploded" in e.value.message
        status, err, _ = post(front.url + "/v1/responses", {"model": "m2", "input": Q, "max_output_tokens": 10**6})
        assert status == 400 and err["error"]["param"] == "max_output_tokens"
