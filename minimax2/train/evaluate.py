"""Held-out behaviour scores of a trained checkpoint, one number per acceptance criterion.

Prompts come from the held-out split of synthetic.py (argument values never seen in training) and
are rendered exactly as at inference; replies are greedy, generated in batches through
`LLM.generate` and parsed with `parse_output` (what `LLM.chat` does, one prompt at a time).

- arithmetic: the last integer of the answer equals the exact result;
- tool: exactly one well-formed call, the right tool, every argument equal and of the right JSON type;
- parallel: both expected calls and nothing else;
- answer: after the tool result, the answer contains the returned value;
- no_tool: tools offered but not needed, and no tool call made;
- followup: the last of 2-3 user turns refers to the previous answer ("Add 5 to that."): exact result;
- noreason: the tool call came back without its reasoning (OpenAI Agents SDK): the answer contains the
  returned value exactly as often as the reference answer does (given once, not repeated);
- nothink: thinking disabled (the prompt ends with the empty think block the server pre-fills): no
  `<think>`/`</think>` in the reply, and the reply is right (small talk, copy, tool call, answer after a
  tool result, arithmetic, JSON extraction);
- json: the answer to a request for a JSON object parses and validates against the requested schema;
- format: every reply above stops on `[e~[` (finish reason `stop`) and closes `</think>`, or with
  thinking disabled never writes it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import json

from ..chat import markers as m
from ..chat import parse_output
from .json_answers import validates
from .synthetic import Example, heldout_examples

THRESHOLDS = {"arithmetic": 0.95, "tool": 0.95, "parallel": 0.90, "answer": 0.90, "no_tool": 0.95, "followup": 0.90,
              "noreason": 0.90, "nothink": 0.90, "json": 0.90, "format": 0.99}
FAMILIES = tuple(f for f in THRESHOLDS if f != "format")
MAX_TOKENS = 640


def same(a: Any, b: Any) -> bool:
    """Equal values of the same JSON type (1 != 1.0 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _calls_match(parsed, expected: list[tuple[str, dict]]) -> bool:
    if len(parsed) != len(expected):
        return False
    return all(c.name == name and c.arguments.keys() == args.keys() and all(same(c.arguments[k], v) for k, v in args.items())
               for c, (name, args) in zip(parsed, expected))


def cases(family: str, n: int, seed: int = 1234) -> list[tuple[Example, list[dict]]]:
    """(example, prompt messages) for one scored family."""
    if family == "answer":
        return [(ex, ex.messages[:3]) for ex in heldout_examples("tool", n, seed + 1)]
    if family == "noreason":
        return [(ex, ex.messages[:3]) for ex in heldout_examples(family, n, seed)]
    if family in ("followup", "nothink"):
        return [(ex, ex.messages[:-1]) for ex in heldout_examples(family, n, seed)]
    return [(ex, ex.messages[:1]) for ex in heldout_examples(family, n, seed)]


def json_object(text: str, schema: dict) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return validates(value, schema)


def _direct(ex: Example, text: str) -> bool:
    if m.THINK_START in text or m.THINK_END in text:
        return False
    out, kind = parse_output(text, ex.tools, reasoning=False), ex.expected["kind"]
    if kind in ("chat", "echo"):
        return not out.tool_calls and out.content == ex.expected["reply"]
    if kind == "call":
        return _calls_match(out.tool_calls, ex.expected["calls"])
    if kind == "answer":
        return not out.tool_calls and str(ex.expected["result"]) in out.content
    if kind == "arithmetic":
        numbers = re.findall(r"-?\d+", out.content)
        return not out.tool_calls and bool(numbers) and int(numbers[-1]) == ex.expected["answer"]
    return json_object(out.content, ex.expected["schema"]) and json.loads(out.content) == ex.expected["object"]


def judge(family: str, ex: Example, text: str) -> bool:
    if family == "nothink":
        return _direct(ex, text)
    out = parse_output(text, ex.tools)
    if family == "followup":
        numbers = re.findall(r"-?\d+", out.content)
        return not out.tool_calls and bool(numbers) and int(numbers[-1]) == ex.expected["answer"]
    if family == "noreason":
        value = str(ex.expected["result"])
        return not out.tool_calls and value in out.content and \
            out.content.count(value) == ex.expected["reply"].count(value)
    if family == "json":
        return not out.tool_calls and json_object(out.content, ex.expected["schema"])
    if family == "arithmetic":
        numbers = re.findall(r"-?\d+", out.content)
        return not out.tool_calls and bool(numbers) and int(numbers[-1]) == ex.expected["answer"]
    if family in ("tool", "parallel"):
        return _calls_match(out.tool_calls, ex.expected["calls"])
    if family == "answer":
        return not out.tool_calls and str(ex.expected["result"]) in out.content
    if family == "no_tool":
        return not out.tool_calls
    raise ValueError(f"unknown family {family!r}")


def formatted(family: str, finish_reason: str, text: str) -> bool:
    """Stops on `[e~[`; closes `</think>`, or never writes it when thinking was disabled."""
    return finish_reason == "stop" and ((m.THINK_END not in text) if family == "nothink" else (m.THINK_END in text))


def evaluate(ckpt: str | Path, n: int = 200, families=FAMILIES,
             llm=None, progress: bool = False, failures: dict | None = None) -> dict[str, dict]:
    """Score `ckpt` on `n` held-out prompts per family. Returns {family: {"n", "passed", "score"}}."""
    from ..engine.llm import LLM
    from ..engine.sampling_params import SamplingParams

    llm = llm or LLM(ckpt, dtype="float32")
    sp = SamplingParams(max_tokens=MAX_TOKENS, temperature=0)
    scores, fmt_ok, fmt_n = {}, 0, 0
    for family in _bar(families, progress):
        batch = cases(family, n)
        prompts = [llm.render(msgs, tools=ex.tools) + ex.prefill for ex, msgs in batch]
        outs = llm.generate(prompts, sp)
        passed = 0
        for (ex, _), o in zip(batch, outs):
            c = o.outputs[0]
            ok = judge(family, ex, c.text)
            passed += ok
            fmt_ok += formatted(family, c.finish_reason, c.text)
            fmt_n += 1
            if not ok and failures is not None:
                failures.setdefault(family, []).append(c.text)
        scores[family] = {"n": len(batch), "passed": passed, "score": passed / len(batch)}
    scores["format"] = {"n": fmt_n, "passed": fmt_ok, "score": fmt_ok / max(1, fmt_n)}
    return scores


def _bar(items, progress: bool):
    if not progress:
        return items
    from rich.progress import track

    return track(items, description="held-out eval")
