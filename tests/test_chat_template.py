"""Conformance of the native M2 renderer with the official Jinja chat template, and the Jinja
environment that renders checkpoint templates the way transformers does."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from minimax2.chat import (
    ChatTemplateError,
    load_chat_template,
    normalize_messages,
    render_chat_template,
    render_prompt,
)
from minimax2.chat.template import compile_chat_template

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "minimax_m2_chat_template.jinja"


@pytest.fixture(scope="module")
def official() -> str:
    if not FIXTURE.is_file():
        pytest.skip(f"official template fixture not found at {FIXTURE}")
    return FIXTURE.read_text(encoding="utf-8")


WEATHER = {"type": "function", "function": {
    "name": "get_weather",
    "description": "Current température for a city, e.g. 東京 or Zürich",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "城市 / ville"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "options": {"type": "object", "properties": {
            "days": {"type": ["integer", "null"]},
            "fields": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}}}},
    }, "required": ["city"]},
}}
CLOCK = {"type": "function", "function": {"name": "now", "description": "Current time", "parameters": {}}}
TOOLS = [WEATHER, CLOCK]

U = {"role": "user", "content": "What is the weather in 東京?"}
U2 = {"role": "user", "content": "And tomorrow?"}


def call(name, arguments, call_id="call_0"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


ARGS = {"city": "東京", "days": 3, "ratio": 0.5, "metric": True, "tags": ["a", "ü"], "opts": {"x": None}}
CALL_DICT = {"role": "assistant", "content": "", "tool_calls": [call("get_weather", ARGS)]}
CALL_JSON = {"role": "assistant", "content": None, "tool_calls": [call("get_weather", json.dumps(ARGS))]}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call_0", "content": '{"temp": 21, "sky": "晴れ"}'}

CASES = {
    "no_system": ([U], None, {}),
    "system_text": ([{"role": "system", "content": "Be brief."}, U], None, {}),
    "system_parts": (
        [{"role": "system", "content": [{"type": "text", "text": "Be "}, "brief", {"type": "image"},
                                        {"type": "text", "text": "."}]}, U], None, {}),
    "system_date_location": (
        [{"role": "system", "content": "Sys", "current_date": "2025-10-27", "current_location": "Paris"}, U],
        None, {}),
    "system_empty_with_date": ([{"role": "system", "content": "", "current_date": "2025-10-27"}, U], None, {}),
    "system_empty": ([{"role": "system", "content": ""}, U], None, {}),
    "system_none_content": ([{"role": "system", "content": None}, U], None, {}),
    "model_identity": ([U], None, {"model_identity": "You are MiniMax-M2."}),
    "model_identity_ignored_with_system": (
        [{"role": "system", "content": "Sys"}, U], None, {"model_identity": "ignored"}),
    "empty_conversation": ([], None, {}),
    "tools_nested_non_ascii": ([U], TOOLS, {}),
    "tools_with_system": ([{"role": "system", "content": "Sys"}, U], [WEATHER], {}),
    "empty_tools_list": ([U], [], {}),
    "multi_turn_plain": ([U, {"role": "assistant", "content": "Sunny."}, U2], None, {}),
    "reasoning_content_before_last_user": (
        [U, {"role": "assistant", "content": "Sunny.", "reasoning_content": "look it up"}, U2], None, {}),
    "reasoning_content_after_last_user": (
        [U, {"role": "assistant", "content": "Sunny.", "reasoning_content": "look it up"}], None, {}),
    "think_in_content_after_last_user": (
        [U, {"role": "assistant", "content": "<think>\nhm, 東京\n</think>\n\nSunny."}], None, {}),
    "think_in_content_before_last_user": (
        [U, {"role": "assistant", "content": "<think>hm</think>Sunny."}, U2], None, {}),
    "think_close_only_in_content": ([U, {"role": "assistant", "content": "pondering\n</think>\n\nDone"}], None, {}),
    "reasoning_content_keeps_think_in_content": (
        [U, {"role": "assistant", "content": "<think>a</think>b", "reasoning_content": "r"}], None, {}),
    "empty_reasoning_content": ([U, {"role": "assistant", "content": "x", "reasoning_content": ""}], None, {}),
    "reasoning_alias": ([U, {"role": "assistant", "content": "x", "reasoning": "via reasoning"}], None, {}),
    "reasoning_details_alias": (
        [U, {"role": "assistant", "content": "x",
             "reasoning_details": [{"type": "reasoning.text", "text": "part 1, "}, {"text": "part 2"}]}], None, {}),
    "tool_call_dict_args": ([U, CALL_DICT, TOOL_RESULT], TOOLS, {}),
    "tool_call_json_args": ([U, CALL_JSON, TOOL_RESULT], TOOLS, {}),
    "tool_call_with_reasoning_and_content": (
        [U, {"role": "assistant", "content": "Let me check.", "reasoning_content": "need the tool",
             "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"})]}, TOOL_RESULT,
         {"role": "assistant", "content": "It is 21°C.", "reasoning_content": "done"}], TOOLS, {}),
    "tool_call_no_args": ([U, {"role": "assistant", "tool_calls": [call("now", "{}")]},
                           {"role": "tool", "content": "12:00"}], TOOLS, {}),
    "tool_call_string_number_and_multiline": (
        [U, {"role": "assistant", "content": "",
             "tool_calls": [call("get_weather", {"city": "42", "note": "line 1\nline 2", "n": -7, "f": 1e-9})]}],
        TOOLS, {}),
    "parallel_calls_grouped_results": (
        [U, {"role": "assistant", "content": None, "reasoning_content": "two cities",
             "tool_calls": [call("get_weather", {"city": "Paris"}, "c1"), call("get_weather", '{"city": "Rome"}', "c2"),
                            call("now", {}, "c3")]},
         {"role": "tool", "tool_call_id": "c1", "content": "18"},
         {"role": "tool", "tool_call_id": "c2", "content": "25"},
         {"role": "tool", "tool_call_id": "c3", "content": "noon"}], TOOLS, {}),
    "tool_content_text_parts": (
        [U, CALL_DICT, {"role": "tool", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
        TOOLS, {}),
    "tool_content_output_parts": (
        [U, CALL_DICT, {"role": "tool", "content": [{"type": "tool_result", "output": "out"}, "bare",
                                                     {"type": "image", "url": "x"}]}], TOOLS, {}),
    "tool_none_content": ([U, CALL_JSON, {"role": "tool", "content": None}], TOOLS, {}),
    "tool_missing_content": ([U, CALL_JSON, {"role": "tool", "tool_call_id": "call_0"}], TOOLS, {}),
    "user_content_parts": (
        [{"role": "user", "content": [{"type": "text", "text": "Look: "}, {"type": "image_url", "image_url": {}},
                                      {"type": "text", "text": "what is it?"}]}], None, {}),
    "assistant_content_parts": (
        [U, {"role": "assistant", "content": [{"type": "text", "text": "<think>r</think>"},
                                              {"type": "text", "text": "answer"}]}], None, {}),
    "later_system_ignored": ([U, {"role": "system", "content": "ignored"}, {"role": "assistant", "content": "ok"}],
                             None, {}),
    "system_between_tool_results": (
        [U, CALL_DICT, TOOL_RESULT, {"role": "system", "content": "x"}, TOOL_RESULT], TOOLS, {}),
    "agent_loop_interleaved": (
        [{"role": "system", "content": "Agent"}, U,
         {"role": "assistant", "content": "", "reasoning_content": "step 1", "tool_calls": [call("now", {})]},
         {"role": "tool", "content": "noon"},
         {"role": "assistant", "content": "", "reasoning_content": "step 2",
          "tool_calls": [call("get_weather", {"city": "東京", "options": {"days": 2, "fields": ["t"]}})]},
         TOOL_RESULT, {"role": "assistant", "content": "Done", "reasoning_content": "step 3"}, U2], TOOLS, {}),
    "unknown_role_skipped": ([{"role": "developer", "content": "dev"}, U], None, {}),
    "trailing_assistant_no_gen": ([U, {"role": "assistant", "content": "partial"}], None, {}),
    "whitespace_and_markup_in_content": ([{"role": "user", "content": "  a <b>&amp;</b>\n\n"}], None, {}),
}


@pytest.mark.parametrize("add_generation_prompt", [True, False], ids=["gen", "nogen"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_native_matches_official_template(official, name, add_generation_prompt):
    messages, tools, kwargs = CASES[name]
    before = copy.deepcopy(messages)
    expected = render_chat_template(official, messages, tools, add_generation_prompt=add_generation_prompt, **kwargs)
    got = render_prompt(messages, tools, add_generation_prompt=add_generation_prompt, **kwargs)
    assert got == expected
    assert messages == before, "rendering must not mutate the caller's messages"


def test_rendered_shape_spot_checks():
    assert len(CASES) >= 30
    text = render_prompt(CASES["tool_call_json_args"][0], TOOLS)
    assert text.startswith("]~!b[]~b]system\nYou are a helpful assistant.\n\n# Tools\n")
    assert '<parameter name="city">東京</parameter>\n<parameter name="days">3</parameter>\n' in text
    assert '<parameter name="tags">["a", "ü"]</parameter>' in text
    assert '<parameter name="opts">{"x": null}</parameter>' in text
    assert "]~b]tool\n<response>" in text and "None" not in text
    assert text.endswith("[e~[\n]~b]ai\n<think>\n")
    assert "look it up" not in render_prompt(CASES["reasoning_content_before_last_user"][0])
    after = render_prompt(CASES["reasoning_content_after_last_user"][0])
    assert "]~b]ai\n<think>\nlook it up\n</think>\n\nSunny.[e~[\n" in after


def test_none_content_quirk_needs_normalisation(official):
    messages = [U, {"role": "assistant", "content": None, "tool_calls": [call("now", {})]}]
    raw = compile_chat_template(official).render(messages=messages, tools=None, add_generation_prompt=False)
    assert "]~b]ai\nNone\n<minimax:tool_call>" in raw
    assert "None" not in render_chat_template(official, messages)
    assert "None" not in render_prompt(messages)


def test_tool_message_without_tool_call_fails_in_both_paths(official):
    assert issubclass(ChatTemplateError, ValueError)  # callers can treat it as a bad request
    messages = [U, {"role": "assistant", "content": "hi"}, {"role": "tool", "content": "x"}]
    with pytest.raises(ChatTemplateError, match="no previous assistant message with a tool call"):
        render_chat_template(official, messages)
    with pytest.raises(ChatTemplateError, match=r"messages\[2\].*no previous assistant message with a tool call"):
        render_prompt(messages)


def test_invalid_json_arguments_name_the_message(official):
    messages = [U, {"role": "assistant", "content": None, "tool_calls": [call("get_weather", '{"city": ')]}]
    for render in (render_prompt, lambda msgs: render_chat_template(official, msgs)):
        with pytest.raises(ValueError, match=r"messages\[1\].*'get_weather'.*not valid JSON"):
            render(messages)
    with pytest.raises(ValueError, match=r"messages\[1\].*must be a JSON object"):
        normalize_messages([U, {"role": "assistant", "tool_calls": [call("f", "[1, 2]")]}])


def test_normalize_messages_rules():
    messages = [
        {"role": "assistant", "content": None, "reasoning": "r1", "tool_calls": [call("f", '{"a": 1}')]},
        {"role": "assistant", "content": "x", "reasoning_details": [{"text": "a"}, {"text": "b"}, {"sig": 1}]},
        {"role": "assistant", "content": "y", "reasoning_content": "kept", "reasoning": "dropped?"},
        {"role": "user", "content": None},
    ]
    before = copy.deepcopy(messages)
    out = normalize_messages(messages)
    assert messages == before
    assert out[0]["content"] == "" and out[0]["reasoning_content"] == "r1"
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert out[1]["reasoning_content"] == "ab"
    assert out[2]["reasoning_content"] == "kept"
    assert out[3]["content"] == ""


def test_tojson_filter_keeps_order_and_non_ascii():
    data = {"z": 1, "a": "東京", "m": [1, {"é": True}]}
    assert render_chat_template("{{ x | tojson }}", [], x=data) == '{"z": 1, "a": "東京", "m": [1, {"é": true}]}'
    assert render_chat_template("{{ x | tojson(ensure_ascii=True) }}", [], x={"a": "é"}) == '{"a": "\\u00e9"}'
    assert render_chat_template("{{ x | tojson(sort_keys=True) }}", [], x={"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert render_chat_template("{{ x | tojson(indent=2) }}", [], x={"a": 1}) == '{\n  "a": 1\n}'
    assert render_chat_template("{{ x | tojson(separators=(',', ':')) }}", [], x={"a": [1, 2]}) == '{"a":[1,2]}'
    assert render_chat_template("{{ x | tojson }}", [], x="<&>") == '"<&>"'  # no HTML escaping


def test_environment_features():
    loop = "{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    assert render_chat_template(loop, []) == "012"
    assert render_chat_template("{% if true %}\n  a\n{% endif %}\nb", []) == "  a\nb"  # trim/lstrip blocks
    assert render_chat_template("{% generation %}gen{% endgeneration %}", []) == "gen"
    with pytest.raises(ChatTemplateError, match="custom failure"):
        render_chat_template("{{ raise_exception('custom failure') }}", [])
    with pytest.raises(SecurityError, match="unsafe"):
        render_chat_template("{{ messages.append(1) }}", [])
    with pytest.raises(ChatTemplateError, match="syntax error"):
        render_chat_template("{% if %}", [])
    template = "{{ messages | length }} unique-template-for-cache-test"
    first = compile_chat_template(template)
    assert compile_chat_template(template) is first
    assert render_chat_template(template, [U]) == "1 unique-template-for-cache-test"


def test_load_chat_template(tmp_path):
    assert load_chat_template(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "from config"}))
    assert load_chat_template(tmp_path) == "from config"
    named = [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "dflt"}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": named}))
    assert load_chat_template(str(tmp_path)) == "dflt"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": named[:1]}))
    with pytest.raises(ValueError, match="no 'default'"):
        load_chat_template(tmp_path)
    (tmp_path / "chat_template.jinja").write_text("from jinja file", encoding="utf-8")
    assert load_chat_template(tmp_path) == "from jinja file"


def test_matches_transformers_renderer(official):
    chat_utils = pytest.importorskip("transformers.utils.chat_template_utils")
    for name in ("tool_call_dict_args", "parallel_calls_grouped_results", "system_date_location",
                 "tool_content_output_parts", "agent_loop_interleaved"):
        messages, tools, kwargs = CASES[name]
        messages = normalize_messages(messages)
        (expected,), _ = chat_utils.render_jinja_template(
            conversations=[messages], tools=tools, chat_template=official, add_generation_prompt=True, **kwargs)
        assert render_chat_template(official, messages, tools, **kwargs) == expected, name


# --- property test: random conversations render identically on both paths ---
_bits = ["a", "東京", " ", "\n", "<think>", "</think>", "é", "{", "None"]
_text = st.lists(st.sampled_from(_bits), max_size=6).map("".join)
_part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": _text}), _text, st.just({"type": "image"}))
_content = st.one_of(_text, st.none(), st.lists(_part, max_size=3))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _text)
_json = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(_text, inner, max_size=3)), max_leaves=6)
_args = st.dictionaries(st.sampled_from(["city", "n", "opts", "ü"]), _json, max_size=3)
_call = st.builds(call, st.sampled_from(["get_weather", "now"]), st.one_of(_args, _args.map(json.dumps)))
_tool_content = st.one_of(_text, st.none(), st.lists(st.one_of(_part, st.fixed_dictionaries({"output": _text})),
                                                     max_size=2))
_message = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": _content}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": _content}, optional={
        "reasoning_content": st.one_of(_text, st.none()), "tool_calls": st.lists(_call, max_size=3)}),
    st.fixed_dictionaries({"role": st.just("tool"), "content": _tool_content}),
    st.fixed_dictionaries({"role": st.just("system"), "content": _content},
                          optional={"current_date": _text, "current_location": _text}))


def _outcome(render):
    try:
        return render()
    except ChatTemplateError as exc:
        return ("error", type(exc).__name__)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message, max_size=7), tools=st.sampled_from([None, [], TOOLS]),
       add_generation_prompt=st.booleans())
def test_random_conversations_match(official, messages, tools, add_generation_prompt):
    expected = _outcome(lambda: render_chat_template(official, messages, tools, add_generation_prompt))
    assert _outcome(lambda: render_prompt(messages, tools, add_generation_prompt)) == expected
