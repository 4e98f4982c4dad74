"""Parsing a finished MiniMax-M2 generation into reasoning, content and typed tool calls.

The model continues the generation prompt ``]~b]ai\\n<think>\\n``, so its text reads::

    reasoning</think>\\n\\ncontent<minimax:tool_call>\\n<invoke name="f">\\n
    <parameter name="k">value</parameter>\\n</invoke>\\n</minimax:tool_call>[e~[

Rules (reference doc section 5, as vLLM, SGLang and MiniMax's guide implement them):

- Reasoning is the text before ``</think>`` (a leading ``<think>`` is tolerated). Without
  ``</think>`` and without a tool call, everything is reasoning. A ``<minimax:tool_call>`` that
  appears before ``</think>`` ends the reasoning there and its calls count.
- Tool calls are the ``<invoke>`` elements of *closed* ``<minimax:tool_call>`` blocks, in order.
  Names may be quoted with ``"`` or ``'``; the quotes are removed. A parameter value is the text
  after the first ``>`` of its tag, stripped of surrounding whitespace (which also covers the
  "one leading and one trailing newline" rule).
- Content is the text before the first block. When no complete call is found (no block, or only
  an unclosed one cut off by the end of generation) the whole text is content, as vLLM does.
- Values are typed by the tool's JSON schema: see ``convert_value``.

- With ``reasoning=False`` (the prompt pre-filled an empty think block) there is no reasoning
  channel, but a model may still think and close with ``</think>``: the text before it is that
  reasoning, and it is dropped, never content (unless a complete tool call comes first).

The streaming parser (``stream_parser.py``) shares ``tool_param_types``, ``schema_types``,
``convert_value``, ``clean_name``, ``clean_value``, ``new_tool_call_id``, ``partial_marker_len``,
``find_first`` and ``held_len`` with this module.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import markers as m


def new_tool_call_id() -> str:
    """A random OpenAI-style tool call id: ``call_`` + 24 hex characters."""
    return "call_" + secrets.token_hex(12)


@dataclass
class ToolCall:
    """One parsed tool call; ``arguments`` is already typed by the tool's schema."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_tool_call_id)

    def arguments_json(self) -> str:
        """``arguments`` as the JSON string of the OpenAI API (key order and non-ASCII kept)."""
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class ParsedOutput:
    """A finished generation split into its three channels."""

    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


_BLOCK_RE = re.compile(re.escape(m.TOOL_CALL_START) + "(.*?)" + re.escape(m.TOOL_CALL_END), re.DOTALL)
_INVOKE_RE = re.compile(re.escape(m.INVOKE_START) + "(.*?)" + re.escape(m.INVOKE_END), re.DOTALL)
_PARAM_RE = re.compile(re.escape(m.PARAMETER_START) + "(.*?)" + re.escape(m.PARAMETER_END), re.DOTALL)
_INT_RE = re.compile(r"[-+]?\d+")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_ENUM_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"))


def clean_name(raw: str) -> str:
    """A tool or parameter name from its tag: stripped, one pair of ``"``/``'`` quotes removed."""
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1]
    return name


def clean_value(raw: str) -> str:
    """A parameter's raw text: stripped (so a leading/trailing newline never survives)."""
    return raw.strip()


def tool_param_types(tools: list | None) -> dict[str, dict[str, Any]]:
    """Map each tool name to its ``parameters.properties`` (parameter name -> JSON schema).

    Accepts OpenAI tools (``{"type": "function", "function": {...}}``), bare function objects
    (``{"name", "parameters"}``) and pydantic models of either.
    """
    result: dict[str, dict[str, Any]] = {}
    for tool in tools or []:
        if hasattr(tool, "model_dump"):
            tool = tool.model_dump()
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
        name = function.get("name")
        params = function.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        if isinstance(name, str):
            result[name] = dict(props) if isinstance(props, Mapping) else {}
    return result


def schema_types(schema: Any) -> set[str]:
    """The JSON types a schema allows (lower-cased): ``type`` (string or list), the types of
    ``enum`` values, and, recursively, the types of ``anyOf``/``oneOf``/``allOf`` members."""
    if not isinstance(schema, Mapping):
        return set()
    types: set[str] = set()
    declared = schema.get("type")
    if isinstance(declared, str):
        types.add(declared.lower())
    elif isinstance(declared, list):
        types.update(t.lower() for t in declared if isinstance(t, str))
    enum = schema.get("enum")
    if isinstance(enum, list):
        types.update(_json_type(value) for value in enum)
    for key in ("anyOf", "oneOf", "allOf"):
        members = schema.get(key)
        if isinstance(members, list):
            for member in members:
                types |= schema_types(member)
    return types


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _ENUM_TYPES if isinstance(value, kind)), "string")


