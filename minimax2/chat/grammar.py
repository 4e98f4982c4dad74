"""Grammar-constrained decoding with llguidance: tools that must be called (all, or named ones) and
JSON answers that follow a schema. Enforced by masking logits, not by hoping.

The grammar covers what follows the generation prompt: reasoning up to ``</think>`` (unless the
prompt pre-filled an empty think block), then either one M2 tool-call block whose invokes and
parameters follow the tools' schemas, or a JSON value that follows the requested schema.

Bounded values. Without a token limit a sampled value could otherwise run on for ever (a string
that never closes, digits that never stop), so every value the grammar leaves open is capped:

- strings (raw tool-parameter text, JSON strings): at most ``MAX_STRING_CHARS`` characters, unless
  the schema gives its own ``maxLength``;
- integers: at most ``MAX_INT_DIGITS`` digits (JSON: ``minimum``/``maximum`` of +-(10**18 - 1) where
  the schema sets none);
- numbers: at most ``MAX_INT_DIGITS`` digits before the point and ``MAX_FRACTION_DIGITS`` after it
  (JSON: bounds of +-1e18 and ``multipleOf`` 1e-10 where the schema sets none).

Reasoning before ``</think>``, and JSON values whose schema leaves their type open (``{}``, a bare
``{"type": "object"}`` whose members are anything), stay unbounded: the request's token limit ends them.
"""

from __future__ import annotations

import json

import torch

from . import markers as m
from .parser import schema_types

try:
    import llguidance
except ImportError:  # optional: the `serve` extra installs it
    llguidance = None

MAX_STRING_CHARS = 4096
MAX_INT_DIGITS = 18  # what llguidance's integer ranges take (int64)
MAX_FRACTION_DIGITS = 10
INT = rf"/-?(0|[1-9][0-9]{{0,{MAX_INT_DIGITS - 1}}})/"
NUMBER = (rf"/-?(0|[1-9][0-9]{{0,{MAX_INT_DIGITS - 1}}})(\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?"
          rf"([eE][-+]?[0-9]{{1,3}})?/")
TEXT = rf"/[^<]{{0,{MAX_STRING_CHARS}}}/"  # a raw string value: anything up to the next markup


