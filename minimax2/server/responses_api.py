"""OpenAI Responses routes: `POST /v1/responses` (streaming and not), `GET` and `DELETE
/v1/responses/{id}`. The conversation is rendered, constrained (tool_choice, text.format), sampled and
parsed by the same code as `/v1/chat/completions`; only the request and output shapes differ.

`previous_response_id` continues a stored response (kept in memory, the latest `max_entries`;
`store: false` keeps nothing). `reasoning.effort: "none"` pre-fills an empty think block;
`reasoning.summary` set also streams the reasoning as its summary; `include:
["reasoning.encrypted_content"]` adds an opaque, signed copy of the reasoning to reasoning items so
that stateless clients can send it back."""

from __future__ import annotations

import asyncio
import secrets
import time
from types import SimpleNamespace
from typing import Annotated, Any, Optional, Union

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from ..chat import markers as m
from .chat_prep import prepare
from .body import body
from .errors import APIError, guard_stream
from .openai_api import _json_schema, _tool_choice
from .params import MODEL_CARD, max_new_tokens, sampling_params
from .protocol import MAX_MESSAGES, MAX_TOOLS, _Sampling
from .responses_format import (ResponseStore, chat_response_format, chat_tool_choice, chat_tools, echo_tools,
                               input_items, reasoning_token, to_messages, usage)
from .responses_stream import OutputWriter
from .service import collect

router = APIRouter()
PATH = "/v1/responses"


