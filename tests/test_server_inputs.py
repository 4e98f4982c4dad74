"""A second review's probe of the server (2026-12-05): request fields that reached code which assumed
their shape (500s), names the tool-call format cannot carry, stop lists that slowed every request,
-inf logprobs that are not JSON, and bodies large enough to stall the event loop while validated."""

from __future__ import annotations

import json
import math
import urllib.request

import pytest
from test_server_hardening import CHAT, COMP, MSG, _check_400

from server_support.serving import Serving, _probe_health_while, closed_by_server, side_app

from server_support.http import get, post

pytest_plugins = ["server_support.fixtures"]

RESP = {"model": "tiny", "max_output_tokens": 2, "input": "hi"}


def _tool(name: str, props: dict | None = None) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object",
                                                                          "properties": props or {"x": {}}}}}


def _an_text(value) -> dict:
    return {**MSG, "messages": [{"role": "user", "content": [{"type": "text", "text": value}]}]}


BAD = [  # (path, body): each was a 500 (or a wrong answer) before, a 400 now
    ("/v1/chat/completions", {**CHAT, "response_format": {"type": "json_schema", "json_schema": "x"}}),
    ("/v1/chat/completions", {**CHAT, "response_format": {"type": "json_schema", "json_schema": [1]}}),
    ("/v1/chat/completions", {**CHAT, "tools": [_tool("f")], "tool_choice": {"type": "function", "function": "x"}}),
    ("/v1/chat/completions", {**CHAT, "tools": [_tool("f")], "tool_choice": {"type": "function", "function": [1]}}),
    ("/v1/responses", {**RESP, "input": [{"type": "reasoning", "summary": 5}, {"role": "user", "content": "x"}]}),
    ("/v1/responses", {**RESP, "input": [{"type": "reasoning", "content": 7}, {"role": "user", "content": "x"}]}),
    ("/v1/responses", {**RESP, "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
                       "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": 5}}),
    # names the <invoke name="..."> / <parameter name="..."> format cannot carry back unchanged
    *[("/v1/chat/completions", {**CHAT, "tools": [_tool(n)], "tool_choice": "required"})
      for n in ('a"b', "a\\b", "a>b", "</invoke>", "a b", "")],
    *[("/v1/chat/completions", {**CHAT, "tools": [_tool("f", {k: {"type": "string"}})], "tool_choice": "required"})
      for k in ('y"z', "</parameter>", "c>d", "a\\b", "")],
    ("/v1/messages", {**MSG, "tools": [{"name": "a>b", "input_schema": {"type": "object"}}]}),
    ("/v1/messages", {**MSG, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
    ("/v1/messages", {**MSG, "tools": [{"type": "bash_20250124", "name": "bash"}]}),
    # Anthropic text blocks whose text is not a string (were rendered as "None", "123", a dict's repr)
    *[("/v1/messages", _an_text(v)) for v in (None, 123, {"a": 1})],
    ("/v1/messages", {**MSG, "messages": [{"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": [{"type": "text", "text": None}]},
                                          {"role": "user", "content": "again"}]}),
    # stop lists past the bound (each string is checked after every token, on the engine's thread)
    ("/v1/chat/completions", {**CHAT, "stop": [f"s{i}" for i in range(17)]}),
    ("/v1/chat/completions", {**CHAT, "stop": ["x" * 513]}),
    ("/v1/completions", {**COMP, "stop": [f"s{i}" for i in range(17)]}),
    ("/v1/messages", {**MSG, "stop_sequences": [f"s{i}" for i in range(17)]}),
    ("/v1/chat/completions", {**CHAT, "chat_template_kwargs": {"add_generation_prompt": False}}),
]


@pytest.mark.parametrize("path,body", BAD, ids=[f"{i}{p}" for i, (p, _) in enumerate(BAD)])
def test_malformed_fields_are_400s(server, path, body):
    status, out, _ = post(server.url + path, body)
    _check_400(path, status, out)


def test_stop_list_errors_name_the_field(server):
    status, out, _ = post(server.url + "/v1/chat/completions", {**CHAT, "stop": ["x" * 513]})
    assert status == 400 and out["error"]["param"] == "stop" and "512 characters" in out["error"]["message"]
    status, out, _ = post(server.url + "/v1/chat/completions", {**CHAT, "stop": [f"s{i}" for i in range(16)]})
    assert status == 200, out  # at the bound


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


GRAMMAR = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
    "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}


def test_logprobs_under_a_grammar_are_json(server):
    """Tokens the grammar forbids have logprob -inf: reported as -9999.0, as OpenAI does, in both modes."""
    body = {**CHAT, "max_tokens": 12, "logprobs": True, "top_logprobs": 20, "response_format": GRAMMAR,
            "chat_template_kwargs": {"enable_thinking": False}}
    req = urllib.request.Request(server.url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = _strict(r.read().decode())
    entries = out["choices"][0]["logprobs"]["content"]
    tops = [t["logprob"] for e in entries for t in e["top_logprobs"]]
    assert entries and all(math.isfinite(x) and x >= -9999.0 for x in tops)
    assert -9999.0 in tops  # the tiny vocabulary: some of the 20 alternatives are forbidden
    req = urllib.request.Request(server.url + "/v1/chat/completions", json.dumps({**body, "stream": True}).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        lines = [ln[6:] for ln in r.read().decode().splitlines() if ln.startswith("data: ") and ln != "data: [DONE]"]
    chunks = [_strict(ln) for ln in lines]
    assert any(c["choices"] and c["choices"][0].get("logprobs") for c in chunks)


def test_thinking_in_template_kwargs_is_the_switch(server):
    status, out, _ = post(server.url + "/v1/chat/completions", {**CHAT, "chat_template_kwargs": {"thinking": False}})
    assert status == 200 and out["choices"][0]["message"]["reasoning_content"] is None


def test_model_retrieve_and_head_health(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
    req = urllib.request.Request(server.url + "/health", method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    status, raw = get(server.url + "/v1/messages")  # a wrong method on an Anthropic route: its own error type
    assert status == 405 and json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_completion_logprobs_count_offsets_through_the_echoed_prompt(server):
    body = {**COMP, "prompt": "Once upon", "max_tokens": 4, "logprobs": 2, "echo": True, "temperature": 0}
    status, out, _ = post(server.url + "/v1/completions", body)
    assert status == 200
    choice = out["choices"][0]
    lp = choice["logprobs"]
    assert lp["text_offset"][0] == len("Once upon")
    assert choice["text"][lp["text_offset"][-1]:].startswith(lp["tokens"][-1])
    req = urllib.request.Request(server.url + "/v1/completions", json.dumps({**body, "stream": True}).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        chunks = [json.loads(ln[6:]) for ln in r.read().decode().splitlines()
                  if ln.startswith("data: ") and ln != "data: [DONE]"]
    texts = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert texts == choice["text"]  # the prompt first, then the same greedy tokens
    streamed = [c["choices"][0]["logprobs"] for c in chunks if c["choices"] and c["choices"][0]["logprobs"]]
    assert [o for s in streamed for o in s["text_offset"]] == lp["text_offset"]
    assert [t for s in streamed for t in s["tokens"]] == lp["tokens"]


def test_health_answers_while_huge_lists_are_refused(server):
    """120,000 tools or 400,000 messages took seconds to validate, holding the GIL (so even off the event
    loop /health waited): past MAX_TOOLS / MAX_MESSAGES they are refused as soon as the list is counted.
    (Decoding the JSON still holds the GIL, about 40 ms a MB here: these bodies are 0.2-1.4 MB.)"""
    from minimax2.server.protocol import MAX_MESSAGES, MAX_TOOLS

    tools = [_tool(f"tool_{i}", {"path": {"type": "string"}}) for i in range(10_000)]
    many = [{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)
    bodies = [("/v1/chat/completions", {**CHAT, "tools": tools}),
              ("/v1/messages", {**MSG, "tools": [{"name": f"t{i}"} for i in range(10_000)]}),
              ("/v1/chat/completions", {**CHAT, "messages": many})]
    with Serving(side_app(server, max_body_bytes=16 * 2**20)) as s:
        results, latencies = _probe_health_while(s, bodies)
    assert [status for status, _ in results] == [400] * 3, results
    assert sum(f"at most {MAX_TOOLS} items" in text for _, text in results) == 2
    p99 = sorted(latencies)[int(0.99 * len(latencies))]
    assert p99 < 0.2, f"/health p99 {p99 * 1000:.0f} ms over {len(latencies)} probes"
    status, out, _ = post(server.url + "/v1/chat/completions", {**CHAT, "tools": tools[:MAX_TOOLS]})
    assert out["error"]["code"] == "context_length_exceeded", out  # at the bound: past validation, then too long


def test_a_stalled_body_is_dropped(server):
    """Headers whole, then one byte of a 100-byte body: the connection used to stay open for good."""
    import socket
    import time

    with Serving(side_app(server), header_timeout=0.5) as s:
        socks = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(20)]
        for k in socks:
            k.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{")
        time.sleep(1.5)
        assert get(s.url + "/health")[0] == 200
        assert closed_by_server(socks) == 20
        status, out, _ = post(s.url + "/v1/chat/completions", CHAT)  # a request that keeps sending is served
        assert status == 200, out
