"""`bench serve` against the scripted OpenAI-compatible endpoint."""
import json

import pytest

from minimax2 import cli
from minimax2.eval import loadgen
from eval_support.fake_m2 import FIRST_DELAY, OUTPUT_TOKENS, FakeM2
from eval_support.scripts import CHAT


def test_bench_serve_poisson_with_concurrency_cap(tmp_path, capsys):
    out = tmp_path / "bench.json"
    with FakeM2(CHAT) as fake:
        code = cli.main(["bench", "serve", "--base-url", fake.base_url + "/v1", "--model", "m",
                         "--num-prompts", "12", "--request-rate", "100", "--max-concurrency", "3",
                         "--input-len", "32", "--slo-ttft-ms", "5000", "--slo-e2e-ms", "1",
                         "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["completed"] == 12 and data["failed"] == 0
    assert data["output_tokens"] == 12 * OUTPUT_TOKENS  # from usage, not chunk counts
    assert data["ttft_ms"]["p50"] >= FIRST_DELAY * 1000 * 0.9
    assert data["ttft_visible_ms"]["p50"] > data["ttft_ms"]["p50"]
    for r in data["requests"]:
        assert r["tpot"] == pytest.approx((r["e2e"] - r["ttft"]) / (OUTPUT_TOKENS - 1))
        assert r["itl"] and all(g >= 0 for g in r["itl"])
    assert data["request_throughput"] == pytest.approx(12 / data["duration_s"])
    assert data["goodput"] == 0.0  # nobody meets a 1 ms E2E SLO
    assert "ttft_ms" in capsys.readouterr().out


def test_failed_requests_are_counted(tmp_path):
    done, duration = __import__("asyncio").run(loadgen.run_load(
        "http://127.0.0.1:9/v1", "m", ["hi"] * 2, 8, float("inf"), None, {}, "none", 0))
    data = loadgen.summarise(done, duration, {})
    assert data["completed"] == 0 and data["failed"] == 2 and data["errors"]


def test_prompts_from_file_and_random(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "one"}\n{"prompt": "two"}\n')
    assert loadgen.make_prompts(3, 10, f, 0) == ["one", "two", "one"]
    rand = loadgen.make_prompts(2, 100, None, 0)
    assert len(rand) == 2 and len(rand[0].split()) == 75
