"""Tokenizer, streaming detokenization and stop-string hold-back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimax2.chat import markers as m
from minimax2.chat.tokenizer import IncrementalDetokenizer, Tokenizer
from minimax2.engine.output import OutputText, _held_suffix


def test_markers_are_single_tokens(tiny_ckpt):
    tok = Tokenizer(tiny_ckpt)
    for marker in (m.BEGIN_OF_DOCUMENT, m.BEGIN_OF_ROLE, m.END_OF_MESSAGE, m.THINK_START, m.THINK_END,
                   m.TOOL_CALL_START, m.TOOL_CALL_END):
        ids = tok.encode(f"x{marker}y")
        assert tok.token_to_id(marker) in ids, marker
        assert tok.decode(ids) == f"x{marker}y"
    assert tok.eos_token_id == tok.token_to_id(m.END_OF_MESSAGE)
    assert tok.token_to_id(m.THINK_END) not in tok.special_ids  # kept in output text for the parser


def _stream(tok, text):
    d = IncrementalDetokenizer(tok)
    deltas = [d.push(i) for i in tok.encode(text)]
    deltas.append(d.flush())
    return deltas


def test_incremental_detokenization_never_breaks_utf8(tiny_ckpt):
    tok = Tokenizer(tiny_ckpt)
    text = "Température à 東京: 22°C 🙂 — ok.\n<think>\nhmm</think>\n\n終わり"
    deltas = _stream(tok, text)
    assert "".join(deltas) == tok.decode(tok.encode(text)) == text
    assert all("\ufffd" not in d for d in deltas)
    assert sum(1 for d in deltas if d) > 5  # it really streams


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab東🙂 \n", min_size=0, max_size=40), st.sampled_from(["ab", "b東", "🙂🙂", "\n\n", "zz"]))
def test_stop_strings_never_leak(tiny_ckpt, text, stop):
    tok = Tokenizer(tiny_ckpt)
    out = OutputText(tok, [stop], set())
    emitted, stopped = "", False
    for i in tok.encode(text):
        delta, stopped = out.push(i)
        emitted += delta
        assert stop not in emitted
        if stopped:
            break
    emitted += out.finish()
    cut = text.find(stop)
    assert emitted == (text if cut < 0 else text[:cut])
    assert stopped == (cut >= 0)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aab", max_size=30), st.lists(st.text(alphabet="ab", min_size=1, max_size=12), max_size=4))
def test_held_back_text_is_the_longest_suffix_that_starts_a_stop_string(text, stops):
    want = max([n for s in stops for n in range(1, min(len(s) - 1, len(text)) + 1) if text.endswith(s[:n])],
               default=0)
    assert _held_suffix(text, stops) == want


def test_stop_lists_are_bounded():
    from minimax2.engine.sampling_params import MAX_STOP_CHARS, MAX_STOP_STRINGS, SamplingParams

    SamplingParams(stop=["x" * MAX_STOP_CHARS] * MAX_STOP_STRINGS)
    with pytest.raises(ValueError, match=f"stop must be at most {MAX_STOP_STRINGS} strings.*got 17 strings"):
        SamplingParams(stop=["x"] * (MAX_STOP_STRINGS + 1))
    with pytest.raises(ValueError, match=f"got 1 strings, the longest {MAX_STOP_CHARS + 1} characters"):
        SamplingParams(stop=["x" * (MAX_STOP_CHARS + 1)])
