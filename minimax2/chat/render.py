"""Native Python renderer of the MiniMax-M2 prompt format.

``render_prompt`` produces byte-for-byte what the official Jinja chat template produces (see
``tests/test_chat_template.py``). The rules, mirrored from that template:

1. ``]~!b[]~b]system\\n`` + the system text: the first message's content when its role is
   ``system`` and its content is non-empty (a string, or the concatenated ``text`` parts of a list),
   else ``model_identity`` (default ``You are a helpful assistant.``). Then ``\\nCurrent date: ...``
   and ``\\nCurrent location: ...`` when the system message carries those keys.
2. With tools: a ``# Tools`` section listing each tool's ``function`` object as JSON (insertion
   order, non-ASCII kept) inside ``<tool>...</tool>``, then the XML calling instructions.
   Then ``[e~[\\n``.
3. user: ``]~b]user\\n`` + text + ``[e~[\\n``.
4. assistant: ``]~b]ai\\n``; reasoning is ``reasoning_content`` when it is a string, else the text
   between ``<think>`` and ``</think>`` of the content (which then keeps only what follows
   ``</think>``). Reasoning is shown as ``<think>\\n...\\n</think>\\n\\n`` only for assistant messages
   after the last user message (interleaved thinking). Then the content, then the tool calls
   (string values raw, others as JSON), then ``[e~[\\n``.
5. tool: consecutive tool messages share one ``]~b]tool`` block, one ``<response>`` each (list
   content: one ``<response>`` per part, closed by ``\\n</response>`` -- a template quirk).
   A tool message needs an earlier assistant message whose last tool call had a name.
6. Other roles (e.g. a later ``system`` message) are not rendered, but they do split tool groups.
7. Generation prompt: ``]~b]ai\\n<think>\\n``.

``render_prompt_segments`` returns the same text as a ``Prompt``: what this module writes is
structural, every value from the messages, tools or ``template_kwargs`` is content (see
``prompt.py``), exactly as ``render_chat_template_segments`` splits the official template's output.

Template quirks reproduced on purpose: a missing ``content`` renders as nothing, while a ``None``
content would render the literal ``None`` (``normalize_messages`` turns ``None`` into ``""``
first); non-string values are rendered with ``str()`` as Jinja does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jinja2.exceptions import TemplateError

from . import markers as m
from .prompt import Prompt, PromptBuilder

_MISSING = object()


class ChatTemplateError(TemplateError, ValueError):
    """A conversation the M2 prompt format cannot express (raised by both rendering paths)."""


NO_TOOL_CALL_MESSAGE = (
    "Message has tool role, but there was no previous assistant message with a tool call!"
)

_TOOLS_HEADER = (
    "\n\n# Tools\nYou may call one or more tools to assist with the user query.\n"
    "Here are the tools available in JSONSchema format:\n\n" + m.TOOLS_START + "\n"
)
_TOOLS_FOOTER = (
    m.TOOLS_END + "\n\n"
    "When making tool calls, use XML format to invoke tools and pass parameters:\n\n"
    + m.TOOL_CALL_START + "\n"
    '<invoke name="tool-name-1">\n'
    '<parameter name="param-key-1">param-value-1</parameter>\n'
    '<parameter name="param-key-2">param-value-2</parameter>\n'
    "...\n"
    "</invoke>\n" + m.TOOL_CALL_END
)


def normalize_messages(messages: list[dict]) -> list[dict]:
    """Return copies of ``messages`` in the shape the M2 template expects (inputs untouched).

    - assistant ``tool_calls[].function.arguments`` given as a JSON string is parsed to a dict
      (blank or ``None`` means ``{}``); invalid JSON or a non-object raises ``ValueError`` naming
      the message index and the tool;
    - ``content: None`` becomes ``""`` (OpenAI clients send null content with tool calls; the
      template would print ``None``);
    - for assistant messages without ``reasoning_content``, reasoning given as ``reasoning`` or as
      ``reasoning_details[].text`` (concatenated) is moved to ``reasoning_content``.
    """
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"messages[{index}] must be a dict, got {type(message).__name__}")
        msg = dict(message)
        if "content" in msg and msg["content"] is None:
            msg["content"] = ""
        if msg.get("role") == "assistant":
            _move_reasoning(msg)
            if isinstance(msg.get("tool_calls"), list):
                msg["tool_calls"] = [_normalize_call(index, call) for call in msg["tool_calls"]]
        out.append(msg)
    return out


def _move_reasoning(msg: dict) -> None:
    if msg.get("reasoning_content") is not None:
        return
    reasoning = msg.pop("reasoning", None)
    details = msg.pop("reasoning_details", None)
    if isinstance(reasoning, str):
        msg["reasoning_content"] = reasoning
    elif isinstance(details, list):
        texts = [d["text"] for d in details if isinstance(d, Mapping) and isinstance(d.get("text"), str)]
        if texts:
            msg["reasoning_content"] = "".join(texts)


def _normalize_call(index: int, call: Any) -> Any:
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        return call
    function = dict(call["function"])
    args = function.get("arguments")
    if args is None or (isinstance(args, str) and not args.strip()):
        function["arguments"] = {}
    elif isinstance(args, str):
        name = function.get("name")
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"messages[{index}]: arguments of tool call {name!r} are not valid JSON ({exc}): {args!r}"
            ) from exc
        if not isinstance(parsed, dict):
            raise ValueError(
                f"messages[{index}]: arguments of tool call {name!r} must be a JSON object, "
                f"got {type(parsed).__name__}"
            )
        function["arguments"] = parsed
    return {**call, "function": function}


def render_prompt(
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = True,
    **template_kwargs: Any,
) -> str:
    """Render OpenAI-shaped ``messages`` and ``tools`` into an M2 prompt string.

    ``template_kwargs`` may carry ``model_identity`` (the system text used when there is no system
    message); other keys are accepted and ignored, as the official template ignores them.
    """
    return render_prompt_segments(messages, tools, add_generation_prompt, **template_kwargs).text


def render_prompt_segments(
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = True,
    **template_kwargs: Any,
) -> Prompt:
    """``render_prompt`` as a ``Prompt``: the markers this renderer writes are structural; every
    value taken from ``messages``, ``tools`` or ``template_kwargs`` is content."""
    messages = normalize_messages(messages)
    system = None
    conversation = messages
    if messages and messages[0].get("role") == "system":
        system, conversation = messages[0], messages[1:]
    last_user = max((i for i, msg in enumerate(conversation) if msg.get("role") == "user"), default=-1)

    out = PromptBuilder().structural(m.BEGIN_OF_DOCUMENT, m.BEGIN_OF_ROLE, m.ROLE_SYSTEM, "\n")
    _system_text(out, system, template_kwargs)
    if tools:
        out.structural(_TOOLS_HEADER)
        for tool in tools:
            out.structural(m.TOOL_START).content(_tool_json(tool)).structural(m.TOOL_END, "\n")
        out.structural(_TOOLS_FOOTER)
    out.structural(m.END_OF_MESSAGE + "\n")

    last_call_name: Any = None
    for i, msg in enumerate(conversation):
        role = msg.get("role")
        if role == "assistant":
            _assistant(out, msg, show_reasoning=i > last_user)
            calls = msg.get("tool_calls")
            last_call_name = _last_call_name(calls) if calls else None
        elif role == "tool":
            if last_call_name is None:
                index = i + (1 if system is not None else 0)
                raise ChatTemplateError(f"messages[{index}]: {NO_TOOL_CALL_MESSAGE}")
            if i == 0 or conversation[i - 1].get("role") != "tool":
                out.structural(m.BEGIN_OF_ROLE + m.ROLE_TOOL)
            _tool_responses(out, msg.get("content", _MISSING))
            if i == len(conversation) - 1 or conversation[i + 1].get("role") != "tool":
                out.structural(m.END_OF_MESSAGE + "\n")
        elif role == "user":
            out.structural(m.BEGIN_OF_ROLE, m.ROLE_USER, "\n").content(_visible_text(msg.get("content", _MISSING)))
            out.structural(m.END_OF_MESSAGE + "\n")
    if add_generation_prompt:
        out.structural(m.GENERATION_PROMPT)
    return out.build()


def _system_text(out: PromptBuilder, system: dict | None, template_kwargs: dict) -> None:
    if system and system.get("content"):
        out.content(_visible_text(system["content"]))
    elif "model_identity" in template_kwargs:
        out.content(str(template_kwargs["model_identity"]))
    else:
        out.structural(m.DEFAULT_SYSTEM_PROMPT)  # the template's own literal
    for key, label in (("current_date", "Current date: "), ("current_location", "Current location: ")):
        if system and system.get(key):
            out.structural("\n" + label).content(system[key])  # not text: TypeError, as in the template


def _tool_json(tool: Any) -> str:
    if not isinstance(tool, Mapping) or "function" not in tool:
        raise ChatTemplateError(f"each tool must be {{'type': 'function', 'function': {{...}}}}, got {tool!r}")
    return json.dumps(tool["function"], ensure_ascii=False)


def _visible_text(content: Any) -> str:
    """Text of a content value: a string, or the ``text`` parts (and bare strings) of a list."""
    if content is _MISSING:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content)
    try:
        items = iter(content)
    except TypeError:
        return str(content)
    parts = []
    for item in items:
        if isinstance(item, Mapping) and item.get("type") == "text":
            parts.append(_jinja_str(item.get("text", _MISSING)))
        elif isinstance(item, str):
            parts.append(item)
    return "".join(parts)


def _jinja_str(value: Any) -> str:
    return "" if value is _MISSING else str(value)


def _assistant(out: PromptBuilder, msg: dict, show_reasoning: bool) -> None:
    out.structural(m.BEGIN_OF_ROLE, m.ROLE_ASSISTANT, "\n")
    content = _visible_text(msg.get("content", _MISSING))
    reasoning = ""
    if isinstance(msg.get("reasoning_content"), str):
        reasoning = msg["reasoning_content"]
    elif m.THINK_END in content:
        reasoning = content.split(m.THINK_END)[0].strip("\n").split(m.THINK_START)[-1].strip("\n")
        content = content.split(m.THINK_END)[-1].strip("\n")
    if reasoning and show_reasoning:
        out.structural(m.THINK_START, "\n").content(reasoning).structural("\n", m.THINK_END, "\n\n")
    out.content(content)
    calls = msg.get("tool_calls")
    if calls:
        out.structural("\n", m.TOOL_CALL_START, "\n")
        for call in calls:
            function = call.get("function") or call
            name = _require_str(function.get("name"), "tool call name")
            out.structural(f'{m.INVOKE_START}"').content(name).structural('">\n')
            for key, value in function["arguments"].items():
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                out.structural(f'{m.PARAMETER_START}"').content(_require_str(key, "argument name"))
                out.structural('">').content(text).structural(m.PARAMETER_END + "\n")
            out.structural(m.INVOKE_END + "\n")
        out.structural(m.TOOL_CALL_END)
    out.structural(m.END_OF_MESSAGE + "\n")


def _last_call_name(calls: list) -> Any:
    last = calls[-1]
    if not isinstance(last, Mapping) or not isinstance(last.get("function"), Mapping):
        raise ChatTemplateError(f"tool calls must have the OpenAI shape {{'function': {{...}}}}, got {last!r}")
    return last["function"].get("name", _MISSING)


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ChatTemplateError(f"{what} must be a string, got {value!r}")
    return value


def _tool_responses(out: PromptBuilder, content: Any) -> None:
    if isinstance(content, str):
        out.structural("\n" + m.RESPONSE_START).content(content).structural(m.RESPONSE_END)
        return
    if content is _MISSING:
        return
    for part in content:
        if isinstance(part, Mapping) and "output" in part:
            text = str(part["output"])
        elif isinstance(part, Mapping) and part.get("type") == "text" and "text" in part:
            text = str(part["text"])
        else:
            text = str(part)
        out.structural("\n" + m.RESPONSE_START).content(text).structural("\n" + m.RESPONSE_END)
