"""OpenAI-compatible routes: `/v1/models`, `/v1/chat/completions`, `/v1/completions`."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..chat import parse_output, thinking_enabled
from .chat_prep import openai_messages, prepare
from .body import body
from .errors import APIError, guard_stream
from .logprobs import chat_logprobs, completion_logprobs
from .params import check_prompt, check_prompt_chars, max_new_tokens, sampling_params, stop_list
from .protocol import ChatCompletionRequest, CompletionRequest
from .service import collect

router = APIRouter()


def sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _usage(prompt: int, completion: int, cached: int = 0) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def finish_reason(parsed, engine_reason: str | None) -> str:
    if parsed.tool_calls:
        return "tool_calls"
    return "length" if engine_reason == "length" else "stop"


def message(parsed, reasoning_split: bool) -> dict:
    msg = {"role": "assistant", "content": parsed.content if (parsed.content or not parsed.tool_calls) else None,
           "reasoning_content": parsed.reasoning or None, "reasoning": parsed.reasoning or None}
    if reasoning_split and parsed.reasoning:
        msg["reasoning_details"] = [{"type": "reasoning.text", "id": "reasoning-text-1", "format": "MiniMax-response-v1",
                                     "index": 0, "text": parsed.reasoning}]
    if parsed.tool_calls:
        msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json()}}
                             for c in parsed.tool_calls]
    return msg


def event_delta(ev, reasoning_split: bool = False) -> dict:
    """One `StreamParser` event as a chat.completion.chunk delta."""
    if ev.kind == "reasoning":
        d = {"reasoning_content": ev.text, "reasoning": ev.text}
        if reasoning_split:
            d["reasoning_details"] = [{"type": "reasoning.text", "id": "reasoning-text-1",
                                       "format": "MiniMax-response-v1", "index": 0, "text": ev.text}]
        return d
    if ev.kind == "content":
        return {"content": ev.text}
    if ev.kind == "tool_start":
        return {"tool_calls": [{"index": ev.index, "id": ev.id, "type": "function",
                                "function": {"name": ev.name, "arguments": ""}}]}
    return {"tool_calls": [{"index": ev.index, "function": {"arguments": ev.text}}]}


def _tool_choice(req, tools) -> tuple[list[dict] | None, list[str] | None]:
    tc = req.tool_choice
    if tc is not None and not tools and tc != "none":
        raise APIError(400, "tool_choice was given without tools", param="tool_choice")
    if tc == "none":
        return None, None
    if tc == "required":
        return tools, [t["function"]["name"] for t in tools]
    if isinstance(tc, dict):
        fn = tc.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if tc.get("type") != "function" or not isinstance(name, str):
            raise APIError(400, 'tool_choice must be "auto", "none", "required" or '
                                '{"type": "function", "function": {"name": ...}}', param="tool_choice")
        return tools, [name]
    return tools, None


def _template_kwargs(given: dict | None) -> dict:
    """`chat_template_kwargs` as the renderer takes them: `thinking` (some clients' name for the switch) is
    `enable_thinking`; the conversation's own arguments cannot be replaced through them."""
    kwargs = dict(given or {})
    if "thinking" in kwargs:
        kwargs.setdefault("enable_thinking", kwargs.pop("thinking"))
    taken = sorted({"messages", "tools", "add_generation_prompt"} & kwargs.keys())
    if taken:
        raise APIError(400, f"chat_template_kwargs cannot set {', '.join(taken)}: they come from the request itself",
                       param="chat_template_kwargs")
    return kwargs


def _json_schema(req) -> dict | None:
    rf = req.response_format
    if not rf or rf.get("type") in (None, "text"):
        return None
    if rf.get("type") == "json_object":
        return {"type": "object"}
    js = rf.get("json_schema") or {}
    if rf.get("type") == "json_schema" and isinstance(js, dict) and isinstance(js.get("schema", {}), dict):
        return js.get("schema") or {"type": "object"}
    raise APIError(400, "response_format must be text, json_object or json_schema with a schema object",
                   param="response_format")


def _model_card(st) -> dict:
    return {"id": st.config.served_model_name, "object": "model", "created": 0, "owned_by": "minimax2",
            "root": st.config.served_model_name, "max_model_len": st.backend.max_model_len}


@router.get("/v1/models")
async def models(request: Request):
    return {"object": "list", "data": [_model_card(request.app.state.server)]}


@router.get("/v1/models/{model:path}")
async def model(model: str, request: Request):
    st = request.app.state.server
    st.check_model(model)
    return _model_card(st)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, req: ChatCompletionRequest = Depends(body(ChatCompletionRequest))):
    st = request.app.state.server
    st.check_model(req.model)
    tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    rendered_tools, forced = _tool_choice(req, tools)
    kwargs = _template_kwargs(req.chat_template_kwargs)
    thinking = thinking_enabled(kwargs)
    prep = await asyncio.to_thread(  # rendering, tokenizing and grammar building stay off the event loop
        prepare, st, openai_messages(req.messages), rendered_tools, thinking=thinking, force_tools=forced,
                   parallel=req.parallel_tool_calls and req.tool_choice == "required",
                   json_schema=None if forced else _json_schema(req), template_kwargs=kwargs,
                   thinking_budget=req.thinking_budget, n=req.n)
    n_max = max_new_tokens(req.max_completion_tokens or req.max_tokens, len(prep.prompt_ids), st.backend.max_model_len,
                           clip=False)
    logprobs = (req.top_logprobs or 0) if req.logprobs else None
    params = sampling_params(req, n_max, stop=stop_list(req.stop), logprobs=logprobs, n=req.n, processors=prep.processors)
    rid, created = st.new_id("chatcmpl"), int(time.time())
    gen = st.generate(rid, prep.prompt, prep.prompt_ids, params, st.admit())  # validated: only now take a slot
    head = {"id": rid, "created": created, "model": req.model}
    tok = st.backend.tokenizer
    if req.stream:
        include_usage = bool((req.stream_options or {}).get("include_usage"))
        return StreamingResponse(guard_stream("/v1/chat/completions", _stream_chat(gen, head, prep, req, tok, include_usage), gen, sse), media_type="text/event-stream")
    texts, reasons, lps = [""] * req.n, [None] * req.n, [[] for _ in range(req.n)]
    usage = [0, 0, 0]
    for c in await collect(request, gen):
        texts[c.index] += c.text
        lps[c.index] += c.logprobs
        if c.finish_reason is not None:
            reasons[c.index] = c.finish_reason
            usage = [c.prompt_tokens, usage[1] + c.completion_tokens, c.cached_tokens]
    choices = []
    for i in range(req.n):
        parsed = parse_output(texts[i], prep.tools, reasoning=prep.reasoning)
        if not req.parallel_tool_calls:
            parsed.tool_calls = parsed.tool_calls[:1]
        choices.append({"index": i, "message": message(parsed, req.reasoning_split),
                        "logprobs": chat_logprobs(tok, lps[i]) if logprobs is not None else None,
                        "finish_reason": finish_reason(parsed, reasons[i])})
    return {**head, "object": "chat.completion", "choices": choices, "usage": _usage(*usage)}


