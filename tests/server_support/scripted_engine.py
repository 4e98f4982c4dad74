"""A scripted raw-text engine on 127.0.0.1: an OpenAI `/v1/completions` endpoint (what
`RemoteBackend` forwards rendered prompts to) that streams fixed M2 outputs, so a real `minimax2`
server in front of it answers deterministically (tool call, then answer, ...).

The prompt arrives as text or, as `RemoteBackend` sends it, as token ids; ids are decoded with the
checkpoint's tokenizer (`tokenizer=`, a checkpoint directory or a `Tokenizer`). Every prompt received
is kept in `prompts` (as text) and `prompt_ids` (the ids as sent; None for a text prompt).

Which output is served is the number of assistant turns already in the prompt (`]~b]ai` blocks
before the generation prompt), clamped to the script; counted on the ids when ids were sent (only a
real `]~b]` control token opens a turn, not the same characters in a message).
Usage: prompt_tokens = 100, completion_tokens = the number of pieces streamed; a piece counts as a
token for `max_tokens`, which cuts the output with finish_reason "length". The output `FAIL`
makes the engine answer 500 instead (a backend failure)."""

from __future__ import annotations

import json
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from minimax2.chat.tokenizer import Tokenizer

PIECE = 5  # characters per streamed chunk
FAIL = "<engine fails>"


class ScriptedEngine:
    def __init__(self, script: list[str], model: str = "scripted", tokenizer=None):
        self.script, self.model, self.prompts = list(script), model, []
        self.prompt_ids: list[list[int] | None] = []
        self.tokenizer = tokenizer if tokenizer is None or isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output_for(self, prompt: str, ids: list[int] | None = None) -> str:
        if ids is None:
            turns = prompt.count("]~b]ai")
        else:
            b = self.tokenizer.token_to_id("]~b]")
            turns = sum(1 for i, t in enumerate(ids)
                        if t == b and self.tokenizer.decode(ids[i + 1:i + 3]).startswith("ai"))
        return self.script[min(max(turns - 1, 0), len(self.script) - 1)]

    def _prompt(self, body: dict) -> tuple[str, list[int] | None]:
        prompt = body["prompt"]
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, str):
            return prompt, None
        if self.tokenizer is None:
            raise ValueError("token-id prompts need ScriptedEngine(tokenizer=...)")
        ids = [int(t) for t in prompt]
        return self.tokenizer.decode(ids), ids

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "test"}]}

        @app.post("/v1/completions")
        async def completions(request: Request):
            body = await request.json()
            try:
                prompt, ids = self._prompt(body)
            except ValueError as e:
                return JSONResponse({"error": {"message": str(e), "type": "invalid_request_error"}}, status_code=400)
            self.prompts.append(prompt)
            self.prompt_ids.append(ids)
            text = self.output_for(prompt, ids)
            if text == FAIL:
                return JSONResponse({"error": {"message": "engine exploded", "type": "internal_error"}}, status_code=500)
            return StreamingResponse(self._stream(body, text), media_type="text/event-stream")

        return app

    async def _stream(self, body: dict, text: str):
        pieces = [text[i:i + PIECE] for i in range(0, len(text), PIECE)]
        cut = body.get("max_tokens") is not None and len(pieces) > body["max_tokens"]
        pieces = pieces[:body["max_tokens"]] if cut else pieces
        base = {"id": "cmpl-scripted", "object": "text_completion", "created": int(time.time()), "model": self.model}
        for p in pieces:
            yield "data: " + json.dumps({**base, "choices": [{"index": 0, "text": p, "finish_reason": None}]}) + "\n\n"
        yield "data: " + json.dumps({**base, "choices": [{"index": 0, "text": "", "finish_reason": "length" if cut else "stop"}]}) + "\n\n"
        usage = {"prompt_tokens": 100, "completion_tokens": len(pieces), "total_tokens": 100 + len(pieces)}
        yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
        yield "data: [DONE]\n\n"

    def __enter__(self) -> "ScriptedEngine":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted engine did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
