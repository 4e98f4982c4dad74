"""Anthropic Messages <-> the M2 conversation: request blocks to OpenAI-shaped messages, parsed output
to content blocks, and `StreamParser` events to the Messages streaming events."""

from __future__ import annotations

import json

from .errors import APIError
from .signing import sign, verify

__all__ = ["EventWriter", "content_blocks", "sign", "sse", "stop_reason", "to_messages"]


def _text(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where}: content must be a string or a list of blocks")
    parts = []
    for j, b in enumerate(content):
        if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
            raise APIError(400, f"{where}[{j}]: only text blocks are supported here")
        parts.append(b["text"])
    return "\n".join(parts)


def _block_text(b: dict, at: str) -> str:
    if not isinstance(b.get("text"), str):
        raise APIError(400, f"{at}.text must be a string, got {type(b.get('text')).__name__}")
    return b["text"]


def to_messages(system, messages: list[dict], secret: bytes | None) -> list[dict]:
    """Anthropic `system` + `messages` -> OpenAI-shaped messages for the M2 renderer. `secret`: the key
    every thinking block's signature must verify under (None: unsigned blocks are trusted)."""
    out = [{"role": "system", "content": _text(system, "system")}] if system else []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        role, content = msg.get("role"), msg.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise APIError(400, f"{where}.content must be a string or a list of blocks")
        if role == "assistant":
            out.append(_assistant(content, where, secret))
            continue
        texts = []  # user (and unknown roles some clients send, mapped to user)
        for j, b in enumerate(content):
            kind = b.get("type") if isinstance(b, dict) else None
            if kind == "text":
                texts.append(_block_text(b, f"{where}.content[{j}]"))
            elif kind == "tool_result":
                body = b.get("content", "")
                body = body if isinstance(body, str) else _text(body or [], f"{where}.content[{j}].content")
                if b.get("is_error"):
                    body = f"Error: {body}"
                out.append({"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": body})
            else:
                raise APIError(400, f"{where}.content[{j}]: unsupported block type {kind!r} in a {role} message")
        if texts:
            out.append({"role": "user", "content": "\n".join(texts)})
    return out


def _assistant(blocks: list, where: str, secret: bytes | None) -> dict:
    thinking, text, calls = [], [], []
    for j, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        at = f"{where}.content[{j}]"
        if kind == "thinking":
            t = b.get("thinking", "")
            if not isinstance(t, str):
                raise APIError(400, f"{at}.thinking must be a string")
            if secret is not None and not verify(secret, t, b.get("signature")):
                raise APIError(400, f"{at}: the thinking block's signature is missing or invalid; send thinking "
                                    "blocks back exactly as this server returned them (signature included), or "
                                    "leave them out")
            thinking.append(t)
        elif kind == "redacted_thinking":
            continue
        elif kind == "text":
            text.append(_block_text(b, at))
        elif kind == "tool_use":
            name, args = b.get("name"), b.get("input")
            if not isinstance(name, str) or not name:
                raise APIError(400, f"{at}.name must be a non-empty string")
            if args is not None and not isinstance(args, dict):
                raise APIError(400, f"{at}.input must be an object, got {type(args).__name__}")
            calls.append({"id": b.get("id"), "type": "function", "function": {"name": name, "arguments": args or {}}})
        else:
            raise APIError(400, f"{where}.content[{j}]: unsupported block type {kind!r} in an assistant message")
    msg = {"role": "assistant", "content": "".join(text)}
    if thinking:
        msg["reasoning_content"] = "\n".join(thinking)
    if calls:
        msg["tool_calls"] = calls
    return msg


def tool_id(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_")


def content_blocks(parsed, secret: bytes) -> list[dict]:
    blocks = []
    if parsed.reasoning:
        blocks.append({"type": "thinking", "thinking": parsed.reasoning, "signature": sign(secret, parsed.reasoning)})
    if parsed.content:
        blocks.append({"type": "text", "text": parsed.content})
    for c in parsed.tool_calls:
        blocks.append({"type": "tool_use", "id": tool_id(c.id), "name": c.name, "input": c.arguments})
    return blocks or [{"type": "text", "text": ""}]


def stop_reason(parsed, engine_reason: str | None, stop_string: str | None) -> tuple[str, str | None]:
    if parsed.tool_calls:
        return "tool_use", None
    if engine_reason == "length":
        return "max_tokens", None
    if stop_string:
        return "stop_sequence", stop_string
    return "end_turn", None


class EventWriter:
    """`StreamParser` events -> content_block_start / _delta / _stop events, blocks in order."""

    def __init__(self, secret: bytes):
        self.secret, self.index, self.open, self.thinking = secret, -1, None, ""

    def _start(self, kind: str, block: dict) -> list[dict]:
        out = self.close()
        self.index += 1
        self.open, self.thinking = kind, ""
        return out + [{"type": "content_block_start", "index": self.index, "content_block": block}]

    def _delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def close(self) -> list[dict]:
        if self.open is None:
            return []
        out = []
        if self.open == "thinking":
            out.append(self._delta({"type": "signature_delta", "signature": sign(self.secret, self.thinking)}))
        self.open = None
        return out + [{"type": "content_block_stop", "index": self.index}]

    def events(self, ev) -> list[dict]:
        out = []
        if ev.kind == "reasoning":
            if self.open != "thinking":
                out = self._start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self.thinking += ev.text
            return out + [self._delta({"type": "thinking_delta", "thinking": ev.text})]
        if ev.kind == "content":
            if self.open != "text":
                out = self._start("text", {"type": "text", "text": ""})
            return out + [self._delta({"type": "text_delta", "text": ev.text})]
        if ev.kind == "tool_start":
            return self._start(f"tool{ev.index}", {"type": "tool_use", "id": tool_id(ev.id), "name": ev.name, "input": {}})
        if self.open != f"tool{ev.index}":  # late arguments of an earlier call (only after malformed output)
            return []
        return [self._delta({"type": "input_json_delta", "partial_json": ev.text})]

    def end(self) -> list[dict]:
        if self.index < 0:  # nothing at all: one empty text block, as the non-streaming response has
            return self._start("text", {"type": "text", "text": ""}) + self.close()
        return self.close()


def sse(event: dict) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
