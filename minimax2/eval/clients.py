"""Streaming model calls through the official `openai` and `anthropic` SDKs.

A call returns a Turn: the assistant message exactly as received in the protocol's own format
(reasoning included: `reasoning_content` / `reasoning` / `reasoning_details` / `<think>` in content
for OpenAI, `thinking` blocks for Anthropic), the tool calls, normalised usage and timings:
ttft_any (first delta of any kind), ttft_visible (first non-reasoning delta), e2e, and
decode_tps = (output - 1) / (e2e - ttft_any) with output tokens from the server's usage."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)
OPENAI_STANDARD = ("temperature", "top_p", "max_tokens", "seed", "stop")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as received


@dataclass
class Turn:
    message: dict
    tool_calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    reasoning: str = ""
    stop_reason: str | None = None
    usage: dict = field(default_factory=dict)  # input (all prompt tokens), cached, cache_write, output
    metrics: dict = field(default_factory=dict)


def _metrics(start: float, first_any: float | None, first_visible: float | None, end: float,
             output_tokens: int) -> dict:
    e2e = end - start
    ttft_any = None if first_any is None else first_any - start
    decode = None
    if ttft_any is not None and output_tokens > 1 and e2e > ttft_any:
        decode = (output_tokens - 1) / (e2e - ttft_any)
    return {"ttft_any": ttft_any, "ttft_visible": None if first_visible is None else first_visible - start,
            "e2e": e2e, "decode_tps": decode}


def _merge_details(items: list, new: list) -> None:
    """Accumulate streamed reasoning_details: items with the same index (or id) extend their text."""
    for part in new:
        part = dict(part)
        key = part.get("index", part.get("id"))
        same = [i for i in items if key is not None and i.get("index", i.get("id")) == key]
        if same:
            same[0]["text"] = (same[0].get("text") or "") + (part.get("text") or "")
        else:
            items.append(part)


def call_openai(client, endpoint: dict, messages: list[dict], tools: list[dict]) -> Turn:
    sampling = dict(endpoint.get("sampling") or {})
    kwargs = {k: sampling.pop(k) for k in OPENAI_STANDARD if k in sampling}
    start = time.monotonic()
    stream = client.chat.completions.create(
        model=endpoint["model"], messages=messages, tools=tools, stream=True,
        stream_options={"include_usage": True}, extra_body=sampling or None, **kwargs)
    content, fields, details, calls = [], {}, [], {}
    first_any = first_visible = None
    usage, finish = None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta, now = choice.delta, time.monotonic()
            extra = delta.model_extra or {}
            got_reasoning = False
            for key in ("reasoning_content", "reasoning"):
                if extra.get(key):
                    fields[key] = fields.get(key, "") + extra[key]
                    got_reasoning = True
            if extra.get("reasoning_details"):
                _merge_details(details, extra["reasoning_details"])
                got_reasoning = True
            visible = bool(delta.content) or bool(delta.tool_calls)
            if delta.content:
                content.append(delta.content)
            for tc in delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            if (got_reasoning or visible) and first_any is None:
                first_any = now
            if visible and first_visible is None:
                first_visible = now
            finish = choice.finish_reason or finish
    end = time.monotonic()
    text = "".join(content)
    message = {"role": "assistant", "content": text or None, **fields}
    if details:
        message["reasoning_details"] = details
    ordered = [calls[i] for i in sorted(calls)]
    if ordered:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                 for c in ordered]
    reasoning = fields.get("reasoning_content") or fields.get("reasoning") or "".join(
        d.get("text") or "" for d in details) or "".join(m.group(0) for m in THINK.finditer(text))
    norm = {"input": 0, "cached": 0, "cache_write": 0, "output": 0}
    if usage is not None:
        cached = getattr(usage.prompt_tokens_details, "cached_tokens", 0) if usage.prompt_tokens_details else 0
        norm.update(input=usage.prompt_tokens or 0, cached=cached or 0, output=usage.completion_tokens or 0)
    return Turn(message, [ToolCall(c["id"], c["name"], c["arguments"]) for c in ordered],
                THINK.sub("", text), reasoning, finish, norm,
                _metrics(start, first_any, first_visible, end, norm["output"]))


def call_anthropic(client, endpoint: dict, system: str, messages: list[dict], tools: list[dict]) -> Turn:
    sampling = dict(endpoint.get("sampling") or {})
    max_tokens = sampling.pop("max_tokens", 16384)
    start = time.monotonic()
    stream = client.messages.create(model=endpoint["model"], max_tokens=max_tokens, system=system,
                                    messages=messages, tools=tools, stream=True,
                                    extra_body=sampling or None)
    blocks, partial, bad_json = [], {}, {}
    first_any = first_visible = None
    usage = {"input": 0, "cached": 0, "cache_write": 0, "output": 0}
    stop = None
    for event in stream:
        now = time.monotonic()
        if event.type == "message_start":
            u = event.message.usage
            cached, written = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
            usage.update(input=(u.input_tokens or 0) + cached + written, cached=cached,
                         cache_write=written, output=u.output_tokens or 0)
        elif event.type == "content_block_start":
            block = event.content_block.model_dump(exclude_none=True)
            if block["type"] == "tool_use":
                block["input"] = {}
                partial[event.index] = []
            blocks.append(block)
        elif event.type == "content_block_delta":
            d, block = event.delta, blocks[event.index]
            if d.type == "text_delta":
                block["text"] = block.get("text", "") + d.text
            elif d.type == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d.thinking
            elif d.type == "signature_delta":
                block["signature"] = block.get("signature", "") + d.signature
            elif d.type == "input_json_delta":
                partial[event.index].append(d.partial_json)
            if first_any is None:
                first_any = now
            if d.type in ("text_delta", "input_json_delta") and first_visible is None:
                first_visible = now
        elif event.type == "content_block_stop" and event.index in partial:
            raw = "".join(partial[event.index]) or "{}"
            try:
                blocks[event.index]["input"] = json.loads(raw)
            except json.JSONDecodeError:
                bad_json[blocks[event.index]["id"]] = raw  # reported to the model as a format error
            if first_visible is None:
                first_visible = now
        elif event.type == "message_delta":
            stop = event.delta.stop_reason or stop
            if event.usage is not None and event.usage.output_tokens is not None:
                usage["output"] = event.usage.output_tokens
    end = time.monotonic()
    message = {"role": "assistant", "content": blocks}
    calls = [ToolCall(b["id"], b["name"], bad_json.get(b["id"]) or json.dumps(b["input"]))
             for b in blocks if b["type"] == "tool_use"]
    text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
    reasoning = "".join(b.get("thinking", "") for b in blocks if b["type"] == "thinking")
    return Turn(message, calls, text, reasoning, stop, usage,
                _metrics(start, first_any, first_visible, end, usage["output"]))


def strip_thinking(message: dict) -> dict:
    """The message without its reasoning (the --strip-thinking ablation)."""
    out = {k: v for k, v in message.items() if k not in ("reasoning_content", "reasoning", "reasoning_details")}
    content = out.get("content")
    if isinstance(content, str):
        out["content"] = THINK.sub("", content) or None
    elif isinstance(content, list):
        out["content"] = [b for b in content if b.get("type") not in ("thinking", "redacted_thinking")]
    return out


def make_client(endpoint: dict):
    if endpoint["protocol"] == "openai":
        import openai

        return openai.OpenAI(base_url=endpoint["base_url"], api_key=endpoint.get("api_key") or "none",
                             timeout=endpoint.get("timeout", 600), max_retries=endpoint.get("max_retries", 2))
    import anthropic

    return anthropic.Anthropic(base_url=endpoint["base_url"], api_key=endpoint.get("api_key") or "none",
                               timeout=endpoint.get("timeout", 600), max_retries=endpoint.get("max_retries", 2))
