"""Operations: API key, limits (429/503 with Retry-After), client disconnects, the remote backend,
and the real `minimax2 serve` process (SIGTERM drains)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import openai
import pytest

from server_support import ServerThread
from server_support.http import get, post, wait_idle

pytest_plugins = ["server_support.fixtures"]
REPO = Path(__file__).resolve().parents[1]
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def side_app(server, **cfg):
    from minimax2.server.app import create_app
    from minimax2.server.service import ServerConfig

    return create_app(server.app.state.server.backend, ServerConfig(served_model_name="tiny", **cfg))


def test_api_key_in_both_shapes(server):
    with ServerThread(side_app(server, api_key="sekrit")) as s:
        status, body, _ = post(s.url + "/v1/chat/completions", CHAT)
        assert status == 401 and body["error"]["type"] == "authentication_error"
        status, body, _ = post(s.url + "/v1/messages", {**CHAT, "max_tokens": 2}, {"x-api-key": "wrong"})
        assert status == 401 and body["type"] == "error" and body["error"]["type"] == "authentication_error"
        ok = openai.OpenAI(base_url=s.url + "/v1", api_key="sekrit", max_retries=0).chat.completions.create(**CHAT)
        assert ok.choices
        r = anthropic.Anthropic(base_url=s.url, api_key="sekrit", max_retries=0).messages.create(**CHAT)
        assert r.content
        assert get(s.url + "/health")[0] == 200  # operations endpoints stay open


def test_queue_full_429_and_draining_503(server):
    with ServerThread(side_app(server, max_pending=0)) as s:
        status, body, headers = post(s.url + "/v1/chat/completions", CHAT)
        assert status == 429 and headers.get("retry-after") == "1" and "error" in body
        status, body, headers = post(s.url + "/v1/messages", CHAT)
        assert status == 429 and body["error"]["type"] == "rate_limit_error" and headers.get("retry-after")
    app = side_app(server)
    with ServerThread(app) as s:
        app.state.server.draining = True
        status, body, headers = post(s.url + "/v1/chat/completions", CHAT)
        assert status == 503 and headers.get("retry-after") and get(s.url + "/health")[0] == 503


def _start_stream(port: int, body: dict, path: str = "/v1/chat/completions") -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    return conn


def _aborted(server) -> float:
    text = get(server.url + "/metrics")[1].decode()
    line = next((x for x in text.splitlines() if x.startswith("vllm:request_success_total{")
                 and 'finished_reason="abort"' in x), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


def test_disconnect_aborts_and_frees_blocks(server):
    backend = server.app.state.server.backend
    start, aborted = wait_idle(backend)["free_blocks"], _aborted(server)
    conns = []
    for i in range(10):  # streaming and not, both APIs; none could finish on its own in the test's time
        body = {**CHAT, "max_tokens": 900, "stream": i % 2 == 0, "seed": i, "ignore_eos": True}
        conns.append(_start_stream(server.port, body, "/v1/messages" if i % 3 == 0 else "/v1/chat/completions"))
    time.sleep(0.5)
    for i, c in enumerate(conns):
        if i % 2 == 0:
            r = c.getresponse()
            assert r.status == 200 and r.read(64)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    wait_idle(backend, free_blocks=start)
    assert _aborted(server) - aborted == 10


def test_remote_backend_matches_local(server, tiny_ckpt):
    from minimax2.server.app import create_app
    from minimax2.server.backends import RemoteBackend
    from minimax2.server.service import ServerConfig

    front = create_app(RemoteBackend(tiny_ckpt, server.url, model="tiny"), ServerConfig(served_model_name="front"))
    with ServerThread(front) as f:
        local = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        remote = openai.OpenAI(base_url=f.url + "/v1", api_key="x", max_retries=0)
        for kw in (dict(max_tokens=24, seed=11), dict(max_tokens=16, seed=5, temperature=0.6, top_p=0.8, stop=["e"])):
            msgs = [{"role": "user", "content": "Tell me about Paris."}]
            a = local.chat.completions.create(model="tiny", messages=msgs, **kw)
            b = remote.chat.completions.create(model="front", messages=msgs, **kw)
            assert b.choices[0].message.model_dump() == a.choices[0].message.model_dump()
            assert b.choices[0].finish_reason == a.choices[0].finish_reason
            assert (b.usage.prompt_tokens, b.usage.completion_tokens) == (a.usage.prompt_tokens, a.usage.completion_tokens)
            streamed = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                               for c in remote.chat.completions.create(model="front", messages=msgs, stream=True, **kw)
                               if c.choices)
            assert streamed == (a.choices[0].message.model_extra["reasoning_content"] or "")
        ant = anthropic.Anthropic(base_url=f.url, api_key="x", max_retries=0)
        assert ant.messages.create(model="front", max_tokens=5, messages=msgs).content
        with pytest.raises(openai.BadRequestError):  # grammars need logits: not over a remote engine
            remote.chat.completions.create(model="front", messages=msgs, max_tokens=4,
                                           response_format={"type": "json_object"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_sigterm_drains(tiny_ckpt, tmp_path):
    port = _free_port()
    state = tmp_path / "state"  # the thinking-signature key file goes here, never under the real home
    env = {**os.environ, "MINIMAX2_API_KEY": "k", "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(state)}
    proc = subprocess.Popen([sys.executable, "-m", "minimax2", "serve", "--model", str(tiny_ckpt),
                             "--port", str(port), "--dtype", "float32", "--max-model-len", "512",
                             "--served-model-name", "t", "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while get(f"http://127.0.0.1:{port}/health")[0] != 200 if _listening(port) else True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=client.chat.completions.create(
            model="t", messages=[{"role": "user", "content": "hi"}], max_tokens=200, seed=1, extra_body={"ignore_eos": True})))
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        t.join(60)
        assert result["r"].choices[0].finish_reason in ("stop", "length")
        assert proc.wait(30) == 0
        assert (state / "minimax2" / "thinking-secret").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
