"""Shape checks of what the request models leave loose (`messages` and tool schemas are free-form
JSON): anything the renderer, the grammar or the tokenizer could not take becomes a 400 naming the
field, before the request is rendered or queued."""

from __future__ import annotations

import re

from .errors import APIError

# A tool's name is written into the prompt and the forced-call grammar as it is, and read back from the
# model's <invoke name="..."> by the parser: OpenAI's rule (letters, digits, _ and -), plus . and : that
# namespaced (MCP) tools use. Parameter names sit in <parameter name="...">: no quote, angle bracket,
# ampersand, backslash or control character, which the call format cannot carry back unchanged.
TOOL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
BAD_PARAM_CHARS = re.compile(r'["<>&\\\x00-\x1f]')

TEXT_ONLY = {"image_url", "input_audio", "image", "input_image", "audio", "file", "input_file", "video_url"}


def check_openai_message(i: int, msg: dict) -> None:
    where = f"messages[{i}]"
    _content(msg.get("content"), f"{where}.content")
    calls = msg.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        raise APIError(400, f"{where}.tool_calls must be a list of tool calls", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise APIError(400, f'{at} must be an object {{"id", "type": "function", "function": {{"name", '
                                f'"arguments"}}}}', param=at)
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise APIError(400, f"{at}.function.name must be a non-empty string", param=f"{at}.function.name")
        args = fn.get("arguments")
        if args is not None and not isinstance(args, (str, dict)):
            raise APIError(400, f"{at}.function.arguments must be a JSON string (or an object), got "
                                f"{type(args).__name__}", param=f"{at}.function.arguments")


def _content(content, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise APIError(400, f"{where} must be a string or a list of content parts", param=where)
    for j, part in enumerate(content):
        if isinstance(part, str):
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_ONLY:
            raise APIError(400, f"{where}[{j}]: this model is text-only; {kind} parts are not supported",
                           param=f"{where}[{j}]")
        if kind != "text" or not isinstance(part.get("text"), str):
            raise APIError(400, f'{where}[{j}] must be a text part {{"type": "text", "text": "..."}}',
                           param=f"{where}[{j}]")


def check_tool_schemas(tools: list[dict] | None, param: str = "tools") -> None:
    """Each tool's parameters: an object whose `properties` map names to schemas (objects or
    booleans) and whose `required` is a list of names -- what the renderer and the grammar read."""
    for t, tool in enumerate(tools or []):
        name = tool.get("function", {}).get("name")
        params = tool.get("function", {}).get("parameters")
        at = f"{param}[{t}]"
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise APIError(400, f"{at}: tool name {name!r} must be 1-128 letters, digits, '_', '-', '.' or ':'",
                           param=f"{at}.name")
        if params is None:
            continue
        if not isinstance(params, dict):
            raise APIError(400, f"{at}: the parameters schema must be an object", param=at)
        props, required = params.get("properties"), params.get("required")
        if props is not None and (not isinstance(props, dict)
                                  or not all(isinstance(v, (dict, bool)) for v in props.values())):
            raise APIError(400, f"{at}: properties must map each parameter name to a schema object", param=at)
        bad = next((k for k in props or {} if not k or BAD_PARAM_CHARS.search(k)), None)
        if bad is not None:
            raise APIError(400, f"{at}: parameter name {bad!r} must be non-empty, without quotes, '<', '>', '&', "
                                f"backslashes or control characters", param=at)
        if required is not None and (not isinstance(required, list) or not all(isinstance(r, str) for r in required)):
            raise APIError(400, f"{at}: required must be a list of parameter names", param=at)
