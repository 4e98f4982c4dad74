"""The M2 output path from the engine to the wire (issues 18 and 19): one record (`StepOutput`) from
the engine through the backend, one decode per token, the stop reason found by the engine only,
bounded values in structured output, and a `</think>` written after an empty think block pre-filled
(thinking off) making what precedes it reasoning, dropped, never text.

The `</think>` cases run through real servers: a `minimax2` server in remote mode in front of a scripted
raw-text engine (the component under test is the front end), with the official OpenAI and Anthropic SDKs."""

from __future__ import annotations

import asyncio
import json
import random

import anthropic
import openai
import pytest

from server_support import ServerThread
from server_support.scripted_engine import ScriptedEngine

pytest_plugins = ["server_support.fixtures"]

RETHOUGHT = "Thinking anyway, the user said hi.</think>\n\nHello there."
NO_THINK = {"chat_template_kwargs": {"enable_thinking": False}}


# -- the parser -------------------------------------------------------------------------------------
def _assemble(text: str, cuts: list[int], reasoning: bool) -> tuple[str, str]:
    from minimax2.chat import StreamParser

    p, events, bounds = StreamParser(reasoning=reasoning), [], [0, *cuts, len(text)]
    for a, b in zip(bounds, bounds[1:]):
        events += p.feed(text[a:b])
    events += p.finish()
    assert not p.mismatch
    got = ("".join(e.text for e in events if e.kind == "reasoning"), "".join(e.text for e in events if e.kind == "content"))
    assert got == (p.final.reasoning, p.final.content)
    return got


@pytest.mark.parametrize("text, content", [
    (RETHOUGHT, "Hello there."),
    ("No thinking at all, just text.", "No thinking at all, just text."),
    ("a</think>b</think>c", "b</think>c"),  # only the first </think> ends the reasoning
    ("thought</think>", ""),
])
def test_think_end_after_prefill_is_reasoning_at_every_split(text, content):
    from minimax2.chat import parse_output

    assert (parse_output(text, reasoning=False).reasoning, parse_output(text, reasoning=False).content) == ("", content)
    for k in range(len(text) + 1):
        assert _assemble(text, [k], reasoning=False) == ("", content)
    assert _assemble(text, list(range(1, len(text))), reasoning=False) == ("", content)


def test_think_end_after_a_complete_call_stays_content():
    from minimax2.chat import parse_output

    text = 'Calling.<minimax:tool_call>\n<invoke name="now">\n</invoke>\n</minimax:tool_call> then </think>'
    out = parse_output(text, reasoning=False)
    assert out.content == "Calling." and [c.name for c in out.tool_calls] == ["now"]


# -- the detokenizer and the engine's record ----------------------------------------------------------
def test_one_decode_per_token_and_the_same_text(tiny_ckpt):
    """Random ids (multi-byte characters split across tokens included) decode to what one decode of all
    of them gives, with at most one `decode` per token plus the final flush."""
    from minimax2.chat.tokenizer import IncrementalDetokenizer, Tokenizer

    tok = Tokenizer(tiny_ckpt)
    calls = 0
    real = tok.decode

    def counted(ids, skip_special_tokens=False):
        nonlocal calls
        calls += 1
        return real(ids, skip_special_tokens)

    tok.decode = counted
    rng = random.Random(0)
    texts = ["Plain words and spaces. ", "東京 🙂 é — ünïcödé", "<minimax:tool_call>\n[e~[", "  a\n\nb  "]
    for trial in range(20):
        ids = tok.encode("".join(rng.choice(texts) for _ in range(6)))
        if trial % 2:
            ids = [rng.randrange(tok.vocab_size) for _ in range(40)]  # bytes in any order
        calls, d = 0, IncrementalDetokenizer(tok)
        out = "".join(d.push(i) for i in ids) + d.flush()
        assert out == real(ids)
        assert calls <= len(ids) + 1


