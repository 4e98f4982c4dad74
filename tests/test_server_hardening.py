"""Issue 16, server side: every bad request of the attacker's probe gets a 4xx in its API's own shape,
the admission limit holds under a burst, big prompts do not stall the server, a drain past its
timeout still ends each response in its API's shape, and thinking signatures are required."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import openai
import pytest

from server_support import ServerThread
from server_support.http import get as _get
from server_support.http import post, wait_idle
from server_support.serving import Serving, _probe_health_while, _raw, closed_by_server, side_app

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


# -- thinking signatures (item 7) ------------------------------------------------------------------
@pytest.mark.parametrize("sig", [None, ""], ids=["missing", "empty"])
def test_unsigned_thinking_is_refused_unless_trusted(server, sig):
    body = _signed(sig)
    if sig is None:
        del body["messages"][1]["content"][0]["signature"]
    _check_400("/v1/messages", *post(server.url + "/v1/messages", body)[:2])
    with ServerThread(side_app(server, accept_unsigned_thinking=True)) as s:
        assert post(s.url + "/v1/messages", body)[0] == 200


def test_signatures_survive_a_restart(server, tmp_path, monkeypatch):
    from minimax2.server.signing import default_secret_path, load_or_create_secret

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    secret = load_or_create_secret()
    path = default_secret_path()
    assert path == tmp_path / "minimax2" / "thinking-secret" and oct(path.stat().st_mode & 0o777) == "0o600"
    with ServerThread(side_app(server, thinking_secret=secret)) as first:
        status, r, _ = post(first.url + "/v1/messages", {**MSG, "max_tokens": 6, "seed": 3})
    assert status == 200 and r["content"][0]["type"] == "thinking" and r["content"][0]["signature"]
    body = {**MSG, "messages": [MSG["messages"][0], {"role": "assistant", "content": r["content"]},
                                {"role": "user", "content": "and?"}]}
    with ServerThread(side_app(server, thinking_secret=load_or_create_secret())) as second:  # a new process's view
        assert post(second.url + "/v1/messages", body)[0] == 200
    with ServerThread(side_app(server)) as other:  # another key: the block is not this server's
        _check_400("/v1/messages", *post(other.url + "/v1/messages", body)[:2])


# -- admission (item 4) ----------------------------------------------------------------------------
def test_max_pending_is_counted_at_admission(server):
    app = side_app(server, max_pending=8)
    long = {"max_tokens": 600, "extra_body": {"ignore_eos": True}}

    async def main(url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)

        async def one(i):
            try:
                return await client.chat.completions.create(model="tiny", messages=CHAT["messages"], stream=True,
                                                            seed=i, **long)
            except openai.RateLimitError:
                return None
        streams = await asyncio.gather(*[one(i) for i in range(20)])
        for s in streams:
            if s is not None:
                await s.close()
        await client.close()
        return sum(s is not None for s in streams)

    with ServerThread(app) as s:
        assert asyncio.run(main(s.url)) == 8
        wait_idle(app.state.server.backend)
        deadline = time.monotonic() + 10
        while app.state.server.inflight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.server.inflight == 0


def test_n2_with_the_largest_seed_runs_both_completions(server):
    status, body, _ = post(server.url + "/v1/chat/completions", {**CHAT, "n": 2, "seed": 2**64 - 1})
    assert status == 200 and len(body["choices"]) == 2
    _check_400("/v1/chat/completions", *post(server.url + "/v1/chat/completions",
                                             {**CHAT, "n": 2, "seed": 2**64})[:2])
    wait_idle(server.app.state.server.backend)


# -- big prompts (item 2), the drain deadline and slow headers (item 5) ----------------------------


def test_health_answers_while_oversize_prompts_are_in_flight(server):
    big = "many words " * 150_000  # 1.65 MB: far past the tiny model's context, under the body limit
    bodies = [("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": big}]}),
              ("/v1/messages", {**MSG, "messages": [{"role": "user", "content": big}]}),
              ("/v1/messages/count_tokens", {"model": "tiny", "messages": [{"role": "user", "content": big}]}),
              ("/v1/completions", {**COMP, "prompt": big})] * 2
    with Serving(side_app(server, max_body_bytes=4 * 2**20)) as s:
        results, latencies = _probe_health_while(s, bodies)
    assert sorted(status for status, _ in results) == [400] * 8, results
    assert all("context" in text for _, text in results)
    p99 = sorted(latencies)[int(0.99 * len(latencies))]
    assert p99 < 0.2, f"/health p99 {p99 * 1000:.0f} ms over {len(latencies)} probes"


@pytest.fixture(scope="module")
def long_context_app(tiny_ckpt):
    """The tiny model with a large context: a raw /v1/completions prompt of several hundred KB is
    within the character bound, so the server tokenizes it (in a worker thread) before refusing it."""
    from minimax2 import LLM
    from minimax2.server.app import create_app
    from minimax2.server.backends import LocalBackend
    from minimax2.server.service import ServerConfig

    llm = LLM(tiny_ckpt, dtype="float32", max_model_len=32768, max_num_seqs=2, num_kv_blocks=64)
    app = create_app(LocalBackend(llm), ServerConfig(served_model_name="tiny", max_body_bytes=4 * 2**20))
    yield app
    asyncio.run(app.state.server.backend.close())


def test_health_answers_while_large_raw_prompts_are_tokenized(long_context_app):
    """`Tokenizer.encode` must release the GIL: a worker thread that holds it for the whole encode of
    a large raw-text prompt stalls the event loop as surely as encoding on it."""
    st = long_context_app.state.server
    big = "many words " * 70_000  # 770 KB: 0.3 to 0.8 s to tokenize here, holding the GIL before the fix
    assert len(big) < st.max_prompt_chars
    body = json.dumps({**COMP, "prompt": big}).encode()  # once: the clients share this process's GIL
    with Serving(long_context_app) as s:
        results, latencies = _probe_health_while(s, [("/v1/completions", body)] * 4)
    assert sorted(status for status, _ in results) == [400] * 4, results
    assert all("context" in text for _, text in results)  # tokenized, then refused on its token count
    p99 = sorted(latencies)[int(0.99 * len(latencies))]
    assert p99 < 0.2, f"/health p99 {p99 * 1000:.0f} ms over {len(latencies)} probes"


def test_encode_gives_the_ids_of_a_plain_encode(server_llm):
    tok = server_llm.tokenizer
    for text in ("", "hi", " many  words\n\n\t", "]~!b[]~b]ai\n<think>\nx</think>\n<minimax:tool_call>[e~[",
                 "東京 🙂 a < b " * 500):
        assert tok.encode(text) == tok._tok.encode(text, add_special_tokens=False).ids


def test_drain_past_its_timeout_answers_in_each_api_shape(server):
    app = side_app(server, drain_timeout=0.5)
    long = {"max_tokens": 900, "ignore_eos": True}
    cases = [("/v1/chat/completions", {**CHAT, **long, "stream": True}), ("/v1/messages", {**MSG, **long, "stream": True}),
             ("/v1/chat/completions", {**CHAT, **long}), ("/v1/messages", {**MSG, **long})]
    with Serving(app, drain_timeout=0.5) as s:
        out = [None] * len(cases)
        jobs = [threading.Thread(target=lambda i=i, p=p, b=b: out.__setitem__(i, _raw(s.port, p, b)))
                for i, (p, b) in enumerate(cases)]
        for j in jobs:
            j.start()
        time.sleep(0.5)  # all four are generating
        s.exit()
        for j in jobs:
            j.join(20)
        s.thread.join(20)
        assert not s.thread.is_alive()
    (s1, chat_stream), (s2, msg_stream), (s3, chat), (s4, msg) = out
    assert s1 == s2 == 200 and (s3, s4) == (503, 503), out
    events = [e for e in chat_stream.split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["error"]["type"] == "service_unavailable"
    last = msg_stream.strip().split("\n\n")[-1]
    assert last.startswith("event: error") and json.loads(last.split("data: ", 1)[1])["type"] == "error"
    assert json.loads(chat)["error"]["type"] == "service_unavailable"
    assert json.loads(msg)["error"]["type"] == "overloaded_error"


def test_slow_headers_are_dropped(server):
    with Serving(side_app(server), header_timeout=0.5) as s:
        socks = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(50)]
        for k in socks:
            k.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        time.sleep(1.5)
        assert _get(s.url + "/health")[0] == 200  # a whole request still gets through
        assert closed_by_server(socks) == 50
