"""JSON answers: the request asks for a JSON object (fields named in the text, or a JSON schema pasted
into it) and the answer is that object, compact and closed, then `[e~[`.

The server does not put a `response_format` schema into the prompt: it renders the messages as they
are and constrains the answer with an llguidance grammar (`GrammarFactory.json_grammar`, key order
as in the schema, no whitespace: `{"city":"Vienna","days":11}`). So training prompts are plain
conversations whose text asks for JSON, and answers are written exactly as that grammar allows, so a
constrained answer follows the path the model learned and closes.

Objects are short: the integer and string arguments a tool request names (extracted into fields named
after the tool's parameters), or an arithmetic result under one integer field.
"""

from __future__ import annotations

import json
from typing import Any

from . import arith
from .synthetic import Example, _fields, draw_call
from .tools_pool import TOOLS
from .values import Values

JSON_TYPES = {"string": "string", "enum": "string", "integer": "integer"}
EXTRACTABLE = [t for t in TOOLS if all(all(t.params[k].type in JSON_TYPES for k in _fields(a)) for a in t.asks)]
RESULT_KEYS = ["result", "answer", "value", "total"]
WITH_FIELDS = ["Reply in JSON with the fields {fields}.", "Answer as a JSON object with the fields {fields}.",
               "Give me JSON only, with the fields {fields}."]
WITH_SCHEMA = ["Answer in JSON following this schema: {schema}", "Reply with a JSON object matching this schema: {schema}",
               "Respond only with JSON that follows this schema: {schema}"]


def dumps(obj: dict) -> str:
    """The answer's text: what the server's json_schema grammar allows (no whitespace)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def object_schema(types: dict[str, str]) -> dict:
    return {"type": "object", "properties": {k: {"type": t} for k, t in types.items()}, "required": list(types)}


def _spoken(types: dict[str, str]) -> str:
    parts = [f"{k} ({t})" for k, t in types.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _ask(v: Values, request: str, types: dict[str, str]) -> tuple[str, dict]:
    schema = object_schema(types)
    if v.rng.random() < 0.5:
        return f"{request} " + v.choice(WITH_SCHEMA).format(schema=json.dumps(schema)), schema
    return f"{request} " + v.choice(WITH_FIELDS).format(fields=_spoken(types)), schema


def extraction(v: Values) -> tuple[list[dict], dict, dict]:
    tool = v.choice(EXTRACTABLE)
    request, args = draw_call(tool, v)
    types = {k: JSON_TYPES[tool.params[k].type] for k in args}
    text, schema = _ask(v, request, types)
    values = ", ".join(f"{k} = {a}" for k, a in args.items())
    why = f"The user wants a JSON object with the fields {', '.join(args)}. From the request: {values}."
    return ([{"role": "user", "content": text}, {"role": "assistant", "reasoning_content": why, "content": dumps(args)}],
            schema, args)


def computed(v: Values) -> tuple[list[dict], dict, dict]:
    a, op, b = arith.draw_problem(v.rng, "heldout" if v.held else "train")
    key = v.choice(RESULT_KEYS)
    text, schema = _ask(v, v.choice(arith.QUESTIONS).format(a=a, op=op, b=b), {key: "integer"})
    obj = {key: arith.apply(a, op, b)}
    why = arith.reasoning(a, op, b) + f"\nThe user wants JSON with the integer field {key}."
    return [{"role": "user", "content": text}, {"role": "assistant", "reasoning_content": why, "content": dumps(obj)}], \
        schema, obj


def json_answer(v: Values) -> Example:
    msgs, schema, obj = extraction(v) if v.rng.random() < 0.6 else computed(v)
    return Example("json", msgs, None, {"schema": schema, "object": obj})


def validates(value: Any, schema: dict) -> bool:
    """The subset of JSON schema these requests use: objects of required string and integer fields."""
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        return (isinstance(value, dict) and set(value) <= set(props) and all(k in value for k in schema.get("required", []))
                and all(validates(value[k], props[k]) for k in value))
    if schema.get("type") == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if schema.get("type") == "string":
        return isinstance(value, str)
    raise ValueError(f"unsupported schema {schema!r}")


BUILDERS = {"json": json_answer}
