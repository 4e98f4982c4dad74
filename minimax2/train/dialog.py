"""Conversations beyond one request: several user turns with their history, replies to clients that
do not send earlier reasoning back, and replies with thinking disabled.

- `followup`: 2-4 user turns (arithmetic, tool use, small talk, copy drills) where a later turn may
  refer to the previous answer ("Add 5 to that."). History is rendered as a client sends it back:
  earlier reasoning kept or dropped (the M2 renderer shows reasoning only after the last user
  message, so both render alike), earlier tool calls and results present. Only the reply to the
  last user message is trained (data.assistant_spans).
- `noreason`: a tool turn whose call comes back without its reasoning (the OpenAI Agents SDK keeps
  only content and tool calls); the answer after the tool result is given once.
- `nothink`: the request disabled thinking, so the prompt ends with the empty think block the server
  pre-fills (`markers.EMPTY_THINK_PREFILL`) and the reply is the answer or the call, directly.
"""

from __future__ import annotations

from ..chat import markers as m
from . import arith
from .json_answers import extraction
from .synthetic import Example, arithmetic, echo, parallel, small_talk, tool_use
from .values import Values

FOLLOW_ASKS = {
    "+": ["Add {b} to that.", "Now add {b}.", "What is that plus {b}?", "And plus {b}?", "Take the result and add {b}."],
    "-": ["Subtract {b} from that.", "Now subtract {b}.", "What is that minus {b}?", "And minus {b}?",
          "Take the result and subtract {b}."],
    "*": ["Multiply that by {b}.", "Now multiply it by {b}.", "What is that times {b}?", "And times {b}?",
          "Take the result and multiply it by {b}."],
}
TURN_KINDS = {"arithmetic": 0.45, "tool": 0.2, "chat": 0.2, "echo": 0.15}


def draw_followup(v: Values, prev: int) -> tuple[str, int] | None:
    """An operation on a previous non-negative answer whose problem belongs to `v`'s split (None: none fits)."""
    for _ in range(100):
        op = v.rng.choice(("+-*" if prev <= 9999 else "+-") if prev >= 1 else "+*")
        b = v.rng.randint(2, 9) if op == "*" else v.rng.randint(1, min(999, prev) if op == "-" else 999)
        if arith.problem_is_held_out(prev, op, b) == v.held and arith.apply(prev, op, b) <= 99999:
            return op, b
    return None


def followup_turn(v: Values, prev: int, op: str, b: int) -> list[dict]:
    answer = arith.apply(prev, op, b)
    why = f"The previous answer was {prev}, so the user asks for {prev} {op} {b}.\n" + arith.reasoning(prev, op, b)
    return [{"role": "user", "content": v.choice(FOLLOW_ASKS[op]).format(b=b)},
            {"role": "assistant", "reasoning_content": why, "content": f"{prev} {op} {b} = {answer}"}]


def _fresh_arithmetic(v: Values) -> tuple[list[dict], int]:
    while True:
        ex = arithmetic(v)
        if ex.expected["answer"] >= 0:
            return ex.messages, ex.expected["answer"]


def _other_turn(v: Values, kind: str) -> tuple[list[dict], list[dict] | None, int | None, dict]:
    """One self-contained turn: (messages, tools it needs, its answer when a number, what it should reply)."""
    if kind == "arithmetic":
        msgs, answer = _fresh_arithmetic(v)
        return msgs, None, answer, {"answer": answer, "kind": kind}
    if kind == "tool":
        ex = tool_use(v)
        return ex.messages, ex.tools, None, {**ex.expected, "kind": kind}
    if kind == "chat":
        msgs, reply = small_talk(v)
        return msgs, None, None, {**reply, "kind": kind}
    ex = echo(v)
    return ex.messages, None, None, {**ex.expected, "kind": kind}


def followup(v: Values) -> Example:
    """Training: 2-4 turns, each a follow-up on the previous answer when one fits (70% for the last turn,
    50% before), else a fresh turn. Held out: 0-1 other turns, a fresh arithmetic turn, then a follow-up."""
    while True:
        if v.held:
            kinds = [v.rng.choice(list(TURN_KINDS)) for _ in range(v.rng.randint(0, 1))] + ["arithmetic", "follow"]
        else:
            kinds = [None] * v.rng.randint(2, 4)
        msgs, tools, prev, expected = [], None, None, {}
        for t, kind in enumerate(kinds):
            last = t == len(kinds) - 1
            if kind is None:
                follow = prev is not None and v.rng.random() < (0.7 if last else 0.5)
                kind = "follow" if follow else v.rng.choices(list(TURN_KINDS), weights=list(TURN_KINDS.values()))[0]
            step = draw_followup(v, prev) if kind == "follow" and prev is not None else None
            if step:
                turn = followup_turn(v, prev, *step)
                prev = arith.apply(prev, *step)
                expected = {"answer": prev, "kind": "follow"}
            elif kind == "follow" and v.held:
                break  # no held-out follow-up fits this answer: draw again
            else:
                turn, needs, prev, expected = _other_turn(v, "arithmetic" if kind == "follow" else kind)
                tools = tools or needs
            if not last and v.rng.random() < 0.5:  # the client dropped the reasoning it was sent
                turn = [{k: x for k, x in msg.items() if k != "reasoning_content"} for msg in turn]
            msgs += turn
        else:
            return Example("followup", msgs, tools, expected)


def noreason(v: Values) -> Example:
    """The call came back without its reasoning; the final answer is trained (held out: single calls)."""
    ex = tool_use(v) if v.held or v.rng.random() < 0.6 else parallel(v)
    msgs = [dict(msg) for msg in ex.messages]
    call = msgs[1]
    call.pop("reasoning_content")
    if v.rng.random() < 0.3:
        call.pop("content")
    return Example("noreason", msgs, ex.tools, {**ex.expected, "reply": msgs[-1]["content"]})


def _direct(msgs: list[dict]) -> list[dict]:
    return [{k: x for k, x in msg.items() if k != "reasoning_content"} if msg["role"] == "assistant" else msg
            for msg in msgs]


def nothink(v: Values) -> Example:
    """Thinking disabled: chat, copy drills, a tool call or the answer after its result, arithmetic with the
    work shown in the answer, JSON extraction."""
    kind = v.rng.choices(["chat", "echo", "call", "answer", "arithmetic", "json"], weights=[0.2, 0.2, 0.2, 0.15, 0.1, 0.15])[0]
    tools = None
    if kind == "json":
        msgs, schema, obj = extraction(v)
        exp = {"schema": schema, "object": obj}
    elif kind == "chat":
        msgs, exp = small_talk(v)
    elif kind == "echo":
        ex = echo(v)
        msgs, exp = ex.messages, ex.expected
    elif kind in ("call", "answer"):
        ex = tool_use(v)
        tools, exp = ex.tools, ex.expected
        msgs = ex.messages[:2] if kind == "call" else ex.messages
    else:
        ex = arithmetic(v)
        msgs, exp = ex.messages, ex.expected
        work = msgs[1]["reasoning_content"]
        msgs[1] = {"role": "assistant", "content": f"{work}\nSo {msgs[1]['content']}."}
    return Example("nothink", _direct(msgs), tools, {**exp, "kind": kind}, prefill=m.EMPTY_THINK_PREFILL)


BUILDERS = {"followup": followup, "noreason": noreason, "nothink": nothink}
