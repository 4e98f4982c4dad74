"""The agent loop, clients, metrics and cost arithmetic against a scripted M2 endpoint on 127.0.0.1
speaking both protocols (the endpoint stands in for the model; the harness is the real one)."""
import json

import pytest

from minimax2.eval import build, endpoints, records, results, runner
from eval_support.fake_m2 import FIRST_DELAY, OUTPUT_TOKENS, FakeM2
from eval_support.scripts import SMOKE_ADD, SMOKE_ADD_REASONING

PRICES = endpoints.load_prices()["minimax-m2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    task = records.load_tasks(select=["smoke-add"])[0]
    assert build.build_task(task, root)["status"] == "valid"
    return root


def _endpoint(fake, protocol):
    base = fake.base_url + ("/v1" if protocol == "openai" else "")
    return {"name": f"fake-{protocol}", "protocol": protocol, "base_url": base, "model": "MiniMax-M2",
            "api_key": "test", "sampling": {**endpoints.M2_SAMPLING, "max_tokens": 1024},
            "prices": {"name": "minimax-m2", **PRICES}}


def _run(tmp_path, cache, protocol, strip=False, mode="fields"):
    with FakeM2(SMOKE_ADD, mode) as fake:
        cfg = runner.RunConfig(run_id=f"{protocol}-{strip}-{mode}", out_dir=tmp_path, cache=cache,
                               endpoint=_endpoint(fake, protocol), strip_thinking=strip)
        run_dir = runner.run(records.load_tasks(select=["smoke-add"]), cfg)
        return run_dir, fake.state.requests


def _assistant_messages(request):
    return [m for m in request["messages"] if m["role"] == "assistant"]


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_agent_solves_smoke_task_and_keeps_reasoning(tmp_path, cache, protocol):
    run_dir, requests = _run(tmp_path, cache, protocol)
    [record] = results.load_records(run_dir)
    assert record["status"] == "resolved", record.get("grade_reason")
    assert record["steps"] == 4 and record["format_errors"] == 1
    assert record["stop_reason"] == "submitted"
    assert "+    return a + b" in record["patch"]
    assert len(requests) == 4
    # every earlier assistant turn comes back with its reasoning, exactly as streamed
    last = _assistant_messages(requests[-1])
    assert len(last) == 3
    for message, reasoning in zip(last, SMOKE_ADD_REASONING):
        if protocol == "openai":
            assert message["reasoning_content"] == reasoning and message["reasoning"] == reasoning
        else:
            assert message["content"][0]["type"] == "thinking"
            assert message["content"][0]["thinking"] == reasoning
            assert message["content"][0]["signature"].startswith("sig")
    # format-error feedback follows the turn without a tool call
    feedback = requests[-1]["messages"][-1]
    assert feedback["role"] == "user" and "no tool call" in feedback["content"]
    # sampling profile sent
    assert requests[0]["top_k"] == 40 and requests[0]["top_p"] == 0.95
    assert requests[0]["temperature"] == 1.0


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_strip_thinking_removes_reasoning_from_history(tmp_path, cache, protocol):
    run_dir, requests = _run(tmp_path, cache, protocol, strip=True)
    [record] = results.load_records(run_dir)
    assert record["status"] == "resolved"
    for message in _assistant_messages(requests[-1]):
        assert "reasoning_content" not in message and "reasoning" not in message
        if protocol == "anthropic":
            assert all(block["type"] != "thinking" for block in message["content"])
    # the trajectory still records the reasoning as received
    lines = [json.loads(x) for x in (run_dir / "trajectories" / "smoke-add.jsonl").read_text().splitlines()]
    turns = [x for x in lines if x["type"] == "assistant"]
    assert len(turns) == 4
    if protocol == "openai":
        assert turns[0]["message"]["reasoning_content"] == SMOKE_ADD_REASONING[0]


def test_metrics_tokens_and_cost(tmp_path, cache):
    run_dir, _ = _run(tmp_path, cache, "openai")
    [record] = results.load_records(run_dir)
    prompts = [1000 + 100 * t for t in range(4)]
    cached = [0, 800, 800, 800]
    assert record["tokens"]["input"] == sum(prompts)
    assert record["tokens"]["cached"] == sum(cached)
    assert record["tokens"]["output"] == 4 * OUTPUT_TOKENS
    fresh = sum(prompts) - sum(cached)
    expected = (fresh * 0.30 + sum(cached) * 0.03 + 4 * OUTPUT_TOKENS * 1.20) / 1e6
    assert record["cost_usd"] == pytest.approx(expected)
    for call in record["calls"]:
        assert call["ttft_any"] >= FIRST_DELAY * 0.9
        assert call["ttft_visible"] >= call["ttft_any"]
        assert call["decode_tps"] == pytest.approx((OUTPUT_TOKENS - 1) / (call["e2e"] - call["ttft_any"]))
    t = record["time"]
    assert t["model"] > 0 and t["tool"] > 0 and t["grading"] > 0
    assert t["total"] == pytest.approx(t["model"] + t["tool"] + t["grading"] + t["overhead"], abs=1e-3)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resolved"]["rate"] == 1.0
    assert summary["cost_usd"]["per_resolved"] == pytest.approx(expected)
    assert summary["sampling"]["top_k"] == 40
    assert summary["latency"]["ttft_any"]["n"] == 4
    html = (run_dir / "report.html").read_text()
    assert "<svg" in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")


def test_anthropic_usage_normalised_like_openai(tmp_path, cache):
    run_dir, _ = _run(tmp_path, cache, "anthropic")
    [record] = results.load_records(run_dir)
    assert record["tokens"]["input"] == sum(1000 + 100 * t for t in range(4))
    assert record["tokens"]["cached"] == 2400


@pytest.mark.parametrize("strip", [False, True])
def test_reasoning_details_and_think_in_content(tmp_path, cache, strip):
    for mode in ("details", "content"):
        run_dir, requests = _run(tmp_path, cache, "openai", strip=strip, mode=mode)
        assert results.load_records(run_dir)[0]["status"] == "resolved"
        for message, reasoning in zip(_assistant_messages(requests[-1]), SMOKE_ADD_REASONING):
            if mode == "details":
                kept = [d["text"] for d in message.get("reasoning_details", [])]
                assert kept == ([] if strip else [reasoning])
            else:
                assert (f"<think>\n{reasoning}\n</think>" in (message["content"] or "")) is not strip


def test_step_limit_and_unreachable_endpoint(tmp_path, cache):
    with FakeM2(SMOKE_ADD[:1]) as fake:  # keeps asking for `cat calc.py`, never submits
        cfg = runner.RunConfig(run_id="steps", out_dir=tmp_path, cache=cache,
                               endpoint=_endpoint(fake, "openai"), limits={"steps": 2, "wall_s": 60, "cost_usd": 1})
        [record] = results.load_records(runner.run(records.load_tasks(select=["smoke-add"]), cfg))
    assert record["stop_reason"] == "step_limit" and record["steps"] == 2
    assert record["status"] == "unresolved"
    with FakeM2(SMOKE_ADD) as fake:
        endpoint = _endpoint(fake, "anthropic")
    endpoint.update(base_url=fake.base_url, max_retries=0)  # the server is gone now
    cfg = runner.RunConfig(run_id="down", out_dir=tmp_path, cache=cache, endpoint=endpoint)
    [record] = results.load_records(runner.run(records.load_tasks(select=["smoke-add"]), cfg))
    assert record["stop_reason"] == "agent_error" and record["status"] == "agent_error"
