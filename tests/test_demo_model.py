"""The bundled demo checkpoint (minimax2/assets/demo): size, labelling, and its behaviour on held-out
prompts, greedy, against the acceptance thresholds of issue 5 (arithmetic, tool calls, answers) and
issue 18 (follow-up turns, history without reasoning, thinking disabled, JSON answers).

The full evaluation (200 prompts per family, batched through `LLM.generate`) takes about two minutes
on our 2-core CPU, so it is part of the default run. Families the current checkpoint does not reach are strict xfails: they document
the gap, and turn into failures (XPASS) once a retrained model reaches them, so the marks get removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minimax2.train.evaluate import FAMILIES as BUNDLED_FAMILIES  # every scored family (recipe demo-chat)
from minimax2.train.evaluate import THRESHOLDS, evaluate

DEMO = Path(__file__).resolve().parents[1] / "minimax2" / "assets" / "demo"
pytestmark = pytest.mark.skipif(not (DEMO / "config.json").exists(), reason="demo checkpoint not built yet")

BELOW_TARGET: set[str] = set()  # every family meets its issue-5 threshold
FAMILIES = [pytest.param(f, marks=pytest.mark.xfail(strict=True, reason="demo model below target, see MODEL_CARD.md"))
            if f in BELOW_TARGET else f for f in (*BUNDLED_FAMILIES, "format")]


@pytest.fixture(scope="module")
def llm():
    import torch

    from minimax2 import LLM

    torch.set_num_threads(2)
    return LLM(DEMO, dtype="float32")


@pytest.fixture(scope="module")
def full(llm):
    return evaluate(DEMO, n=200, llm=llm, families=BUNDLED_FAMILIES)


def test_bundle_is_small_and_labelled():
    size = sum(f.stat().st_size for f in DEMO.iterdir() if f.is_file())
    assert size <= 25 * 2**20
    card = (DEMO / "MODEL_CARD.md").read_text()
    assert "M2 architecture and format, trained here on synthetic data, not MiniMax's weights" in card
    assert "## Held-out scores" in card


@pytest.mark.parametrize("family", FAMILIES)
def test_heldout_full_200_per_family(full, family):
    assert full[family]["n"] >= 200 and full[family]["score"] >= THRESHOLDS[family], full[family]


def test_chat_gives_a_well_formed_reply(llm):
    from minimax2 import SamplingParams

    reply = llm.chat([{"role": "user", "content": "Who are you?"}], sampling_params=SamplingParams(max_tokens=200, temperature=0))
    assert reply.finish_reason == "stop" and reply.reasoning and "minimax2-demo" in reply.content


def test_chat_returns_a_typed_tool_call(llm):  # Vienna and 11 are held-out values
    from minimax2 import SamplingParams

    tools = [{"type": "function", "function": {
        "name": "get_forecast", "description": "Get the weather forecast for the next days",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                        "days": {"type": "integer", "description": "Number of days"}},
                       "required": ["city", "days"]}}}]
    reply = llm.chat([{"role": "user", "content": "Give me the 11 day forecast for Vienna."}], tools=tools,
                     sampling_params=SamplingParams(max_tokens=200, temperature=0))
    assert reply.finish_reason == "stop" and reply.reasoning
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("get_forecast", {"city": "Vienna", "days": 11})]
