"""Parsing finished M2 generations: reasoning split, tool-call extraction and schema typing
(reference doc section 5), plus a render -> parse round trip."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimax2.chat import ParsedOutput, ToolCall, convert_value, parse_output, render_prompt, tool_param_types
from minimax2.chat.markers import GENERATION_PROMPT
from minimax2.chat.parser import clean_name, partial_marker_len


def invoke(name, **params):
    body = "".join(f'<parameter name="{k}">{v}</parameter>\n' for k, v in params.items())
    return f'<invoke name="{name}">\n{body}</invoke>\n'


def block(*invokes):
    return "<minimax:tool_call>\n" + "".join(invokes) + "</minimax:tool_call>"


def tools_for(properties, name="f"):
    parameters = {"type": "object", "properties": properties}
    return [{"type": "function", "function": {"name": name, "parameters": parameters}}]


def typed(raw, schema):
    """Parse one parameter value through a full generation with the given schema."""
    out = parse_output("r</think>\n\n" + block(invoke("f", p=raw)), tools_for({"p": schema}))
    return out.tool_calls[0].arguments["p"]


# --- reasoning / content split ------------------------------------------------------------

@pytest.mark.parametrize("text, reasoning, content", [
    ("I think.\n</think>\n\nHello!", "I think.", "Hello!"),
    ("I think.\n</think>\n\nHello![e~[", "I think.", "Hello!"),
    ("<think>\nI think.\n</think>\n\nHello!", "I think.", "Hello!"),
    ("\n<think>I think.</think>Hello!", "I think.", "Hello!"),
    ("</think>\n\nJust an answer.", "", "Just an answer."),
    ("Still thinking, cut off by max_tokens", "Still thinking, cut off by max_tokens", ""),
    ("Still thinking[e~[", "Still thinking", ""),
    ("a</think>b</think>c", "a", "b</think>c"),
    ("r</think>\n\nans[e~[garbage after stop", "r", "ans"),
    ("", "", ""),
])
def test_reasoning_split(text, reasoning, content):
    out = parse_output(text)
    assert (out.reasoning, out.content, out.tool_calls) == (reasoning, content, [])


def test_reasoning_false_means_no_reasoning_channel():
    """Issue 18: a </think> after the pre-filled empty think block closes reasoning the model wrote
    anyway; that text is dropped, never content."""
    out = parse_output("thought anyway </think> handling here\n" + block(invoke("f", a="1")), reasoning=False)
    assert out.reasoning == ""
    assert out.content == "handling here"
    assert [c.name for c in out.tool_calls] == ["f"]
    assert parse_output("plain answer[e~[", reasoning=False) == ParsedOutput("", "plain answer", [])


# --- tool-call extraction -----------------------------------------------------------------

def test_basic_tool_call_and_content_before_block():
    text = "need weather</think>\n\nLet me check.\n" + block(invoke("get_weather", city="Paris")) + "[e~["
    out = parse_output(text)
    assert out.reasoning == "need weather"
    assert out.content == "Let me check."
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_names_may_be_quoted_or_bare():
    text = ("</think>" + "<minimax:tool_call>\n<invoke name='single'>\n<parameter name='k'>v</parameter>\n</invoke>\n"
            "<invoke name=bare>\n<parameter name=k2>v2</parameter>\n</invoke>\n"
            '<invoke name=" spaced ">\n</invoke>\n</minimax:tool_call>')
    calls = parse_output(text).tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("single", {"k": "v"}), ("bare", {"k2": "v2"}), (" spaced ", {})]
    assert clean_name(' "x" ') == "x" and clean_name("'x\"") == "'x\""


@pytest.mark.parametrize("raw, expected", [
    ("\nvalue\n", "value"),
    ("  value  ", "value"),
    ("\n\nline 1\n  line 2\n\n", "line 1\n  line 2"),
    ("a > b", "a > b"),
    ("", ""),
])
def test_value_is_text_after_first_gt_stripped(raw, expected):
    assert parse_output(f'</think><minimax:tool_call><invoke name="f"><parameter name="p">{raw}</parameter>'
                        "</invoke></minimax:tool_call>").tool_calls[0].arguments == {"p": expected}


def test_parallel_calls_keep_order_across_blocks():
    text = ("</think>" + block(invoke("a", x="1"), invoke("b", x="2")) + "\nbetween\n" + block(invoke("c"))
            + "\nafter")
    out = parse_output(text)
    assert [c.name for c in out.tool_calls] == ["a", "b", "c"]
    assert out.content == ""  # only the text before the first block is content
    assert len({c.id for c in out.tool_calls}) == 3


def test_tool_without_parameters_gives_empty_dict():
    out = parse_output("</think>" + block(invoke("now")), tools_for({}, name="now"))
    assert out.tool_calls[0].arguments == {}
    assert out.tool_calls[0].arguments_json() == "{}"


def test_unclosed_block_is_not_a_tool_call():
    text = "r</think>\n\nCalling:\n<minimax:tool_call>\n" + invoke("f", a="1")
    out = parse_output(text)
    assert out.tool_calls == []
    assert out.content == text.split("</think>")[1].strip()  # its text stays content, as vLLM does


def test_unclosed_trailing_block_after_complete_one_is_dropped():
    out = parse_output("</think>hi\n" + block(invoke("a")) + "\n<minimax:tool_call>\n<invoke name=\"b\">")
    assert [c.name for c in out.tool_calls] == ["a"] and out.content == "hi"


def test_unclosed_invoke_and_parameter_are_ignored():
    text = ('</think><minimax:tool_call>\n<invoke name="a">\n<parameter name="ok">1</parameter>\n'
            '<parameter name="cut">2\n</invoke>\n<invoke name="b">\n</minimax:tool_call>')
    calls = parse_output(text).tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("a", {"ok": "1"})]


def test_empty_block_is_content():
    out = parse_output("</think>text <minimax:tool_call></minimax:tool_call>")
    assert out.tool_calls == [] and out.content == "text <minimax:tool_call></minimax:tool_call>"


def test_tool_call_inside_reasoning_ends_reasoning():
    text = "I will call it\n" + block(invoke("f", a="1")) + "[e~["
    out = parse_output(text)
    assert (out.reasoning, out.content) == ("I will call it", "")
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("f", {"a": "1"})]
    out = parse_output("think " + block(invoke("g")) + " more</think>\n\nanswer")
    assert out.reasoning == "think" and [c.name for c in out.tool_calls] == ["g"]


def test_unclosed_block_inside_reasoning_stays_reasoning():
    out = parse_output("thinking <minimax:tool_call>\n<invoke name=\"f\">")
    assert out.reasoning == 'thinking <minimax:tool_call>\n<invoke name="f">' and out.tool_calls == []


def test_tool_call_ids():
    calls = [parse_output("</think>" + block(invoke("f"))).tool_calls[0] for _ in range(20)]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", c.id) for c in calls)
    assert len({c.id for c in calls}) == 20
    assert ToolCall("f", {"k": "東京"}).arguments_json() == '{"k": "東京"}'


# --- schema typing ------------------------------------------------------------------------

@pytest.mark.parametrize("raw, schema, expected", [
    ("42", {"type": "integer"}, 42),
    ("-7", {"type": "integer"}, -7),
    ("4.5", {"type": "integer"}, "4.5"),
    ("4.5", {"type": "number"}, 4.5),
    ("3", {"type": "number"}, 3.0),
    ("3.0", {"type": ["integer", "number"]}, 3),
    ("1e3", {"type": "number"}, 1000.0),
    ("inf", {"type": "number"}, "inf"),
    ("nan", {"type": "number"}, "nan"),
    ("1_000", {"type": "integer"}, "1_000"),
    ("42", {"type": "string"}, "42"),
    ("007", {"type": "string"}, "007"),
    ("true", {"type": "boolean"}, True),
    ("False", {"type": "boolean"}, False),
    ("yes", {"type": "boolean"}, True),
    ("off", {"type": "boolean"}, False),
    ("1", {"type": "boolean"}, True),
    ("0", {"type": "boolean"}, False),
    ("maybe", {"type": "boolean"}, "maybe"),
    ("1", {"type": ["integer", "boolean"]}, 1),
    ("null", {"type": "string"}, None),
    ("NULL", {"type": ["integer", "null"]}, None),
    ("None", {"type": ["integer", "null"]}, "None"),
    ("nil", {"type": "string"}, "nil"),
    ('{"a": [1, "東京"]}', {"type": "object"}, {"a": [1, "東京"]}),
    ("[1, 2]", {"type": "array"}, [1, 2]),
    ("[1, 2]", {"type": "object"}, "[1, 2]"),
    ("{broken", {"type": "object"}, "{broken"),
    ("[1]", {"type": ["object", "array"]}, [1]),
    ("12", {"enum": [1, 2, 12]}, 12),
    ("b", {"enum": ["a", "b"]}, "b"),
    ("true", {"enum": [True, False]}, True),
    ("2.5", {"enum": [1.5, 2.5]}, 2.5),
    ("5", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, 5),
    ("[3]", {"oneOf": [{"type": "string"}, {"anyOf": [{"type": "array"}]}]}, [3]),
    ("7", {"allOf": [{"type": "number"}]}, 7.0),
    ("7", {"description": "no type at all"}, "7"),
    ("7", None, "7"),
    ("7", {"type": "Integer"}, 7),
    ("9" * 5000, {"type": "integer"}, "9" * 5000),
])
def test_convert_value(raw, schema, expected):
    got = convert_value(raw, schema)
    assert got == expected and type(got) is type(expected)
    if schema is not None:
        got = typed(raw, schema)
        assert got == expected and type(got) is type(expected)


def test_unknown_parameter_and_unknown_tool_are_strings():
    tools = tools_for({"n": {"type": "integer"}})
    out = parse_output("</think>" + block(invoke("f", n="1", other="2"), invoke("g", n="3")), tools)
    assert [c.arguments for c in out.tool_calls] == [{"n": 1, "other": "2"}, {"n": "3"}]
    assert parse_output("</think>" + block(invoke("f", n="1"))).tool_calls[0].arguments == {"n": "1"}


def test_tool_param_types_shapes():
    bare = {"name": "b", "parameters": {"properties": {"x": {"type": "integer"}}}}
    openai = tools_for({"y": {"type": "string"}}, name="o")[0]
    assert tool_param_types([bare, openai, {"type": "function", "function": {"name": "n"}}]) == {
        "b": {"x": {"type": "integer"}}, "o": {"y": {"type": "string"}}, "n": {}}
    assert tool_param_types(None) == {}


def test_partial_marker_len():
    assert partial_marker_len("hello <minimax:tool") == len("<minimax:tool")
    assert partial_marker_len("hello <") == 1
    assert partial_marker_len("hello") == 0
    assert partial_marker_len("x</thi", "</think>") == 5


# --- round trip ---------------------------------------------------------------------------

SCHEMA = {"s": {"type": "string"}, "i": {"type": "integer"}, "f": {"type": "number"}, "b": {"type": "boolean"},
          "l": {"type": "array"}, "d": {"type": "object"}, "n": {"type": ["integer", "null"]}}
TOOLS = tools_for(SCHEMA, name="probe") + tools_for({"q": {"type": "string"}}, name="search")


def assistant_part(message, reasoning=True):
    rendered = render_prompt([{"role": "user", "content": "go"}, message], TOOLS, add_generation_prompt=False)
    start = rendered.rindex("]~b]ai\n") + len("]~b]ai\n")
    part = rendered[start:]
    if reasoning:
        assert part.startswith("<think>\n")
        part = part[len("<think>\n"):]  # the generation prompt ends with <think>\n
    return part


def test_round_trip_fixed():
    args = {"s": "東京 42", "i": 3, "f": 2.5, "b": False, "l": [1, "x"], "d": {"k": {"z": None}}, "n": None}
    message = {"role": "assistant", "content": "Checking.", "reasoning_content": "plan",
               "tool_calls": [{"type": "function", "function": {"name": "probe", "arguments": json.dumps(args)}},
                              {"type": "function", "function": {"name": "search", "arguments": {"q": "007"}}}]}
    out = parse_output(assistant_part(message), TOOLS)
    assert GENERATION_PROMPT.endswith("<think>\n")
    assert (out.reasoning, out.content) == ("plan", "Checking.")
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("probe", args), ("search", {"q": "007"})]
    no_think = parse_output(assistant_part({**message, "reasoning_content": ""}, reasoning=False), TOOLS,
                            reasoning=False)
    assert no_think.content == "Checking." and [c.arguments for c in no_think.tool_calls][0] == args


_plain = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<>"), max_size=12)
# Limits of the format itself: values lose surrounding whitespace, "null" means None, and the
# end-of-message marker ends the text.
_str_value = _plain.map(str.strip).filter(lambda s: s.lower() != "null" and "[e~[" not in s)
_round_args = st.fixed_dictionaries({}, optional={
    "s": _str_value, "i": st.integers(), "f": st.floats(allow_nan=False, allow_infinity=False), "b": st.booleans(),
    "l": st.lists(st.one_of(st.integers(), _plain), max_size=3),
    "d": st.dictionaries(_plain, st.one_of(st.none(), st.booleans(), _plain), max_size=3),
    "n": st.one_of(st.none(), st.integers())})


@settings(max_examples=100, deadline=None)
@given(calls=st.lists(_round_args, min_size=1, max_size=3), content=_str_value, reasoning=_str_value)
def test_round_trip_random(calls, content, reasoning):
    message = {"role": "assistant", "content": content, "reasoning_content": reasoning,
               "tool_calls": [{"type": "function", "function": {"name": "probe", "arguments": a}} for a in calls]}
    out = parse_output(assistant_part(message, reasoning=bool(reasoning)), TOOLS, reasoning=bool(reasoning))
    assert out.content == content and out.reasoning == reasoning
    assert [c.arguments for c in out.tool_calls] == calls
