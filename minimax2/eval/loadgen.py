"""`minimax2 bench serve`: a serving load benchmark against any OpenAI-compatible server.

Requests arrive as a Poisson process (`--request-rate`, default: all at once) and/or under a
concurrency cap (`--max-concurrency`); every request streams. Per request: TTFT (first delta of any
kind, reasoning included) and TTFT of the first visible token, ITL (every gap between streamed
deltas), TPOT = (E2E - TTFT) / (output tokens - 1), E2E. Token counts come from the server's usage
report. Totals: request / output-token / total-token throughput and goodput (requests per second
that meet every given SLO). Metric definitions follow `vllm bench serve`."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import stats

WORDS = ("time year people way day man thing woman life child world school state family student "
         "group country problem hand part place case week company system program question work "
         "government number night point home water room mother area money story fact month lot "
         "right study book eye job word business issue side kind head house service friend father").split()


@dataclass
class RequestResult:
    ok: bool
    ttft: float | None = None
    ttft_visible: float | None = None
    e2e: float | None = None
    itl: list = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    error: str = ""

    @property
    def tpot(self) -> float | None:
        if not self.ok or self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


def make_prompts(n: int, input_len: int, prompt_file: Path | None, seed: int) -> list[str]:
    """Prompts from a file (one per line, or JSONL with a "prompt" field), else random words
    (about `input_len` tokens; the server's usage report gives the real count)."""
    rng = random.Random(seed)
    if prompt_file:
        lines = [x for x in Path(prompt_file).read_text().splitlines() if x.strip()]
        texts = [json.loads(x)["prompt"] if x.lstrip().startswith("{") else x for x in lines]
        return [texts[i % len(texts)] for i in range(n)]
    words = max(1, int(input_len * 0.75))
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


async def one_request(client, model: str, prompt: str, output_len: int, extra: dict) -> RequestResult:
    import openai

    start = time.perf_counter()
    result = RequestResult(ok=False)
    last = None
    try:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=output_len,
            stream=True, stream_options={"include_usage": True}, extra_body=extra or None)
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.usage is not None:
                result.input_tokens = chunk.usage.prompt_tokens or 0
                result.output_tokens = chunk.usage.completion_tokens or 0
            for choice in chunk.choices:
                extra_fields = choice.delta.model_extra or {}
                reasoning = extra_fields.get("reasoning_content") or extra_fields.get("reasoning")
                visible = choice.delta.content or choice.delta.tool_calls
                if not (reasoning or visible):
                    continue
                if result.ttft is None:
                    result.ttft = now - start
                if visible and result.ttft_visible is None:
                    result.ttft_visible = now - start
                if last is not None:
                    result.itl.append(now - last)
                last = now
        result.e2e = time.perf_counter() - start
        result.ok = result.ttft is not None
        if not result.ok:
            result.error = "no token streamed"
    except (openai.APIError, OSError, asyncio.TimeoutError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def run_load(base_url: str, model: str, prompts: list[str], output_len: int, rate: float,
                   concurrency: int | None, extra: dict, api_key: str, seed: int) -> tuple[list, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=3600)
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency) if concurrency else None

    async def gated(prompt: str) -> RequestResult:
        if gate is None:
            return await one_request(client, model, prompt, output_len, extra)
        async with gate:
            return await one_request(client, model, prompt, output_len, extra)

    start = time.perf_counter()
    tasks = []
    for prompt in prompts:
        tasks.append(asyncio.create_task(gated(prompt)))
        if rate != float("inf"):
            await asyncio.sleep(rng.expovariate(rate))
    done = await asyncio.gather(*tasks)
    duration = time.perf_counter() - start
    await client.close()
    return done, duration


