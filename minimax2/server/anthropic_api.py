"""Anthropic-compatible routes: `/v1/messages` (streaming and not) and `/v1/messages/count_tokens`."""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..chat import parse_output
from .anthropic_format import EventWriter, content_blocks, sse, stop_reason, to_messages
from .chat_prep import prepare
from .body import body
from .errors import APIError, guard_stream
from .params import max_new_tokens, sampling_params
from .protocol import CountTokensRequest, MessagesRequest
from .service import collect

router = APIRouter()


def _tools(req) -> list[dict] | None:
    if not req.tools:
        return None
    for i, t in enumerate(req.tools):  # web_search_*, bash_*, text_editor_*: defined (and some run) at Anthropic
        kind = getattr(t, "type", None)
        if kind not in (None, "custom"):
            raise APIError(400, f"tools[{i}]: {kind!r} is an Anthropic-defined tool, whose schema only Anthropic's "
                                f"models know (and server tools run at Anthropic); give it as a custom tool with "
                                f"name, description and input_schema", param=f"tools[{i}].type")
    return [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                              "parameters": t.input_schema}} for t in req.tools]


def _choice(req, tools) -> tuple[list[dict] | None, list[str] | None, bool]:
    tc = req.tool_choice or {"type": "auto"}
    kind = tc.get("type")
    parallel = not tc.get("disable_parallel_tool_use", False)
    if kind in ("auto", None):
        return tools, None, parallel
    if kind == "none":
        return None, None, parallel
    if not tools:
        raise APIError(400, "tool_choice was given without tools")
    if kind == "any":
        return tools, [t["function"]["name"] for t in tools], parallel
    if kind == "tool" and isinstance(tc.get("name"), str):
        return tools, [tc["name"]], False
    raise APIError(400, "tool_choice.type must be auto, any, tool (with a name) or none")


def _thinking(req) -> bool:
    kind = (req.thinking or {}).get("type", "enabled")
    if kind not in ("enabled", "adaptive", "disabled"):
        raise APIError(400, "thinking.type must be enabled, adaptive or disabled")
    return kind != "disabled"


def _prepare(st, req):
    st.check_model(req.model)
    tools = _tools(req)
    rendered, forced, parallel = _choice(req, tools)
    msgs = to_messages(req.system, req.messages, None if st.config.accept_unsigned_thinking else st.config.thinking_secret)
    budget = (req.thinking or {}).get("budget_tokens")
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise APIError(400, "thinking.budget_tokens must be a non-negative integer")
    return prepare(st, msgs, rendered, thinking=_thinking(req), force_tools=forced, parallel=parallel,
                   thinking_budget=budget)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, req: CountTokensRequest = Depends(body(CountTokensRequest))):
    prep = await asyncio.to_thread(_prepare, request.app.state.server, req)
    return {"input_tokens": len(prep.prompt_ids)}


@router.post("/v1/messages")
async def messages(request: Request, req: MessagesRequest = Depends(body(MessagesRequest))):
    st = request.app.state.server
    prep = await asyncio.to_thread(_prepare, st, req)  # rendering and tokenizing stay off the event loop
    n_max = max_new_tokens(req.max_tokens, len(prep.prompt_ids), st.backend.max_model_len, clip=True)
    params = sampling_params(req, n_max, stop=req.stop_sequences, processors=prep.processors)
    rid = "msg_" + secrets.token_hex(12)
    gen = st.generate(rid, prep.prompt, prep.prompt_ids, params, st.admit())  # validated: only now take a slot
    head = {"id": rid, "type": "message", "role": "assistant", "model": req.model}
    if req.stream:
        return StreamingResponse(guard_stream("/v1/messages", _stream(gen, head, prep, st.config.thinking_secret), gen, sse), media_type="text/event-stream")
    text, last = "", None
    for c in await collect(request, gen):
        text += c.text
        if c.finish_reason is not None:
            last = c
    parsed = parse_output(text, prep.tools, reasoning=prep.reasoning)
    reason, seq = stop_reason(parsed, last.finish_reason if last else None, last.stop_string if last else None)
    return {**head, "content": content_blocks(parsed, st.config.thinking_secret), "stop_reason": reason,
            "stop_sequence": seq, "usage": {"input_tokens": len(prep.prompt_ids),
                                            "output_tokens": last.completion_tokens if last else 0,
                                            "cache_read_input_tokens": last.cached_tokens if last else 0}}


async def _stream(gen, head, prep, secret):
    parser, writer = prep.stream_parser(), EventWriter(secret)
    yield sse({"type": "message_start", "message": {**head, "content": [], "stop_reason": None, "stop_sequence": None,
                                                    "usage": {"input_tokens": len(prep.prompt_ids), "output_tokens": 0}}})
    async for c in gen:
        events = parser.feed(c.text)
        if c.finish_reason is not None:
            events += parser.finish()
        for ev in events:
            for out in writer.events(ev):
                yield sse(out)
        if c.finish_reason is not None:
            for out in writer.end():
                yield sse(out)
            reason, seq = stop_reason(parser.final, c.finish_reason, c.stop_string)
            yield sse({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": seq},
                       "usage": {"input_tokens": len(prep.prompt_ids), "output_tokens": c.completion_tokens}})
            yield sse({"type": "message_stop"})