def test_backend_passes_the_engines_record_and_stop_reason(server, server_llm):
    """LocalBackend yields the engine's own StepOutput objects; the stop string comes from the engine."""
    from minimax2.engine.output import StepOutput
    from minimax2.engine.sampling_params import SamplingParams

    backend, ids = server.app.state.server.backend, server_llm.tokenizer.encode("Once upon a time")

    def run(rid: str, **kw) -> list:
        params = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True, **kw)

        async def go():
            return [o async for o in backend.generate(rid, "", ids, params)]
        return asyncio.run(go())

    text = "".join(o.text for o in run("rec-free"))
    stop = text[len(text) // 2:len(text) // 2 + 3]
    assert stop.strip(), f"need a visible stop string from {text!r}"
    records = run("rec-stop", stop=[stop])
    assert all(type(r) is StepOutput for r in records)
    assert records[-1].finish_reason == "stop" and records[-1].stop_string == stop == records[-1].stop_reason
    assert "".join(r.text for r in records) == text[:text.find(stop)]


# -- bounded structured output ------------------------------------------------------------------------
def _matcher(tiny_ckpt, lark: str):
    import llguidance

    from minimax2.chat.grammar import GrammarFactory
    from minimax2.chat.tokenizer import Tokenizer

    tok = Tokenizer(tiny_ckpt)
    g = GrammarFactory(tok, (tiny_ckpt / "tokenizer.json").read_text(), tok.vocab_size, [tok.eos_token_id])
    return tok, llguidance.LLMatcher(g.ll, llguidance.LLMatcher.grammar_from_lark(lark)), g


def _accepts(tok, mt, text: str, head: str = "") -> bool:
    """Whether the matcher takes `head` (markers as their control tokens) and then `text` (as text)."""
    return all(mt.consume_token(i) for i in tok.encode(head) + tok.encode_text(text)) and not mt.is_error()


def test_unbounded_schema_values_are_capped(tiny_ckpt):
    from minimax2.chat import grammar

    tok, _, g = _matcher(tiny_ckpt, "start: /x/")
    cases = [({"type": "string"}, '"' + "a" * grammar.MAX_STRING_CHARS + '"', '"' + "a" * (grammar.MAX_STRING_CHARS + 1)),
             ({"type": "string", "maxLength": 5000}, '"' + "a" * 5000 + '"', '"' + "a" * 5001),
             ({"type": "integer"}, "9" * 18, "9" * 19),
             ({"type": "number"}, "-123.0123456789", "1." + "0" * 11),
             ({"type": "number"}, "9" * 18 + ".5", "9" * 20)]
    for schema, ok, too_long in cases:
        assert _accepts(tok, _matcher(tiny_ckpt, g.json_grammar(schema, reasoning=False))[1], ok), (schema, ok)
        assert not _accepts(tok, _matcher(tiny_ckpt, g.json_grammar(schema, reasoning=False))[1], too_long), schema
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "s": {"type": "string"}, "n": {"type": "number"}}, "required": ["s", "n"]}}}]
    lark = g.tool_grammar(tools, ["f"], parallel=False, reasoning=False)
    head = '<minimax:tool_call>\n<invoke name="f">\n<parameter name="s">'
    assert _accepts(tok, _matcher(tiny_ckpt, lark)[1], "b" * grammar.MAX_STRING_CHARS, head)
    assert not _accepts(tok, _matcher(tiny_ckpt, lark)[1], "b" * (grammar.MAX_STRING_CHARS + 1), head)


def test_schema_request_without_max_tokens_ends_within_the_cap(server, monkeypatch):
    """No max_tokens, thinking off: the tiny random model's string value is cut by the grammar's cap
    (lowered here so that the context could not end it first), and the answer is complete JSON."""
    from minimax2.chat import grammar

    monkeypatch.setattr(grammar, "MAX_STRING_CHARS", 24)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)
    schema = {"type": "object", "properties": {"s": {"type": "string"}, "k": {"type": "integer"}},
              "required": ["s", "k"], "additionalProperties": False}
    for seed in range(3):
        r = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Answer in JSON."}], seed=seed, extra_body=NO_THINK,
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
        assert r.choices[0].finish_reason == "stop"
        value = json.loads(r.choices[0].message.content)
        assert len(value["s"]) <= 24 and len(str(abs(value["k"]))) <= grammar.MAX_INT_DIGITS


