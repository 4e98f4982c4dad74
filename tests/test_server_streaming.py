"""The streaming parser against the non-streaming one, on fixed M2 outputs (no model): every split
point and random chunkings; OpenAI deltas and Anthropic events assemble to the non-streaming answer."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimax2.chat import parse_output
from minimax2.server.anthropic_format import EventWriter, content_blocks, sign
from minimax2.server.openai_api import event_delta, message
from minimax2.chat.stream_parser import StreamParser
from server_support import OUTPUTS, WEATHER_TOOLS

SECRET = b"test-secret"


def run(text: str, cuts: list[int], reasoning: bool = True):
    """Feed `text` split at `cuts`; return (events, parser), checking invariants after every chunk."""
    p, events, bounds = StreamParser(WEATHER_TOOLS, reasoning=reasoning), [], [0, *cuts, len(text)]
    final = parse_output(text, WEATHER_TOOLS, reasoning=reasoning)
    for a, b in zip(bounds, bounds[1:]):
        events += p.feed(text[a:b])
        _check_partial(events, final)
    events += p.finish()
    return events, p


def _check_partial(events, final) -> None:
    """After every chunk each channel so far is a prefix of its final value: nothing leaks that the
    final parse does not contain (a partial `<minimax:` marker, whitespace it strips)."""
    for ch in ("reasoning", "content"):
        so_far = "".join(ev.text for ev in events if ev.kind == ch)
        assert getattr(final, ch).startswith(so_far), (ch, so_far)


def assemble_openai(events) -> dict:
    msg = {"content": "", "reasoning_content": "", "reasoning": "", "tool_calls": {}}
    for ev in events:
        d = event_delta(ev)
        for k in ("content", "reasoning_content", "reasoning"):
            msg[k] += d.get(k, "") or ""
        for tc in d.get("tool_calls", []):
            slot = msg["tool_calls"].setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in tc:
                assert slot["id"] is None, "a call's id is sent once"
                slot["id"], slot["name"] = tc["id"], tc["function"]["name"]
            slot["arguments"] += tc["function"]["arguments"]
    return msg


def expected_openai(parsed) -> dict:
    m = message(parsed, reasoning_split=False)
    return {"content": m["content"] or "", "reasoning_content": m["reasoning_content"] or "",
            "reasoning": m["reasoning"] or "",
            "tool_calls": {i: {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                           for i, c in enumerate(m.get("tool_calls", []))}}


def assemble_anthropic(events) -> list[dict]:
    w, blocks = EventWriter(SECRET), []
    out = [e for ev in events for e in w.events(ev)] + w.end()
    for e in out:
        if e["type"] == "content_block_start":
            assert e["index"] == len(blocks)
            blocks.append({**e["content_block"], "_json": ""})
        elif e["type"] == "content_block_delta":
            b, d = blocks[e["index"]], e["delta"]
            key = {"thinking_delta": "thinking", "text_delta": "text", "signature_delta": "signature",
                   "input_json_delta": "_json"}[d["type"]]
            b[key] = (b[key] if key != "signature" else "") + d[{"_json": "partial_json"}.get(key, key)]
    for b in blocks:
        js = b.pop("_json")
        if b["type"] == "tool_use":
            b["input"] = json.loads(js)
    return blocks


def check(text: str, cuts: list[int], reasoning: bool = True, allow_mismatch: bool = False) -> None:
    events, p = run(text, cuts, reasoning)
    parsed = parse_output(text, WEATHER_TOOLS, reasoning=reasoning)
    if allow_mismatch and p.mismatch:
        return
    assert not p.mismatch
    final = p.final
    got = assemble_openai(events)
    assert got == expected_openai(final)
    assert (final.reasoning, final.content, [(c.name, c.arguments) for c in final.tool_calls]) == \
        (parsed.reasoning, parsed.content, [(c.name, c.arguments) for c in parsed.tool_calls])
    for c in final.tool_calls:
        assert c.id.startswith("call_") and len(c.id) == 29
    # every intermediate arguments prefix is a prefix of the final JSON
    for i, call in enumerate(final.tool_calls):
        prefix = ""
        for ev in events:
            if ev.kind == "tool_args" and ev.index == i:
                prefix += ev.text
                assert call.arguments_json().startswith(prefix)
    assert assemble_anthropic(events) == content_blocks(final, SECRET)


WELL_FORMED = [t for i, t in enumerate(OUTPUTS) if i != 5]  # 5: an unclosed block, see test below


@pytest.mark.parametrize("text", WELL_FORMED, ids=range(len(WELL_FORMED)))
def test_every_split_point(text):
    for k in range(len(text) + 1):
        check(text, [k])


@pytest.mark.parametrize("text", WELL_FORMED, ids=range(len(WELL_FORMED)))
def test_random_chunkings(text):
    rng = random.Random(1234)
    for _ in range(60):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 12)))) if len(text) > 1 else []
        check(text, cuts)
    check(text, list(range(1, len(text))))  # one character at a time


def test_utf8_byte_boundaries():
    """Text arrives as the UTF-8-safe detokenizer releases it; split the UTF-8 bytes anywhere and
    decode incrementally as the engine does: the result must not change."""
    import codecs

    text = OUTPUTS[1] + "\u00e9\u6771\U0001f642"
    data = text.encode()
    for k in range(len(data) + 1):
        dec = codecs.getincrementaldecoder("utf-8")()
        pieces = [dec.decode(data[:k]), dec.decode(data[k:], final=True)]
        cuts = [len(pieces[0])]
        check(pieces[0] + pieces[1], cuts)


def test_no_thinking_prefill():
    text = "Direct answer <minimax:tool_call>\n<invoke name=\"now\">\n</invoke>\n</minimax:tool_call>"
    for k in range(len(text) + 1):
        check(text, [k], reasoning=False)


def test_string_values_stream_before_their_end():
    text = OUTPUTS[0]
    cut = text.index("Francisco") + 4
    p = StreamParser(WEATHER_TOOLS)
    events = p.feed(text[:cut])
    args = "".join(e.text for e in events if e.kind == "tool_args")
    assert args == '{"city": "San Fran'
    assert [e.name for e in events if e.kind == "tool_start"] == ["get_weather"]


def test_name_announced_when_invoke_tag_completes():
    text = OUTPUTS[0]
    end = text.index('name="get_weather">') + len('name="get_weather">')
    assert not [e for e in StreamParser(WEATHER_TOOLS).feed(text[:end - 1]) if e.kind == "tool_start"]
    assert [e for e in StreamParser(WEATHER_TOOLS).feed(text[:end]) if e.kind == "tool_start"]


def test_unclosed_block_is_flagged_not_hidden():
    """An invoke announced before its block was cut off cannot be taken back; the parser says so."""
    events, p = run(OUTPUTS[5], [])
    assert p.final.tool_calls == [] and p.mismatch


def test_signature_is_hmac_of_thinking():
    assert sign(SECRET, "abc") != sign(b"other", "abc")
    assert sign(SECRET, "abc") == sign(SECRET, "abc")


def test_long_outputs_stream_in_linear_time():
    """A long reasoning and a long string argument, fed a few characters at a time (as tokens arrive)."""
    import time

    body = "word <b> & \"quoted\" \\ " * 4000  # ~90 KB
    text = (f"{body}</think>\n\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n"
            f"<parameter name=\"city\">{body}</parameter>\n</invoke>\n</minimax:tool_call>")
    t0 = time.perf_counter()
    p, args = StreamParser(WEATHER_TOOLS), []
    for k in range(0, len(text), 4):
        args += [e.text for e in p.feed(text[k:k + 4]) if e.kind == "tool_args"]
    args += [e.text for e in p.finish() if e.kind == "tool_args"]
    assert time.perf_counter() - t0 < 5.0
    assert json.loads("".join(args)) == {"city": body.strip()} and not p.mismatch


def test_anthropic_event_sequence():
    events, _ = run(OUTPUTS[0], [])
    w = EventWriter(SECRET)
    out = [e for ev in events for e in w.events(ev)] + w.end()
    kinds = [(e["type"], e.get("delta", e.get("content_block", {})).get("type")) for e in out]
    thinking_end = kinds.index(("content_block_stop", None))
    assert kinds[0] == ("content_block_start", "thinking")
    assert set(kinds[1:thinking_end - 1]) == {("content_block_delta", "thinking_delta")}
    assert kinds[thinking_end - 1] == ("content_block_delta", "signature_delta")
    blocks = [k[1] for k in kinds if k[0] == "content_block_start"]
    assert blocks == ["thinking", "text", "tool_use", "tool_use"]
    assert {k for k in kinds if k[0] == "content_block_delta"} == {
        ("content_block_delta", t) for t in ("thinking_delta", "signature_delta", "text_delta", "input_json_delta")}
    assert kinds[-1] == ("content_block_stop", None) and kinds.count(("content_block_stop", None)) == 4


# -- generated outputs -----------------------------------------------------------------------------
ALPHABET = list("ab <>/=\"'\n\t {}[]:,.-0123456789nulNULtrue\u00e9\u6771\U0001f642\\")
text_st = st.text(alphabet=st.sampled_from(ALPHABET), max_size=12)
ws_st = st.sampled_from(["", "\n", " ", "\n\n", "\t "])
quote_st = st.sampled_from(['"', "'", ""])


@st.composite
def invoke_st(draw):
    q = draw(quote_st)
    name = draw(st.sampled_from(["get_weather", "now", "other"]))
    keys = draw(st.lists(st.sampled_from(["city", "days", "metric", "zip", "opts", "ratio", "unknown"]),
                         unique=True, max_size=4))
    values = {"days": st.sampled_from(["3", "-2", "x", " 7 "]), "metric": st.sampled_from(["true", "no", "maybe"]),
              "opts": st.sampled_from(['{"a": 1}', "[1]", "{bad"]), "ratio": st.sampled_from(["0.5", "1e3", "nan"])}
    params = "".join(f"<parameter name={draw(quote_st)}{k}>{draw(values.get(k, text_st))}</parameter>{draw(ws_st)}"
                     for k in keys)
    return f"<invoke name={q}{name}{q}>{draw(ws_st)}{params}</invoke>{draw(ws_st)}"


@st.composite
def output_st(draw):
    blocks = "".join(f"<minimax:tool_call>{draw(ws_st)}{''.join(draw(st.lists(invoke_st(), max_size=3)))}"
                     f"</minimax:tool_call>{draw(text_st)}" for _ in range(draw(st.integers(0, 2))))
    shape = draw(st.sampled_from(["answer", "calls_in_reasoning", "reasoning_only"]))
    head = draw(st.sampled_from(["", "<think>\n", " "])) + draw(text_st)
    if shape == "answer":
        return head + "</think>" + draw(ws_st) + draw(text_st) + blocks
    return head + (blocks if shape == "calls_in_reasoning" else "")


@settings(max_examples=300, deadline=None)
@given(output_st(), st.lists(st.integers(1, 400), max_size=8), st.booleans())
def test_generated_outputs(text, cuts, reasoning):
    """Well-formed outputs (no repeated parameter, every block closed): the stream equals the parse."""
    check(text, sorted({c for c in cuts if c < len(text)}), reasoning)


MARKERS = ["<minimax:tool_call>", "</minimax:tool_call>", "<invoke name=", "</invoke>", "<parameter name=",
           "</parameter>", "<think>", "</think>", "[e~[", '"now">', '"city">', ">", "<", "<minimax:", "</para"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(MARKERS), text_st), max_size=14), st.lists(st.integers(1, 200), max_size=6))
def test_malformed_outputs_never_crash(pieces, cuts):
    """Any markup soup: no exception; unless the parser flags a mismatch, the stream equals the parse."""
    text = "".join(pieces)
    check(text, sorted({c for c in cuts if c < len(text)}), allow_mismatch=True)