class ResponsesRequest(_Sampling):
    model: str
    input: Union[str, Annotated[list[dict[str, Any]], Field(max_length=MAX_MESSAGES)], None] = None
    instructions: Optional[str] = None
    tools: Optional[list[dict[str, Any]]] = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Union[str, dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None
    text: Optional[dict[str, Any]] = None
    reasoning: Optional[dict[str, Any]] = None
    max_output_tokens: Optional[int] = Field(default=None, ge=1)
    store: Optional[bool] = None
    previous_response_id: Optional[str] = None
    include: Optional[list[str]] = None
    metadata: Optional[dict[str, Any]] = None
    background: Optional[bool] = None
    user: Optional[str] = None


def store_of(app) -> ResponseStore:
    store = getattr(app.state, "responses", None)
    if store is None:
        store = app.state.responses = ResponseStore()
    return store


def _reasoning_tokens(tok, ids: list[int], reasoning: str, output_tokens: int, answered: bool) -> int:
    """Tokens up to and including ``</think>`` (all of them while the output never left the reasoning)."""
    end = tok.encode(m.THINK_END)
    if ids and len(end) == 1 and end[0] in ids:
        return ids.index(end[0]) + 1
    if not answered:
        return output_tokens if reasoning else 0
    return len(tok.encode(reasoning)) + 1 if reasoning else 0


class _Run:
    """One request's generation: everything needed to turn its output into a response object."""

    def __init__(self, st, req: ResponsesRequest, store: ResponseStore):
        self.st, self.req, self.store = st, req, store
        st.check_model(req.model)
        if req.background:
            raise APIError(400, "background responses are not supported by this server", param="background")
        prev_items = store.get(req.previous_response_id, "previous_response_id")[1] if req.previous_response_id else []
        self.items = prev_items + input_items(req.input)
        if not input_items(req.input):
            raise APIError(400, "input is required (a string or a list of input items)", param="input")
        effort = (req.reasoning or {}).get("effort")
        self.thinking = effort != "none"
        self.summary = (req.reasoning or {}).get("summary") is not None
        secret = st.config.thinking_secret
        self.token = ((lambda text: reasoning_token(secret, text))
                      if "reasoning.encrypted_content" in (req.include or []) else None)
        self.messages = to_messages(self.items, req.instructions, secret)
        tools = chat_tools(req.tools)
        tc, tools = chat_tool_choice(req.tool_choice, tools)
        self.chat = SimpleNamespace(tool_choice=tc, response_format=chat_response_format(req.text))
        self.tools, self.forced = _tool_choice(self.chat, tools)
        self.parallel = req.parallel_tool_calls is not False
        self.rid, self.created = "resp_" + secrets.token_hex(24), int(time.time())

    def prepare(self):
        fmt = None if self.forced else _json_schema(self.chat)
        self.prep = prepare(self.st, self.messages, self.tools, thinking=self.thinking, force_tools=self.forced,
                            parallel=self.parallel and self.chat.tool_choice == "required", json_schema=fmt)
        return self

    def start(self):
        st, prep = self.st, self.prep
        try:
            n_max = max_new_tokens(self.req.max_output_tokens, len(prep.prompt_ids), st.backend.max_model_len, clip=False)
        except APIError as e:  # worded for chat completions
            e.message = e.message.replace("max_tokens", "max_output_tokens")
            e.param = "max_output_tokens" if e.param == "max_tokens" else e.param
            raise
        params = sampling_params(self.req, n_max, processors=prep.processors)
        self.gen = st.generate(self.rid, prep.prompt, prep.prompt_ids, params, st.admit())  # validated: take a slot
        self.parser = prep.stream_parser()
        self.writer = OutputWriter(self.summary, self.parallel, self.token)
        self.ids: list[int] = []
        return self.gen

    def response(self, status: str = "in_progress", last=None) -> dict:
        req = self.req
        body = {"id": self.rid, "object": "response", "created_at": self.created, "status": status,
                "model": req.model, "output": self.writer.items if status != "in_progress" else [],
                "error": None, "incomplete_details": None, "instructions": req.instructions,
                "metadata": req.metadata or {}, "parallel_tool_calls": self.parallel,
                "temperature": MODEL_CARD["temperature"] if req.temperature is None else req.temperature,
                "top_p": MODEL_CARD["top_p"] if req.top_p is None else req.top_p,
                "tool_choice": req.tool_choice or "auto", "tools": echo_tools(req.tools),
                "max_output_tokens": req.max_output_tokens, "previous_response_id": req.previous_response_id,
                "reasoning": {"effort": (req.reasoning or {}).get("effort"), "summary": (req.reasoning or {}).get("summary")},
                "text": req.text or {"format": {"type": "text"}}, "truncation": "disabled",
                "store": req.store is not False, "user": req.user, "usage": None}
        if status == "incomplete":
            body["incomplete_details"] = {"reason": "max_output_tokens"}
        if status in ("completed", "incomplete"):
            body["completed_at"] = int(time.time())
        if last is not None:
            final = self.parser.final
            answered = bool(final and (final.content or final.tool_calls))
            rt = _reasoning_tokens(self.st.backend.tokenizer, self.ids, final.reasoning if final else "",
                                   last.completion_tokens, answered) if self.prep.reasoning else 0
            body["usage"] = usage(last.prompt_tokens or len(self.prep.prompt_ids), last.completion_tokens,
                                  last.cached_tokens, rt)
        return body

    def feed(self, c) -> list[dict]:
        self.ids += c.new_token_ids
        out = []
        for ev in self.parser.feed(c.text) + (self.parser.finish() if c.finish_reason is not None else []):
            out += self.writer.feed(ev)
        return out

    def finish(self, last) -> tuple[list[dict], dict]:
        final, streamed = self.parser.final, self.writer
        if self.parser.mismatch and final is not None:
            # The stream showed a call that the final parse does not hold (markup cut off by
            # max_output_tokens, or malformed): the response is what the final parse says, as for
            # Chat Completions; the events already sent are closed but not taken back.
            self.writer = streamed.replay(final)
        incomplete = last is not None and last.finish_reason == "length" and not self.writer.has_calls
        events = streamed.end(incomplete)
        if self.writer is not streamed:
            self.writer.end(incomplete)
        body = self.response("incomplete" if incomplete else "completed", last)
        if self.req.store is not False:
            self.store.put(body, self.items + [dict(i) for i in body["output"]], input_items(self.req.input))
        return events, body


@router.post(PATH)
async def create_response(request: Request, req: ResponsesRequest = Depends(body(ResponsesRequest))):
    st = request.app.state.server
    run = _Run(st, req, store_of(request.app))
    await asyncio.to_thread(run.prepare)  # rendering, tokenizing and grammar building stay off the event loop
    gen = run.start()
    if req.stream:
        return StreamingResponse(guard_stream(PATH, _stream(run), gen, run.writer.sse), media_type="text/event-stream")
    last = None
    for c in await collect(request, gen):
        run.feed(c)
        if c.finish_reason is not None:
            last = c
    if last is None:  # the client went away before the end: nobody reads this
        raise APIError(500, "the generation ended without a result")
    return run.finish(last)[1]


async def _stream(run: _Run):
    w = run.writer
    yield w.sse(w.event("response.created", response=run.response()))
    yield w.sse(w.event("response.in_progress", response=run.response()))
    last = None
    async for c in run.gen:
        for ev in run.feed(c):
            yield w.sse(ev)
        if c.finish_reason is not None:
            last = c
    events, body = run.finish(last)
    for ev in events:
        yield w.sse(ev)
    yield w.sse(w.event("response.completed" if body["status"] == "completed" else "response.incomplete", response=body))


@router.get(PATH + "/{response_id}")
async def retrieve_response(response_id: str, request: Request):
    return store_of(request.app).get(response_id)[0]


@router.delete(PATH + "/{response_id}")
async def delete_response(response_id: str, request: Request):
    store_of(request.app).delete(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}