# -- </think> after the prefill, through real servers ---------------------------------------------------
@pytest.fixture(scope="module")
def rethinking(tiny_ckpt):
    from minimax2.server.app import create_app
    from minimax2.server.backends import RemoteBackend
    from minimax2.server.service import ServerConfig

    with ScriptedEngine([RETHOUGHT], tokenizer=tiny_ckpt) as engine:
        backend = RemoteBackend(tiny_ckpt, engine.url, model="scripted")
        with ServerThread(create_app(backend, ServerConfig(served_model_name="m2", thinking_secret=b"k"))) as front:
            front.engine = engine
            yield front


def test_openai_thinking_off_drops_what_precedes_think_end(rethinking):
    client = openai.OpenAI(base_url=rethinking.url + "/v1", api_key="none", max_retries=0, timeout=60)
    msgs = [{"role": "user", "content": "hi"}]
    r = client.chat.completions.create(model="m2", messages=msgs, extra_body=NO_THINK)
    assert rethinking.engine.prompts[-1].endswith("<think>\n</think>\n\n")  # the empty think block went out
    m = r.choices[0].message
    assert m.content == "Hello there." and getattr(m, "reasoning_content", None) is None
    content, reasoning = "", ""
    for chunk in client.chat.completions.create(model="m2", messages=msgs, extra_body=NO_THINK, stream=True):
        for c in chunk.choices:
            content += c.delta.content or ""
            reasoning += getattr(c.delta, "reasoning_content", None) or ""
    assert (content, reasoning) == ("Hello there.", "")
    thinking_on = client.chat.completions.create(model="m2", messages=msgs).choices[0].message
    assert thinking_on.reasoning_content == "Thinking anyway, the user said hi."  # the same text, thinking on


def test_anthropic_thinking_disabled_drops_what_precedes_think_end(rethinking):
    client = anthropic.Anthropic(base_url=rethinking.url, api_key="none", max_retries=0, timeout=60)
    args = dict(model="m2", max_tokens=64, messages=[{"role": "user", "content": "hi"}], thinking={"type": "disabled"})
    r = client.messages.create(**args)
    assert [(b.type, getattr(b, "text", None)) for b in r.content] == [("text", "Hello there.")]
    with client.messages.stream(**args) as stream:
        final = stream.get_final_message()
    assert [(b.type, getattr(b, "text", None)) for b in final.content] == [("text", "Hello there.")]


# -- the local engine: </think> banned once thinking is off, so text streams as it comes -------------------
def test_ban_token_processor_removes_think_end_from_the_choices(server_llm):
    import torch

    from minimax2.chat import markers as m
    from minimax2.server.chat_prep import BanToken

    end = server_llm.tokenizer.encode(m.THINK_END)
    assert len(end) == 1
    logits = torch.zeros(server_llm.cfg.vocab_size)
    logits[end[0]] = 10.0
    assert int(BanToken(end[0])([], logits).argmax()) != end[0]


def test_local_thinking_off_streams_content_incrementally(server):
    """Thinking off on the local engine: `</think>` cannot be sampled, so the parser need not hold the
    text until the end (it would arrive in one delta with the finish); here it comes token by token."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)
    deltas = []
    for seed in range(3):
        pieces, reasoning = [], ""
        for chunk in client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "hi"}], seed=seed, max_tokens=24, stream=True,
                extra_body={**NO_THINK, "ignore_eos": True}):
            for c in chunk.choices:
                if c.delta.content and c.finish_reason is None:
                    pieces.append(c.delta.content)
                reasoning += getattr(c.delta, "reasoning_content", None) or ""
        assert reasoning == ""
        deltas.append(len(pieces))
    assert max(deltas) >= 3, deltas
