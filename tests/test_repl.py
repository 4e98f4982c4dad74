"""`minimax2 chat` end to end through a pipe: the real command on the bundled demo model reading stdin,
held against `LLM.chat` on the same conversation (greedy). The whole answer is shown (the tail that might
have begun a marker is flushed at the end), one line break separates reasoning and answer, and a turn that
calls tools is reported as `tool_calls`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minimax2.assets import DEMO_MODEL

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="no bundled demo model")
MAX_TOKENS = 300
SCRIPT = Path(sys.executable).with_name("minimax2")  # the installed command; `python -m minimax2.cli` where absent
MINIMAX2 = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "minimax2.cli"]
TOOLS = [{"type": "function", "function": {
    "name": "get_forecast", "description": "Get the weather forecast for the next days",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                    "days": {"type": "integer", "description": "Number of days"}},
                   "required": ["city", "days"]}}}]


@pytest.fixture(scope="module")
def llm():
    from minimax2 import LLM

    return LLM(DEMO_MODEL)


def _greedy():
    from minimax2 import SamplingParams

    return SamplingParams(max_tokens=MAX_TOKENS, temperature=0)


def chat_through_a_pipe(lines: list[str], *args: str) -> str:
    env = {**os.environ, "MINIMAX2_LOG_LEVEL": "WARNING", "COLUMNS": "60"}  # narrow: long lines must not be wrapped
    out = subprocess.run([*MINIMAX2, "chat", "--temperature", "0", "--max-tokens", str(MAX_TOKENS), *args],
                         input="".join(line + "\n" for line in lines), env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _shown(reply) -> str:
    """What the REPL must print for a reply: reasoning, one line break, the answer, then the token line."""
    body = "\n".join(part for part in (reply.reasoning.strip(), reply.content.strip()) if part)
    reason = "tool_calls" if reply.tool_calls else reply.finish_reason
    return f"ai> {body}\n", f"({reply.prompt_tokens} prompt + {reply.completion_tokens} generated tokens, {reason})"


def test_an_answer_is_shown_whole(llm):
    question = "What is 17 + 25?"
    reply = llm.chat([{"role": "user", "content": question}], sampling_params=_greedy())
    assert reply.finish_reason == "stop" and reply.content.strip() and not reply.tool_calls
    stdout = chat_through_a_pipe([question])
    body, tokens = _shown(reply)
    assert body in stdout and tokens in stdout, stdout
    assert stdout.count(reply.content.strip()) >= 1 and "\n\n\n" not in stdout


def test_a_tool_call_turn_says_tool_calls_and_the_answer_after_it_is_whole(llm, tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    question, result = "Give me the 11 day forecast for Vienna.", '{"forecast": "sunny, 24 C"}'
    history = [{"role": "user", "content": question}]
    first = llm.chat(history, tools=TOOLS, sampling_params=_greedy())
    assert [c.name for c in first.tool_calls] == ["get_forecast"]
    history += [{"role": "assistant", "content": first.content, "reasoning_content": first.reasoning,
                 "tool_calls": [{"id": c.id, "type": "function", "function": {
                     "name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                     for c in first.tool_calls]},
                {"role": "tool", "content": result}]
    second = llm.chat(history, tools=TOOLS, sampling_params=_greedy())
    assert second.content.strip() and not second.tool_calls

    stdout = chat_through_a_pipe([question, f"/tool {result}"], "--tools", str(tools))
    call_turn, answer_turn = stdout.split("tool call: get_forecast", 1)
    assert _shown(first)[1] in answer_turn and '"city": "Vienna"' in answer_turn
    assert first.reasoning.strip() in call_turn and "<minimax:tool_call>" not in stdout
    for part in _shown(second):
        assert part in answer_turn, stdout
    assert "\n\n\n" not in stdout


def test_a_reply_cut_by_max_tokens_is_shown_up_to_the_cut(llm):
    question = "Who are you?"
    from minimax2 import SamplingParams

    reply = llm.chat([{"role": "user", "content": question}], sampling_params=SamplingParams(max_tokens=12, temperature=0))
    assert reply.finish_reason == "length"
    env = {**os.environ, "MINIMAX2_LOG_LEVEL": "WARNING"}
    out = subprocess.run([*MINIMAX2, "chat", "--temperature", "0", "--max-tokens", "12"],
                         input=question + "\n", env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "</think>" not in reply.text  # cut inside the reasoning, where the old view held back 7 characters
    text = reply.text.strip()
    assert f"ai> {text}\n" in out.stdout and "generated tokens, length)" in out.stdout, out.stdout

