"""Hypothesis fuzz of the chat and messages request bodies against a real server (issue 16): tool
calls, content parts and blocks, thinking signatures, tool schemas and any Unicode (lone surrogates and
M2's markers included). Whatever the body, the answer is never a 5xx, an error is in its API's own
shape, and a stream never ends in an internal error."""

from __future__ import annotations

import http.client
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest_plugins = ["server_support.fixtures"]

MARKERS = ["]~b]", "[e~[", "]~!b[", "</think>", "<think>", "<minimax:tool_call>", "</invoke>", "\ud800", "\udfff",
           "é", "🙂", "", " ", "null", "{}", "[1]"]
text = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12), st.sampled_from(MARKERS))
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False), text)
anything = st.recursive(scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=6)
prop = st.one_of(anything, st.fixed_dictionaries({"type": st.sampled_from(
    ["string", "integer", "number", "boolean", "object", "array", "null", 7])}))
schema = st.one_of(anything, st.fixed_dictionaries(
    {"type": st.sampled_from(["object", "string", 5])},
    optional={"properties": st.one_of(anything, st.dictionaries(st.sampled_from(["a", "b"]), prop, max_size=2)),
              "required": st.one_of(anything, st.lists(st.sampled_from(["a", "b", "c"]), max_size=2))}))
name = st.one_of(st.sampled_from(["f", "g"]), anything)
short = {"max_tokens": st.integers(1, 3)}

# -- OpenAI chat --------------------------------------------------------------------------------
part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": text}),
                 st.fixed_dictionaries({"type": st.sampled_from(["image_url", "input_audio", "text", "file"])},
                                       optional={"image_url": anything, "text": anything}), text, anything)
call = st.one_of(anything, st.fixed_dictionaries(
    {"id": anything, "type": st.just("function"),
     "function": st.one_of(anything, st.fixed_dictionaries({"name": name}, optional={"arguments": st.one_of(
         anything, st.sampled_from(['{"a": 1}', "{", "[]", "", '{"a": "\\ud800"}']))}))}))
oa_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "bot"])},
    optional={"content": st.one_of(text, st.none(), st.lists(part, max_size=3), anything),
              "tool_calls": st.one_of(st.lists(call, max_size=2), anything), "tool_call_id": anything,
              "reasoning_content": st.one_of(text, anything), "name": anything})
oa_tool = st.one_of(anything, st.fixed_dictionaries(
    {"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"])},
                                                                    optional={"parameters": schema})}))
chat_body = st.fixed_dictionaries(
    {"model": st.just("tiny"), "messages": st.lists(oa_message, min_size=1, max_size=4), **short},
    optional={"tools": st.lists(oa_tool, max_size=2),
              "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]), anything,
                                       st.just({"type": "function", "function": {"name": "f"}})),
              "n": st.integers(1, 2), "stream": st.booleans(), "seed": st.integers(-2**64, 2**65),
              "response_format": st.one_of(anything, st.just({"type": "json_object"})),
              "temperature": st.one_of(st.floats(0, 2), anything), "stop": st.one_of(text, anything),
              "logprobs": st.booleans(), "parallel_tool_calls": anything, "chat_template_kwargs": anything})

# -- Anthropic messages ---------------------------------------------------------------------------
SIGNED = "tqjBM6Wi6Kd0ld/9+EnaBEbx+BZUkU8KhNhCTvgp0Z4="  # sign(b"s3cret", "hm") of the session server
text_block = st.fixed_dictionaries({"type": st.just("text"), "text": text})
thinking_block = st.fixed_dictionaries(
    {"type": st.just("thinking"), "thinking": st.one_of(st.just("hm"), text, anything)},
    optional={"signature": st.one_of(st.just(SIGNED), st.just(SIGNED), text, anything)})
use_block = st.fixed_dictionaries({"type": st.just("tool_use"), "id": anything, "name": name},
                                  optional={"input": st.one_of(anything, st.dictionaries(text, anything, max_size=2))})
result_block = st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": anything},
                                     optional={"content": st.one_of(text, st.lists(anything, max_size=2), anything),
                                               "is_error": anything})
odd_block = st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["image", "redacted_thinking", "document", "x"])},
                                            optional={"source": anything, "data": anything}), anything)
block = st.one_of(text_block, thinking_block, use_block, result_block, odd_block)
an_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"])},
                                   optional={"content": st.one_of(text, st.lists(block, max_size=3), anything)})
turn = {  # mostly well-formed turns, so that one bad value deep inside still reaches the renderer
    "user": st.fixed_dictionaries({"role": st.just("user"), "content": st.one_of(
        text, st.lists(st.one_of(text_block, result_block), min_size=1, max_size=2))}),
    "assistant": st.fixed_dictionaries({"role": st.just("assistant"), "content": st.lists(
        st.one_of(thinking_block, text_block, use_block), min_size=1, max_size=3)})}
conversation = st.one_of(st.tuples(turn["user"], turn["assistant"], turn["user"]).map(list),
                         st.tuples(turn["user"], turn["assistant"], turn["user"]).map(list),
                         st.lists(an_message, min_size=1, max_size=4))
an_tool = st.one_of(anything, st.fixed_dictionaries({"name": st.sampled_from(["f", "g"])},
                                                    optional={"input_schema": schema, "description": anything}))
messages_body = st.fixed_dictionaries(
    {"model": st.just("tiny"), "messages": conversation, **short},
    optional={"system": st.one_of(text, st.lists(block, max_size=2), anything), "tools": st.lists(an_tool, max_size=2),
              "tool_choice": st.one_of(st.sampled_from([{"type": "any"}, {"type": "auto"}, {"type": "tool", "name": "f"},
                                                        {"type": "none"}]), anything),
              "thinking": st.one_of(st.just({"type": "enabled", "budget_tokens": 2}), anything),
              "stream": st.booleans(), "stop_sequences": st.one_of(st.lists(text, max_size=2), anything),
              "top_k": anything})


def _send(port: int, path: str, body: dict) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:  # json.dumps escapes a lone surrogate as the six characters \ud800: raw JSON, as an attacker sends it
        conn.request("POST", path, json.dumps(body, allow_nan=False), {"content-type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _check(path: str, status: int, text: str, body: dict) -> None:
    assert status < 500, (path, status, text[:300], body)
    if status >= 400:
        err = json.loads(text)
        assert (err["type"] == "error" and err["error"]["message"]) if path == "/v1/messages" \
            else err["error"]["message"], text
    elif body.get("stream") is True:
        assert "internal_server_error" not in text and '"api_error"' not in text, (text[-300:], body)


FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def test_fuzz_chat_completions(server):
    @FUZZ
    @given(body=chat_body)
    def run(body):
        _check("/v1/chat/completions", *_send(server.port, "/v1/chat/completions", body), body)
    run()


def test_fuzz_messages(server):
    @FUZZ
    @given(body=messages_body)
    def run(body):
        _check("/v1/messages", *_send(server.port, "/v1/messages", body), body)
    run()