async def _stream_chat(gen, head, prep, req, tok, include_usage):
    head = {**head, "object": "chat.completion.chunk"}
    parsers = [prep.stream_parser() for _ in range(req.n)]
    usage = [0, 0, 0]

    def chunk(i, delta, finish=None, lp=None):
        return sse({**head, "choices": [{"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}]})
    for i in range(req.n):
        yield chunk(i, {"role": "assistant", "content": ""})
    async for c in gen:
        p = parsers[c.index]
        events = p.feed(c.text)
        if c.finish_reason is not None:
            events += p.finish()
        if not req.parallel_tool_calls:
            events = [ev for ev in events if ev.kind in ("reasoning", "content") or ev.index == 0]
        lp = chat_logprobs(tok, c.logprobs) if req.logprobs and c.logprobs else None
        for k, ev in enumerate(events):
            yield chunk(c.index, event_delta(ev, req.reasoning_split), lp=lp if k == 0 else None)
        if lp and not events:
            yield chunk(c.index, {}, lp=lp)
        if c.finish_reason is not None:
            usage = [c.prompt_tokens, usage[1] + c.completion_tokens, c.cached_tokens]
            yield chunk(c.index, {}, finish_reason(p.final, c.finish_reason))
    if include_usage:
        yield sse({**head, "choices": [], "usage": _usage(*usage)})
    yield "data: [DONE]\n\n"


@router.post("/v1/completions")
async def completions(request: Request, req: CompletionRequest = Depends(body(CompletionRequest))):
    st = request.app.state.server
    st.check_model(req.model)
    prompt = req.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        if len(prompt) != 1:
            raise APIError(400, "batched prompts are not supported; send one prompt per request", param="prompt")
        prompt = prompt[0]
    text, ids = await _prompt_ids(st, prompt)
    n_max = max_new_tokens(req.max_tokens, len(ids), st.backend.max_model_len, clip=False)
    params = sampling_params(req, n_max, stop=stop_list(req.stop), logprobs=req.logprobs, n=req.n)
    rid, created = st.new_id("cmpl"), int(time.time())
    gen = st.generate(rid, text, ids, params, st.admit())
    head = {"id": rid, "object": "text_completion", "created": created, "model": req.model}
    tok = st.backend.tokenizer
    if req.stream:
        include_usage = bool((req.stream_options or {}).get("include_usage"))
        lp = (lambda infos, start: completion_logprobs(tok, infos, start)) if req.logprobs is not None else None
        events = _stream_completion(gen, head, include_usage, text if req.echo else "", req.n, lp)
        return StreamingResponse(guard_stream("/v1/completions", events, gen, sse), media_type="text/event-stream")
    texts, reasons, usage = [""] * req.n, ["stop"] * req.n, [0, 0, 0]
    lps: list[list[dict]] = [[] for _ in range(req.n)]
    for c in await collect(request, gen):
        texts[c.index] += c.text
        lps[c.index] += c.logprobs
        if c.finish_reason is not None:
            reasons[c.index] = "length" if c.finish_reason == "length" else "stop"
            usage = [c.prompt_tokens, usage[1] + c.completion_tokens, c.cached_tokens]
    start = len(text) if req.echo else 0
    choices = [{"index": i, "text": (text if req.echo else "") + texts[i], "finish_reason": reasons[i],
                "logprobs": completion_logprobs(tok, lps[i], start) if req.logprobs is not None else None}
               for i in range(req.n)]
    return JSONResponse({**head, "choices": choices, "usage": _usage(*usage)})


async def _prompt_ids(st, prompt: str | list[int]) -> tuple[str, list[int]]:
    """Text and token ids of a /v1/completions prompt: text is bounded by its length, then tokenized off
    the event loop; ids are checked against the vocabulary and the context before they are decoded."""
    limit = st.backend.max_model_len
    if isinstance(prompt, str):
        check_prompt_chars(len(prompt), st.max_prompt_chars, limit, param="prompt")
        ids = await asyncio.to_thread(st.encode, prompt)
    else:
        ids = list(prompt)
        check_prompt(len(ids), limit, param="prompt")  # first: a list longer than the context is not scanned
        bad = next((t for t in ids if not 0 <= t < st.backend.vocab_size), None)
        if bad is not None:
            raise APIError(400, f"prompt token id {bad} is outside the vocabulary (0..{st.backend.vocab_size - 1})",
                           param="prompt")
    if not ids:
        raise APIError(400, "the prompt is empty", param="prompt")
    check_prompt(len(ids), limit, param="prompt")
    return (prompt if isinstance(prompt, str) else await asyncio.to_thread(st.backend.tokenizer.decode, ids)), ids


async def _stream_completion(gen, head, include_usage, echo: str, n: int, logprobs):
    """`echo`: the prompt text, sent first in each choice; `logprobs(infos, start)`: each chunk's tokens'
    logprobs object (None: not asked for), offsets counted through the choice's text."""
    usage = [0, 0, 0]
    offset = [len(echo)] * n
    if echo:
        for i in range(n):
            yield sse({**head, "choices": [{"index": i, "text": echo, "logprobs": None, "finish_reason": None}]})
    async for c in gen:
        reason = None if c.finish_reason is None else ("length" if c.finish_reason == "length" else "stop")
        if c.text or reason or (logprobs and c.logprobs):
            stop = {"stop_reason": c.stop_string} if c.stop_string else {}
            lp = logprobs(c.logprobs, offset[c.index]) if logprobs and c.logprobs else None
            if lp:
                offset[c.index] += sum(len(t) for t in lp["tokens"])
            yield sse({**head, "choices": [{"index": c.index, "text": c.text, "logprobs": lp,
                                            "finish_reason": reason, **stop}]})
        if reason:
            usage = [c.prompt_tokens, usage[1] + c.completion_tokens, c.cached_tokens]
    if include_usage:
        yield sse({**head, "choices": [], "usage": _usage(*usage)})
    yield "data: [DONE]\n\n"
