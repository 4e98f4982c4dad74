"""The bundled demo model holds a conversation through the official SDKs (issue 18 item 4), served by a real
server on 127.0.0.1: a second turn that refers to the first answer with the reasoning not sent back,
Anthropic `thinking: disabled`, an openai `.parse` json_schema answer that closes and validates, and the
OpenAI Agents SDK (Responses API, reasoning items not kept) running a tool loop to one final answer."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

from minimax2.assets import DEMO_MODEL
from server_support import ServerThread

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="no bundled demo model")


@pytest.fixture(scope="module")
def demo_server():
    from minimax2 import LLM
    from minimax2.server.app import create_app
    from minimax2.server.backends import LocalBackend
    from minimax2.server.service import ServerConfig

    llm = LLM("demo", max_num_seqs=4)
    with ServerThread(create_app(LocalBackend(llm), ServerConfig(served_model_name="demo"))) as s:
        yield s


@pytest.fixture(scope="module")
def oai(demo_server):
    return openai.OpenAI(base_url=demo_server.url + "/v1", api_key="none", max_retries=0)


def test_second_turn_builds_on_the_first_answer_without_its_reasoning(oai):
    history = [{"role": "user", "content": "What is 17 + 25?"}]
    first = oai.chat.completions.create(model="demo", messages=history, temperature=0, max_tokens=300)
    assert "42" in first.choices[0].message.content
    history += [{"role": "assistant", "content": first.choices[0].message.content},  # reasoning not sent back
                {"role": "user", "content": "Add 8 to that."}]
    second = oai.chat.completions.create(model="demo", messages=history, temperature=0, max_tokens=300)
    msg = second.choices[0].message
    assert second.choices[0].finish_reason == "stop" and "50" in msg.content, msg
    assert msg.content.count("=") == 1  # one answer, not the first one repeated


def test_thinking_disabled_answers_directly(demo_server):
    client = anthropic.Anthropic(base_url=demo_server.url, api_key="none", max_retries=0)
    reply = client.messages.create(model="demo", max_tokens=300, thinking={"type": "disabled"},
                                   messages=[{"role": "user", "content": "What is 17 + 25?"}])
    assert [b.type for b in reply.content] == ["text"] and reply.stop_reason == "end_turn"
    assert "42" in reply.content[0].text and "</think>" not in reply.content[0].text


class Result(BaseModel):
    result: int


def test_json_schema_answer_closes_and_parses(oai):
    ask = "What is 17 + 25? Answer as a JSON object with the fields result (integer)."
    done = oai.chat.completions.parse(model="demo", messages=[{"role": "user", "content": ask}],
                                      response_format=Result, temperature=0)
    assert done.choices[0].finish_reason == "stop"
    assert done.choices[0].message.parsed == Result(result=42)


def test_agents_sdk_tool_loop_gives_one_answer(demo_server):
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    agents.set_default_openai_client(
        openai.AsyncOpenAI(base_url=demo_server.url + "/v1", api_key="none", max_retries=0), use_for_tracing=False)
    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city"""
        asked.append(city)
        return json.dumps({"temperature": 21})

    agent = agents.Agent(name="demo", instructions="", model="demo", tools=[get_weather],
                         model_settings=agents.ModelSettings(temperature=0))
    result = asyncio.run(agents.Runner.run(agent, "What is the weather in Paris?"))
    assert asked == ["Paris"]
    assert result.final_output.count("21") == 1 and "Paris" in result.final_output, result.final_output
