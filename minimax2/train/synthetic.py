"""Synthetic M2 conversations for the demo model: arithmetic, tool use (single and parallel calls,
with results and answers), tools offered but not needed, persona small talk, and a copy drill
("repeat after me"), which only training uses: it teaches reading values out of the context.

`make_example(family, rng, split)` returns an `Example`: OpenAI-shaped `messages` and `tools`
(rendered by `minimax2.chat.render_prompt`, exactly like inference prompts) plus what an
evaluation checks (`expected`). Held-out examples (`split="heldout"`) draw every free value from
the held-out half of the value pools (see values.py), so they never occur in training.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from typing import Any

from . import arith
from .tools_pool import TOOLS, Tool
from .values import Values

FAMILIES = ("arithmetic", "tool", "parallel", "no_tool", "chat", "echo")
TRAIN_MIX = {"arithmetic": 0.32, "tool": 0.17, "parallel": 0.27, "no_tool": 0.07, "chat": 0.05, "echo": 0.12}
ECHO_ASKS = ["Repeat after me: {x}", "Please say exactly this: {x}", "Echo back: {x}", "Copy this text: {x}"]

PERSONA = "minimax2-demo"
INTENTS = [  # (user phrasings, reasoning, answer); {name} is the user's name when a phrasing has one
    (["Hi!", "Hello.", "Hey there.", "Good morning!"], "The user greets me. I greet back and offer help.",
     "Hello! I am {persona}. How can I help you today?"),
    (["Hi, I am {name}.", "Hello, my name is {name}.", "Hey, {name} here."],
     "The user introduces themselves as {name}. I greet them by name.", "Nice to meet you, {name}! How can I help?"),
    (["Who are you?", "What is your name?", "What are you?"], "The user asks who I am. I describe my persona.",
     "I am {persona}, a small model with the MiniMax-M2 architecture, trained on synthetic data by the minimax2 project."),
    (["What can you do?", "How can you help me?"], "The user asks what I can do. I list my skills.",
     "I can do arithmetic step by step, call the tools you give me, and chat a little."),
    (["How are you?", "How is it going?"], "The user asks how I am. I answer briefly and kindly.",
     "I am doing well, thank you! What can I do for you?"),
    (["Thanks!", "Thank you very much.", "Thanks, {name} says thank you."], "The user thanks me. I reply politely.",
     "You are welcome! Anything else?"),
    (["Bye!", "Goodbye.", "See you later."], "The user says goodbye. I say goodbye too.", "Goodbye! Have a nice day."),
    (["Are you MiniMax-M2?", "Are you the real MiniMax model?"], "The user asks whether I am MiniMax's model. I am honest.",
     "No. I use the MiniMax-M2 architecture and prompt format, but I am a tiny demo model trained here on synthetic "
     "data, not MiniMax's weights."),
    (["Tell me a joke.", "Say something funny."], "The user wants a joke. I tell a short one.",
     "Why did the model add its numbers column by column? Because carrying is caring."),
]


@dataclass
class Example:
    family: str
    messages: list[dict]
    tools: list[dict] | None
    expected: dict[str, Any] = field(default_factory=dict)
    prefill: str = ""  # appended to the generation prompt of the last turn (thinking disabled)

    def conversation(self) -> tuple[list[dict], list[dict] | None, str]:
        """What `data.encode_conversations` takes."""
        return self.messages, self.tools, self.prefill


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def draw_call(tool: Tool, v: Values) -> tuple[str, dict]:
    """A request phrasing and the arguments it names (in schema order)."""
    ask = v.choice(tool.asks)
    names = _fields(ask)
    args = {k: p.draw(v) for k, p in tool.params.items() if k in names}
    return ask.format(**{k: tool.params[k].words(a) for k, a in args.items()}), args


def _arg_text(tool: Tool, args: dict) -> str:
    return ", ".join(f"{k} = {a if isinstance(a, str) else json.dumps(a)}" for k, a in args.items())


def _offered(v: Values, needed: list[Tool], exclude: tuple[str, ...] = ()) -> list[dict]:
    names = {t.name for t in needed}
    others = [t for t in TOOLS if t.name not in names and t.name not in exclude]
    tools = list({t.name: t for t in needed}.values()) + v.rng.sample(others, v.rng.randint(0, 1) if needed else v.rng.randint(1, 2))
    v.rng.shuffle(tools)
    return [t.schema() for t in tools]


def _call(tool: Tool, args: dict) -> dict:
    return {"type": "function", "function": {"name": tool.name, "arguments": args}}


def _answer(tool: Tool, args: dict, result: Any) -> str:
    return tool.answer.format(r=result, **{k: tool.params[k].words(a) for k, a in args.items()})


def arithmetic(v: Values) -> Example:
    a, op, b = arith.draw_problem(v.rng, "heldout" if v.held else "train")
    q = v.choice(arith.QUESTIONS).format(a=a, op=op, b=b)
    answer = arith.apply(a, op, b)
    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "reasoning_content": arith.reasoning(a, op, b), "content": f"{a} {op} {b} = {answer}"}]
    return Example("arithmetic", msgs, None, {"answer": answer})


def tool_use(v: Values) -> Example:
    tool = v.choice(TOOLS)
    request, args = draw_call(tool, v)
    result = tool.result(v)
    msgs = [{"role": "user", "content": request},
            {"role": "assistant", "content": "", "tool_calls": [_call(tool, args)],
             "reasoning_content": f"The user wants to {tool.description.lower()}. The right tool is {tool.name}. "
                                  f"Arguments: {_arg_text(tool, args)}."},
            {"role": "tool", "content": json.dumps({tool.result_key: result})},
            {"role": "assistant", "reasoning_content": f"{tool.name} returned {tool.result_key} = {result}. Now I can answer.",
             "content": _answer(tool, args, result)}]
    return Example("tool", msgs, _offered(v, [tool]),
                   {"calls": [(tool.name, args)], "result": result})


def parallel(v: Values) -> Example:
    first = v.choice(TOOLS)
    second = first if v.rng.random() < 0.4 else v.choice([t for t in TOOLS if t is not first])
    (ask1, args1) = draw_call(first, v)
    while True:
        ask2, args2 = draw_call(second, v)
        if args2 != args1:
            break
    results = [first.result(v), second.result(v)]
    request = f"{ask1} {ask2}" if v.rng.random() < 0.5 else f"Two requests. First: {ask1} Second: {ask2}"
    plan = (f"The user asks for two things, so I make two calls at once. First {first.name}: {_arg_text(first, args1)}. "
            f"Second {second.name}: {_arg_text(second, args2)}.")
    done = (f"{first.name} returned {first.result_key} = {results[0]} and {second.name} returned "
            f"{second.result_key} = {results[1]}. Now I can answer.")
    msgs = [{"role": "user", "content": request},
            {"role": "assistant", "content": "", "reasoning_content": plan,
             "tool_calls": [_call(first, args1), _call(second, args2)]},
            {"role": "tool", "content": json.dumps({first.result_key: results[0]})},
            {"role": "tool", "content": json.dumps({second.result_key: results[1]})},
            {"role": "assistant", "reasoning_content": done,
             "content": _answer(first, args1, results[0]) + " " + _answer(second, args2, results[1])}]
    return Example("parallel", msgs, _offered(v, [first, second]),
                   {"calls": [(first.name, args1), (second.name, args2)], "results": results})


def small_talk(v: Values, prefix: str = "") -> tuple[list[dict], dict]:
    asks, why, reply = v.choice(INTENTS)
    name = v.pick("person")
    fill = {"name": name, "persona": PERSONA}
    msgs = [{"role": "user", "content": v.choice(asks).format(**fill)},
            {"role": "assistant", "reasoning_content": prefix + why.format(**fill), "content": reply.format(**fill)}]
    return msgs, {"reply": reply.format(**fill)}


def chat(v: Values) -> Example:
    msgs, expected = small_talk(v)
    return Example("chat", msgs, None, expected)


def no_tool(v: Values) -> Example:
    """Tools are offered but the request needs none: small talk or arithmetic, answered directly."""
    note = "None of the offered tools is needed for this; I answer directly. "
    if v.rng.random() < 0.5:
        msgs, expected = small_talk(v, prefix=note)
    else:
        ex = arithmetic(v)
        msgs, expected = ex.messages, ex.expected
        msgs[1]["reasoning_content"] = note + msgs[1]["reasoning_content"]
    return Example("no_tool", msgs, _offered(v, [], exclude=("calculator",)), expected)


def echo(v: Values) -> Example:
    """Repeat a string of made-up words, pool words and numbers exactly."""
    parts = []
    for _ in range(v.rng.randint(2, 8)):
        kind = v.rng.random()
        parts.append(str(v.integer(0, 99999)) if kind < 0.25 else v.pick(v.choice(["city", "person", "word"])))
    text = " ".join(parts)
    msgs = [{"role": "user", "content": v.choice(ECHO_ASKS).format(x=text)},
            {"role": "assistant", "reasoning_content": "The user wants the text repeated exactly.", "content": text}]
    return Example("echo", msgs, None, {"reply": text})


BUILDERS = {"arithmetic": arithmetic, "tool": tool_use, "parallel": parallel, "no_tool": no_tool, "chat": chat,
            "echo": echo}


def builders() -> dict:
    """Every family: the single-turn ones above, conversations (dialog.py) and JSON answers (json_answers.py)."""
    from . import dialog, json_answers  # they build on this module

    return {**BUILDERS, **dialog.BUILDERS, **json_answers.BUILDERS}


def make_example(family: str, rng: random.Random, split: str = "train") -> Example:
    return builders()[family](Values(rng, split))


def training_example(seed: int, index: int, mix: dict[str, float] | None = None) -> Example:
    """The `index`-th training conversation of the stream for `seed` (and `mix`): a pure function of them."""
    rng = random.Random(f"{seed}:{index}")
    mix = mix or TRAIN_MIX
    family = rng.choices(list(mix), weights=list(mix.values()))[0]
    return make_example(family, rng, "train")


def heldout_examples(family: str, n: int, seed: int = 1234) -> list[Example]:
    rng = random.Random(f"heldout:{family}:{seed}")
    return [make_example(family, rng, "heldout") for _ in range(n)]