def convert_value(raw: str, schema: Any) -> Any:
    """Type a parameter's (cleaned) text by its JSON ``schema`` (``None``: no schema known).

    Only the literal ``null`` (any case) becomes ``None``, whatever the schema. Otherwise the
    allowed types are tried in this order: integer; number (an integral value becomes ``int``
    only when integer is also allowed; non-finite values are refused); boolean (``true/false``,
    ``1/0``, ``yes/no``, ``on/off``, any case); object/array (JSON of that kind); and finally
    the raw string. No schema, or a schema without known types, means string, so a string-typed
    value that looks like a number stays a string.
    """
    if raw.lower() == "null":
        return None
    types = schema_types(schema)
    if "integer" in types and _INT_RE.fullmatch(raw) and len(raw) < 4000:  # int() refuses longer
        return int(raw)
    if "number" in types and _NUMBER_RE.fullmatch(raw):
        number = float(raw)
        if math.isfinite(number):
            return int(number) if "integer" in types and number.is_integer() else number
    if "boolean" in types and raw.lower() in _TRUE.union(_FALSE):
        return raw.lower() in _TRUE
    if "object" in types or "array" in types:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if ("object" in types and isinstance(value, dict)) or ("array" in types and isinstance(value, list)):
            return value
    return raw


def parse_invoke(body: str, params: Mapping[str, Any] | None = None) -> ToolCall | None:
    """Parse one invoke: ``body`` is the text between ``<invoke name=`` and ``</invoke>``.

    ``params`` maps parameter names to schemas (one entry of ``tool_param_types``). Returns
    ``None`` when the tag has no name. Only closed ``<parameter>`` elements count; a repeated
    parameter keeps its last value.
    """
    head, sep, rest = body.partition(">")
    name = clean_name(head)
    if not sep or not name:
        return None
    arguments: dict[str, Any] = {}
    for element in _PARAM_RE.findall(rest):
        key, sep, value = element.partition(">")
        key = clean_name(key)
        if sep and key:
            arguments[key] = convert_value(clean_value(value), (params or {}).get(key))
    return ToolCall(name=name, arguments=arguments)


def extract_tool_calls(text: str, tools: list | None = None) -> tuple[str, list[ToolCall]]:
    """Split text after the reasoning into ``(content, tool_calls)`` (see the module rules)."""
    types = tool_param_types(tools)
    calls = []
    for block in _BLOCK_RE.findall(text):
        for body in _INVOKE_RE.findall(block):
            call = parse_invoke(body, types.get(clean_name(body.partition(">")[0])))
            if call is not None:
                calls.append(call)
    if not calls:
        return text.strip(), []
    return text[: text.find(m.TOOL_CALL_START)].strip(), calls


def parse_output(text: str, tools: list | None = None, *, reasoning: bool = True) -> ParsedOutput:
    """Parse a finished generation (the text after the generation prompt).

    ``reasoning=False`` means the prompt pre-filled an empty think block: no reasoning comes back, and
    text the model closes with ``</think>`` anyway is dropped.
    The end-of-message marker ``[e~[`` ends the text (it and anything after it are dropped);
    reasoning and content come back stripped of surrounding whitespace.
    """
    text = text.split(m.END_OF_MESSAGE, 1)[0]
    if not reasoning:
        think_end, call_start = text.find(m.THINK_END), text.find(m.TOOL_CALL_START)
        called_first = 0 <= call_start < think_end and extract_tool_calls(text[call_start:], tools)[1]
        if think_end >= 0 and not called_first:  # it thought anyway: that text is reasoning, dropped
            text = text[think_end + len(m.THINK_END):]
        content, calls = extract_tool_calls(text, tools)
        return ParsedOutput("", content, calls)
    if text.lstrip().startswith(m.THINK_START):
        text = text.lstrip()[len(m.THINK_START):]
    think_end = text.find(m.THINK_END)
    call_start = text.find(m.TOOL_CALL_START)
    if call_start != -1 and (think_end == -1 or call_start < think_end):
        content, calls = extract_tool_calls(text[call_start:], tools)
        if calls:
            return ParsedOutput(text[:call_start].strip(), content, calls)
    if think_end == -1:
        return ParsedOutput(text.strip(), "", [])
    content, calls = extract_tool_calls(text[think_end + len(m.THINK_END):], tools)
    return ParsedOutput(text[:think_end].strip(), content, calls)


def partial_marker_len(text: str, marker: str = m.TOOL_CALL_START) -> int:
    """Length of the longest end of ``text`` that is a proper prefix of ``marker``.

    A streaming parser holds those characters back instead of flushing them as content, so a
    split ``<minimax:tool...`` never leaks to the client.
    """
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


def find_first(text: str, marks: tuple[str, ...]) -> tuple[int, str]:
    """The earliest of ``marks`` in ``text``: ``(position, marker)``, or ``(-1, "")``."""
    hits = [(i, mark) for mark in marks if (i := text.find(mark)) >= 0]
    return min(hits) if hits else (-1, "")


def held_len(text: str, marks: tuple[str, ...]) -> int:
    """How much of the end of ``text`` could still become one of ``marks`` (``partial_marker_len``)."""
    return max(partial_marker_len(text, mark) for mark in marks)