class GrammarError(ValueError):
    """A request the grammar cannot be built for; `param` names the request field at fault."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class GrammarFactory:
    """Builds matchers for one tokenizer (made once per server)."""

    def __init__(self, tokenizer, tokenizer_json: str, vocab_size: int, eos_token_ids: list[int]):
        if llguidance is None:
            raise GrammarError("structured output needs llguidance: pip install 'minimax2[serve]'")
        self.tokenizer, self.vocab_size = tokenizer, vocab_size
        self.ll = llguidance.LLTokenizer(tokenizer_json, n_vocab=vocab_size, eos_token=list(eos_token_ids))

    def lit(self, s: str) -> str:
        """A marker: its special token when it is one, else the literal text."""
        ids = self.tokenizer.encode(s)
        if len(ids) == 1 and self.ll.is_special_token(ids[0]):
            return f"<[{ids[0]}]>"
        return _q(s)

    def _prefix(self, reasoning: bool) -> str:
        return f'/(.|\\n)*/ {self.lit(m.THINK_END)} "\\n\\n"' if reasoning else ""

    def _value(self, schema) -> str:
        schema = schema if isinstance(schema, dict) else {}
        types = schema_types(schema)
        enum = schema.get("enum")
        if isinstance(enum, list) and enum and all(isinstance(v, str) and "<" not in v for v in enum):
            return "(" + " | ".join(_q(v) for v in enum) + ")"
        if types in ({"integer"},):
            return INT
        if types in ({"number"}, {"integer", "number"}):
            return NUMBER
        if types == {"boolean"}:
            return '("true" | "false")'
        if types in ({"object"}, {"array"}):
            return "%json " + json.dumps(_compact(schema))
        return TEXT

    def tool_grammar(self, tools: list[dict], names: list[str], parallel: bool, reasoning: bool) -> str:
        rules, alts = [], []
        for t, tool in enumerate(tools):
            fn = tool.get("function", tool)
            if fn.get("name") not in names:
                continue
            params = fn.get("parameters") or {}
            props = params.get("properties") or {}
            required = set(params.get("required") or [])
            parts = []
            for p, (key, schema) in enumerate(props.items()):
                rules.append(f'p{t}_{p}: {self.lit(m.PARAMETER_START)} {_q(_q(key) + ">")} {self._value(schema)} '
                             f'{self.lit(m.PARAMETER_END)} "\\n"')
                parts.append(f"p{t}_{p}" + ("" if key in required else "?"))
            rules.append(f'inv{t}: {self.lit(m.INVOKE_START)} {_q(_q(fn["name"]) + ">" + chr(10))} {" ".join(parts)} '
                         f'{self.lit(m.INVOKE_END)} "\\n"')
            alts.append(f"inv{t}")
        if not alts:
            raise GrammarError(f"tool_choice names {names[0]!r}, which is not among the request's tools",
                               param="tool_choice")
        rules.insert(0, f"invoke: {' | '.join(alts)}")
        many = "invoke+" if parallel else "invoke"
        start = f'start: {self._prefix(reasoning)} {self.lit(m.TOOL_CALL_START)} "\\n" {many} {self.lit(m.TOOL_CALL_END)}'
        return "\n".join([start] + rules) + "\n"

    def json_grammar(self, schema: dict | None, reasoning: bool) -> str:
        body = "%json " + json.dumps(_compact(schema if schema is not None else {"type": "object"}))
        return f"start: {self._prefix(reasoning)} {body}\n"

    def processor(self, lark: str, n: int = 1) -> "GrammarProcessor":
        grammar = llguidance.LLMatcher.grammar_from_lark(lark)
        err = llguidance.LLMatcher.validate_grammar(grammar, self.ll)
        if err:
            raise GrammarError(f"cannot build a grammar for this request: {err.splitlines()[0]}")
        return GrammarProcessor(self.ll, grammar, self.vocab_size, n)


def _compact(schema: dict) -> dict:
    s = bounded(schema)
    s.setdefault("x-guidance", {"whitespace_flexible": False})
    return s


_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def bounded(schema):
    """A copy of a JSON schema in which every string, integer and number the schema leaves unbounded
    gets the caps of the module docstring; everything else is kept as it is."""
    if not isinstance(schema, dict):
        return schema
    s = dict(schema)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(s.get(key), list):
            s[key] = [bounded(x) for x in s[key]]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(s.get(key), dict):
            s[key] = {k: bounded(v) for k, v in s[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(s.get(key), dict):
            s[key] = bounded(s[key])
    types = {t for t in ([s["type"]] if isinstance(s.get("type"), str) else s.get("type") or []) if isinstance(t, str)}
    if "string" in types:
        s.setdefault("maxLength", MAX_STRING_CHARS)
    if types & {"integer", "number"}:
        limit = 10**MAX_INT_DIGITS - 1 if "number" not in types else float(10**MAX_INT_DIGITS)
        if "minimum" not in s and "exclusiveMinimum" not in s:
            s["minimum"] = -limit
        if "maximum" not in s and "exclusiveMaximum" not in s:
            s["maximum"] = limit
    if "number" in types and "integer" not in types:
        s.setdefault("multipleOf", 10.0**-MAX_FRACTION_DIGITS)
    return s


class GrammarProcessor:
    """A logits processor: masks every token the grammar does not allow next. Sequences of one
    request (n > 1) call it with their own histories, not necessarily in step; it keeps one matcher
    per distinct history and counts the sequences standing on each."""

    def __init__(self, ll, grammar: str, vocab_size: int, n: int = 1):
        self.ll, self.vocab_size = ll, vocab_size
        self.states = {(): llguidance.LLMatcher(ll, grammar)}
        self.heads = {(): n}  # history -> sequences whose latest call was at that history
        self.eos = list(ll.eos_tokens)

    def _matcher(self, key: tuple[int, ...]):
        if not key:
            return self.states.get(key)
        parent = key[:-1]
        if key in self.states:  # a sibling with the same history got here first
            self._leave(parent)
            self.heads[key] += 1
            return self.states[key]
        if parent not in self.states:
            return None
        mt = self.states[parent] if self.heads[parent] == 1 else self.states[parent].deep_copy()
        mt.consume_token(key[-1])
        self._leave(parent)
        self.states[key], self.heads[key] = mt, 1
        return mt

    def _leave(self, key: tuple[int, ...]) -> None:
        if key in self.heads:
            self.heads[key] -= 1
            if self.heads[key] <= 0:
                del self.heads[key], self.states[key]

    def __call__(self, generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        mt = self._matcher(tuple(generated))
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool)
        if mt is None or mt.is_error():
            allowed[self.eos] = True  # lost track: end the sequence rather than emit garbage
        else:
            bias = torch.frombuffer(bytearray(mt.compute_logit_bias()), dtype=torch.uint8)
            n = min(len(bias), logits.shape[-1])
            allowed[:n] = bias[:n] > 0
            if not bool(allowed.any()):
                allowed[self.eos] = True
        return logits.masked_fill(~allowed, float("-inf"))

