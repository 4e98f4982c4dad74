"""A scripted stand-in for an M2 server on 127.0.0.1, for testing the harness (not the model).

Each scripted turn is raw M2 output (`reasoning</think>\n\ncontent<minimax:tool_call>...`); the
server splits it into reasoning, content and tool calls and streams it through the OpenAI Chat
Completions protocol (reasoning as both `reasoning_content` and `reasoning`) or the Anthropic
Messages protocol (thinking blocks). Which turn is served is the number of assistant messages in
the request. Usage: prompt = 1000 + 100 * turn tokens, of which 800 cached after the first turn;
output = OUTPUT_TOKENS. Every request body is kept in `state.requests`."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

OUTPUT_TOKENS = 41
FIRST_DELAY = 0.05  # seconds before the first delta
GAP = 0.01  # seconds between deltas
INVOKE = re.compile(r'<invoke name="([^"]+)">(.*?)</invoke>', re.DOTALL)
PARAM = re.compile(r'<parameter name="([^"]+)">(.*?)</parameter>', re.DOTALL)


def split_turn(raw: str) -> tuple[str, str, list[tuple[str, dict]]]:
    reasoning, _, rest = raw.partition("</think>")
    rest = rest.lstrip("\n")
    content, _, calls_text = rest.partition("<minimax:tool_call>")
    calls = []
    for name, body in INVOKE.findall(calls_text):
        args = {k: v.removeprefix("\n").removesuffix("\n") for k, v in PARAM.findall(body)}
        calls.append((name, args))
    return reasoning.strip(), content.strip(), calls


def usage_for(turn: int) -> tuple[int, int]:
    return 1000 + 100 * turn, (800 if turn else 0)


@dataclass
class State:
    script: list[str]
    reasoning_mode: str = "fields"  # OpenAI: "fields" | "details" (reasoning_details) | "content" (<think>)
    requests: list = field(default_factory=list)


def _pieces(text: str) -> list[str]:
    half = len(text) // 2
    return [p for p in (text[:half], text[half:]) if p]


async def _openai_stream(state: State, body: dict):
    turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
    reasoning, content, calls = split_turn(state.script[min(turn, len(state.script) - 1)])
    prompt, cached = usage_for(turn)
    base = {"id": f"chatcmpl-{turn}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body["model"]}

    def chunk(delta, finish=None):
        return "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": delta,
                                                             "finish_reason": finish}]}) + "\n\n"

    yield chunk({"role": "assistant", "content": ""})
    await asyncio.sleep(FIRST_DELAY)
    if state.reasoning_mode == "content" and reasoning:
        content = f"<think>\n{reasoning}\n</think>\n\n{content}"
    for piece in _pieces(reasoning) if state.reasoning_mode != "content" else []:
        if state.reasoning_mode == "details":
            yield chunk({"reasoning_details": [{"type": "reasoning.text", "id": f"r{turn}", "index": 0,
                                                "format": "MiniMax-response-v1", "text": piece}]})
        else:
            yield chunk({"reasoning_content": piece, "reasoning": piece})
        await asyncio.sleep(GAP)
    for piece in _pieces(content):
        yield chunk({"content": piece})
        await asyncio.sleep(GAP)
    for i, (name, args) in enumerate(calls):
        yield chunk({"tool_calls": [{"index": i, "id": f"call_{turn:02d}{i:022x}", "type": "function",
                                     "function": {"name": name, "arguments": ""}}]})
        for piece in _pieces(json.dumps(args)) or ["{}"]:
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
            await asyncio.sleep(GAP)
    yield chunk({}, "tool_calls" if calls else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": prompt, "completion_tokens": OUTPUT_TOKENS,
                 "total_tokens": prompt + OUTPUT_TOKENS, "prompt_tokens_details": {"cached_tokens": cached}}
        yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
    yield "data: [DONE]\n\n"


async def _anthropic_stream(state: State, body: dict):
    turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
    reasoning, content, calls = split_turn(state.script[min(turn, len(state.script) - 1)])
    prompt, cached = usage_for(turn)

    def event(kind, data):
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    yield event("message_start", {"message": {
        "id": f"msg_{turn}", "type": "message", "role": "assistant", "content": [], "model": body["model"],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": prompt - cached, "output_tokens": 1, "cache_read_input_tokens": cached,
                  "cache_creation_input_tokens": 0}}})
    await asyncio.sleep(FIRST_DELAY)
    index = 0
    if reasoning:
        yield event("content_block_start", {"index": index, "content_block": {
            "type": "thinking", "thinking": "", "signature": ""}})
        for piece in _pieces(reasoning):
            yield event("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": piece}})
            await asyncio.sleep(GAP)
        yield event("content_block_delta", {"index": index, "delta": {"type": "signature_delta",
                                                                      "signature": f"sig{turn}"}})
        yield event("content_block_stop", {"index": index})
        index += 1
    if content:
        yield event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        for piece in _pieces(content):
            yield event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
            await asyncio.sleep(GAP)
        yield event("content_block_stop", {"index": index})
        index += 1
    for i, (name, args) in enumerate(calls):
        yield event("content_block_start", {"index": index, "content_block": {
            "type": "tool_use", "id": f"toolu_{turn:02d}{i:022x}", "name": name, "input": {}}})
        for piece in _pieces(json.dumps(args)):
            yield event("content_block_delta", {"index": index, "delta": {"type": "input_json_delta",
                                                                          "partial_json": piece}})
            await asyncio.sleep(GAP)
        yield event("content_block_stop", {"index": index})
        index += 1
    yield event("message_delta", {"delta": {"stop_reason": "tool_use" if calls else "end_turn",
                                            "stop_sequence": None}, "usage": {"output_tokens": OUTPUT_TOKENS}})
    yield event("message_stop", {})


def make_app(state: State) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state.requests.append(body)
        return StreamingResponse(_openai_stream(state, body), media_type="text/event-stream")

    @app.post("/v1/messages")
    async def messages(request: Request):
        body = await request.json()
        state.requests.append(body)
        return StreamingResponse(_anthropic_stream(state, body), media_type="text/event-stream")

    return app


class FakeM2:
    """Context manager: `with FakeM2(script) as fake: fake.base_url, fake.state.requests`."""

    def __init__(self, script: list[str], reasoning_mode: str = "fields"):
        self.state = State(list(script), reasoning_mode)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(make_app(self.state), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FakeM2":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake M2 server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
