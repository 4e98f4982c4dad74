"""Issue 16, server side: every bad request of the attacker's probe gets a 4xx in its API's own shape,
the admission limit holds under a burst, big prompts do not stall the server, a drain past its
timeout still ends each response in its API's shape, and thinking signatures are required."""

from __future__ import annotations

import json

import pytest

from server_support.http import post

pytest_plugins = ["server_support.fixtures"]

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
MSG = {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
COMP = {"model": "tiny", "prompt": "hi", "max_tokens": 2}
FN = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
AN_TOOL = {"name": "f", "input_schema": {"type": "object", "properties": {}}}


def _asst_calls(calls) -> dict:
    return {**CHAT, "messages": [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "", "tool_calls": calls},
                                 {"role": "user", "content": "go on"}]}


def _call(arguments) -> list:
    return [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]


def _tool_use(inp) -> dict:
    return {**MSG, "messages": [{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f",
                                                                   "input": inp}]},
                                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                              "content": "ok"}]}]}


def _signed(sig) -> dict:
    return {**MSG, "messages": [{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm",
                                                                   "signature": sig},
                                                                  {"type": "text", "text": "yo"}]},
                                {"role": "user", "content": "again"}]}


def _forced_openai(params) -> dict:
    return {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": params}}],
            "tool_choice": "required"}


def _forced_anthropic(schema) -> dict:
    return {**MSG, "tools": [{"name": "f", "input_schema": schema}], "tool_choice": {"type": "any"}}


SURROGATE = '"\\ud800"'  # raw JSON text: json.dumps would escape the backslash
RAW = [  # (path, raw JSON body with a lone surrogate)
    ("/v1/chat/completions", '{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": %s}]}'),
    ("/v1/chat/completions", '{"model": %s, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}'),
    ("/v1/chat/completions", '{"model": "tiny", "max_tokens": 2, "stop": [%s], '
                             '"messages": [{"role": "user", "content": "hi"}]}'),
    ("/v1/completions", '{"model": "tiny", "max_tokens": 2, "prompt": %s}'),
    ("/v1/messages", '{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": %s}]}'),
    ("/v1/messages", '{"model": "tiny", "max_tokens": 2, "system": %s, "messages": [{"role": "user", "content": "x"}]}'),
    ("/v1/messages/count_tokens", '{"model": "tiny", "messages": [{"role": "user", "content": %s}]}'),
]
BAD_JSON = [  # (path, body): well-formed JSON that the APIs reject
    *[("/v1/chat/completions", _asst_calls(c)) for c in
      ("x", {"a": 1}, [1], ["s"], [None], [{"function": "x"}])],
    *[("/v1/chat/completions", _asst_calls(_call(a))) for a in (5, [1, 2], True, 1.5)],
    *[("/v1/messages", _tool_use(inp)) for inp in (5, [1], True)],
    *[("/v1/messages", _signed(sig)) for sig in ("é", "ñ" * 44, "🙂")],
    *[("/v1/completions", {**COMP, "prompt": p}) for p in ([-1], [2**70])],
    *[("/v1/chat/completions", _forced_openai(p)) for p in
      ({"type": "object", "properties": 5}, {"type": "object", "properties": {"a": 5}},
       {"type": "object", "properties": [1]}, {"type": "object", "required": 5, "properties": {"a": {}}})],
    *[("/v1/messages", _forced_anthropic(s)) for s in
      ({"type": "object", "properties": 5}, {"type": "object", "properties": {"a": 5}})],
    ("/v1/chat/completions", {**CHAT, "max_tokens": "5"}),
    ("/v1/chat/completions", {**CHAT, "n": "2"}),
    ("/v1/chat/completions", {**CHAT, "stream": "yes"}),
    ("/v1/completions", {**COMP, "max_tokens": "5"}),
    ("/v1/messages", {**MSG, "max_tokens": "5"}),
    ("/v1/messages", {**MSG, "stream": "yes"}),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]}),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]}),
]


def _check_400(path: str, status: int, body: dict) -> None:
    assert status == 400, (path, status, body)
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    else:
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"], body


@pytest.mark.parametrize("path,template", RAW, ids=[f"{i}{p}" for i, (p, _) in enumerate(RAW)])
def test_lone_surrogate_is_a_400(server, path, template):
    status, body, _ = post(server.url + path, (template % SURROGATE).encode())
    _check_400(path, status, body)


@pytest.mark.parametrize("path,body", BAD_JSON, ids=[f"{i}{p}" for i, (p, _) in enumerate(BAD_JSON)])
def test_bad_request_is_a_400(server, path, body):
    status, out, _ = post(server.url + path, body)
    _check_400(path, status, out)
