"""OpenAI Responses <-> the M2 conversation: input items to the chat messages the renderer takes,
request fields (tools, tool_choice, text.format) to their Chat Completions equivalents, output items,
and the bounded in-memory store behind `previous_response_id` and `GET /v1/responses/{id}`.

Input items of one assistant turn (a `reasoning` item, an assistant `message`, `function_call`
items, in any order) become one assistant message with `reasoning_content`, `content` and
`tool_calls`; the renderer then applies M2's interleaved-thinking rule (reasoning is rendered only
for assistant turns after the last user message). A reasoning item's text is its `content`
(`reasoning_text` parts), else its `summary`, else its `encrypted_content` (which this server
issues when asked to with `include: ["reasoning.encrypted_content"]`, and verifies).

Plain reasoning text is accepted unsigned, as Chat Completions accepts `reasoning_content`: the
Agents SDK and Codex send reasoning items back exactly as they received them, with no signature."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections import OrderedDict

from .signing import sign, verify
from .errors import APIError

TEXT_PARTS = {"input_text", "output_text", "text", "summary_text", "reasoning_text"}


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


# -- input -----------------------------------------------------------------------------------------
def _text(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where} must be a string or a list of content parts", param=where)
    parts = []
    for j, p in enumerate(content):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in TEXT_PARTS and isinstance(p.get("text"), str):
            parts.append(p["text"])
        elif kind == "refusal" and isinstance(p.get("refusal"), str):
            parts.append(p["refusal"])
        else:
            raise APIError(400, f"{where}[{j}]: content part type {kind!r} is not supported (this model reads text: "
                                f"input_text / output_text)", param=f"{where}[{j}].type")
    return "".join(parts)


def reasoning_token(secret: bytes, reasoning: str) -> str:
    """The `encrypted_content` of a reasoning item: the text and its HMAC (opaque to clients)."""
    body = base64.urlsafe_b64encode(reasoning.encode()).decode()
    return f"m2r1.{body}.{sign(secret, reasoning)}"


def _from_token(secret: bytes, token, where: str) -> str:
    try:
        tag, body, sig = str(token).split(".", 2)
        text = base64.urlsafe_b64decode(body.encode()).decode()
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, f"{where}: encrypted_content was not issued by this server", param=where) from e
    if tag != "m2r1" or not verify(secret, text, sig):
        raise APIError(400, f"{where}: encrypted_content was not issued by this server", param=where)
    return text


def reasoning_text(item: dict, where: str, secret: bytes) -> str:
    for key in ("content", "summary"):
        parts = item.get(key)
        if parts and not isinstance(parts, list):
            raise APIError(400, f"{where}.{key} must be a list of text parts", param=f"{where}.{key}")
        if parts:
            return "\n".join(_text([p], f"{where}.{key}") for p in parts)
    if item.get("encrypted_content"):
        return _from_token(secret, item["encrypted_content"], f"{where}.encrypted_content")
    return ""


def to_messages(items: list[dict], instructions: str | None, secret: bytes) -> list[dict]:
    """Responses input items -> OpenAI-shaped chat messages for the M2 renderer."""
    out: list[dict] = []
    turn: dict | None = None  # the assistant turn being assembled

    def assistant(kind: str) -> dict:
        nonlocal turn
        # a turn holds reasoning, then text, then calls: anything out of that order starts the next turn
        if turn is None or (kind == "reasoning" and (turn["content"] or turn.get("tool_calls") or "reasoning_content" in turn)) \
                or (kind == "message" and turn.get("tool_calls")):
            turn = {"role": "assistant", "content": ""}
            out.append(turn)
        return turn

    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise APIError(400, f"{where} must be an object", param=where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role, content = item.get("role"), _text(item.get("content", ""), f"{where}.content")
            if role == "assistant":
                t = assistant("message")
                t["content"] += content
                continue
            if role not in ("user", "system", "developer"):
                raise APIError(400, f"{where}.role must be user, assistant, system or developer", param=f"{where}.role")
            out.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "reasoning":
            assistant("reasoning")["reasoning_content"] = reasoning_text(item, where, secret)
            continue
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise APIError(400, f"{where}.{key} must be a string", param=f"{where}.{key}")
            assistant("function_call").setdefault("tool_calls", []).append(
                {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}})
            continue
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output", ""), f"{where}.output")})
        else:
            raise APIError(400, f"{where}: input item type {kind!r} is not supported (message, function_call, "
                                f"function_call_output and reasoning are)", param=f"{where}.type")
        turn = None
    lead = [instructions] if instructions else []  # M2 has one system block: instructions + leading ones
    while out and out[0]["role"] == "system":
        lead.append(out.pop(0)["content"])
    return ([{"role": "system", "content": "\n\n".join(lead)}] if lead else []) + out


def input_items(value) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value)


# -- request fields --------------------------------------------------------------------------------
def chat_tools(tools: list[dict] | None) -> list[dict] | None:
    """Responses function tools (flat) -> Chat Completions tools (nested under `function`)."""
    out = []
    for i, t in enumerate(tools or []):
        if not isinstance(t, dict) or t.get("type") != "function":
            kind = t.get("type") if isinstance(t, dict) else None
            raise APIError(400, f"tools[{i}]: tool type {kind!r} is not supported; only function tools are",
                           param=f"tools[{i}].type")
        if not isinstance(t.get("name"), str) or not t["name"]:
            raise APIError(400, f"tools[{i}].name must be a non-empty string", param=f"tools[{i}].name")
        fn = {"name": t["name"], "description": t.get("description") or "",
              "parameters": t.get("parameters") or {"type": "object", "properties": {}}}
        out.append({"type": "function", "function": fn})
    return out or None


def chat_tool_choice(tc, tools: list[dict] | None) -> tuple[object, list[dict] | None]:
    """Responses `tool_choice` -> (the Chat Completions one, the tools it leaves)."""
    if tc is None or tc in ("auto", "none", "required"):
        return tc, tools
    if isinstance(tc, dict) and tc.get("type") == "function" and isinstance(tc.get("name"), str):
        return {"type": "function", "function": {"name": tc["name"]}}, tools
    if (isinstance(tc, dict) and tc.get("type") == "allowed_tools" and tc.get("mode", "auto") in ("auto", "required")
            and isinstance(tc.get("tools") or [], list)):
        names = {t.get("name") for t in tc.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"}
        kept = [t for t in tools or [] if t["function"]["name"] in names]
        return (tc.get("mode") or "auto"), kept or None
    raise APIError(400, 'tool_choice must be "auto", "none", "required", {"type": "function", "name": ...} or '
                        '{"type": "allowed_tools", "mode": "auto"|"required", "tools": [...]}', param="tool_choice")


def chat_response_format(text: dict | None) -> dict | None:
    fmt = (text or {}).get("format")
    if not fmt or (isinstance(fmt, dict) and fmt.get("type") in (None, "text")):
        return None
    if not isinstance(fmt, dict):
        raise APIError(400, "text.format must be an object", param="text.format")
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema", {}), dict):
        return {"type": "json_schema", "json_schema": {"name": fmt.get("name"), "schema": fmt.get("schema")}}
    if fmt.get("type") == "json_object":
        return fmt
    raise APIError(400, "text.format must be text, json_object or json_schema with a schema object", param="text.format")


def echo_tools(tools: list[dict] | None) -> list[dict]:
    return [{"type": "function", "name": t["name"], "description": t.get("description"),
             "parameters": t.get("parameters") or {"type": "object", "properties": {}}, "strict": t.get("strict")}
            for t in tools or []]


# -- output items ----------------------------------------------------------------------------------
def reasoning_item(item_id: str, text: str, status: str, summary: bool, token: str | None = None) -> dict:
    item = {"id": item_id, "type": "reasoning", "status": status,
            "summary": [{"type": "summary_text", "text": text}] if summary and text else [],
            "content": [{"type": "reasoning_text", "text": text}] if text else []}
    if token is not None:
        item["encrypted_content"] = token
    return item


def message_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def usage(prompt: int, output: int, cached: int, reasoning: int) -> dict:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": min(reasoning, output)},
            "total_tokens": prompt + output}


# -- the store -------------------------------------------------------------------------------------
class ResponseStore:
    """Finished responses (the object, and the conversation items it ends) for `GET` and
    `previous_response_id`. The oldest are dropped beyond `max_entries` or `max_bytes` (the JSON size
    of each response plus the input items it added; items shared with the previous response are
    held by reference, not copied)."""

    def __init__(self, max_entries: int = 1024, max_bytes: int = 256 * 2**20):
        self.max_entries, self.max_bytes, self.size = max_entries, max_bytes, 0
        self._data: OrderedDict[str, tuple[dict, list[dict], int]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response: dict, items: list[dict], new_items: list[dict]) -> None:
        response = json.loads(json.dumps(response))
        size = len(json.dumps(response)) + len(json.dumps(new_items))
        with self._lock:
            self._drop(response["id"])
            self._data[response["id"]] = (response, items, size)
            self.size += size
            while self._data and (len(self._data) > self.max_entries or self.size > self.max_bytes):
                self._drop(next(iter(self._data)))

    def _drop(self, rid: str) -> None:
        hit = self._data.pop(rid, None)
        if hit is not None:
            self.size -= hit[2]

    def get(self, rid: str, param: str | None = None) -> tuple[dict, list[dict]]:
        with self._lock:
            hit = self._data.get(rid)
        if hit is None:
            raise APIError(404, f"No response found with id '{rid}' (responses created with store=false are not kept, "
                                f"and this server keeps only the latest ones, in memory)", param=param,
                           code="response_not_found")
        return hit[0], hit[1]

    def delete(self, rid: str) -> None:
        self.get(rid)
        with self._lock:
            self._drop(rid)