def summarise(done: list[RequestResult], duration: float, slo: dict) -> dict:
    ok = [r for r in done if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.input_tokens for r in ok)

    def ms(values):
        d = stats.describe([v * 1000 for v in values if v is not None])
        return {k: d[k] for k in ("mean", "p50", "p90", "p99")}

    good = [r for r in ok if all(
        (value is not None and value * 1000 <= limit)
        for value, limit in ((r.ttft, slo.get("ttft_ms")), (r.tpot, slo.get("tpot_ms")), (r.e2e, slo.get("e2e_ms")))
        if limit is not None)]
    return {"completed": len(ok), "failed": len(done) - len(ok), "duration_s": duration,
            "input_tokens": in_tokens, "output_tokens": out_tokens,
            "request_throughput": len(ok) / duration, "output_throughput": out_tokens / duration,
            "total_token_throughput": (in_tokens + out_tokens) / duration,
            "goodput": len(good) / duration if slo else None, "slo": slo,
            "ttft_ms": ms([r.ttft for r in ok]), "ttft_visible_ms": ms([r.ttft_visible for r in ok]),
            "tpot_ms": ms([r.tpot for r in ok]), "itl_ms": ms([g for r in ok for g in r.itl]),
            "e2e_ms": ms([r.e2e for r in ok]),
            "errors": sorted({r.error for r in done if not r.ok})[:5]}


def print_table(data: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="serving benchmark")
    table.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right")
    for key in ("ttft_ms", "ttft_visible_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        row = data[key]
        table.add_row(key, *("-" if row[c] is None else f"{row[c]:.2f}" for c in ("mean", "p50", "p90", "p99")))
    console = Console()
    console.print(table)
    console.print(f"completed {data['completed']}, failed {data['failed']} in {data['duration_s']:.2f}s; "
                  f"{data['request_throughput']:.3f} req/s, {data['output_throughput']:.1f} output tok/s, "
                  f"{data['total_token_throughput']:.1f} total tok/s"
                  + (f", goodput {data['goodput']:.3f} req/s" if data["goodput"] is not None else ""))
    for err in data["errors"]:
        console.print(f"[red]error:[/] {err}")


def cmd_serve(args) -> int:
    prompts = make_prompts(args.num_prompts, args.input_len, args.prompt_file, args.seed)
    extra = {"ignore_eos": True} if args.ignore_eos else {}
    slo = {k: v for k, v in (("ttft_ms", args.slo_ttft_ms), ("tpot_ms", args.slo_tpot_ms),
                              ("e2e_ms", args.slo_e2e_ms)) if v is not None}
    api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else "none"
    done, duration = asyncio.run(run_load(args.base_url, args.model, prompts, args.output_len,
                                          args.request_rate, args.max_concurrency, extra, api_key or "none",
                                          args.seed))
    data = summarise(done, duration, slo)
    data["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    data["requests"] = [asdict(r) | {"tpot": r.tpot} for r in done]
    print_table(data)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0 if data["completed"] else 1


def register(bench_subparsers) -> argparse.ArgumentParser:
    p = bench_subparsers.add_parser(
        "serve", help="load-test an OpenAI-compatible server (TTFT, TPOT, ITL, E2E, throughput, goodput)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True)
    p.add_argument("--api-key-env", default=None, help="environment variable holding the API key")
    p.add_argument("--num-prompts", type=int, default=50)
    p.add_argument("--request-rate", type=float, default=float("inf"),
                   help="Poisson arrival rate in requests/s (default inf: all at once)")
    p.add_argument("--max-concurrency", type=int, default=None, help="cap on requests in flight")
    p.add_argument("--input-len", type=int, default=256, help="approximate prompt tokens for random prompts")
    p.add_argument("--output-len", type=int, default=128, help="max_tokens per request")
    p.add_argument("--prompt-file", type=Path, default=None, help="prompts: one per line, or JSONL with 'prompt'")
    p.add_argument("--ignore-eos", action="store_true", help="ask the server to generate exactly output-len tokens")
    p.add_argument("--slo-ttft-ms", type=float, default=None)
    p.add_argument("--slo-tpot-ms", type=float, default=None)
    p.add_argument("--slo-e2e-ms", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write all metrics and per-request data here")
    p.set_defaults(func=cmd_serve)
    return p
