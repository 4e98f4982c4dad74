"""The streaming output path: what a token costs between the engine and the wire.

Two measurements, both on the bundled demo model (`minimax2/assets/demo`):

1. End to end: a real `minimax2 serve` subprocess on 127.0.0.1 and streamed chat completions through
   the official OpenAI SDK, one request alone (batch 1) and 16 at once; tokens/s over the wall time of
   the round (every request generates exactly --tokens tokens: ignore_eos).
   The server process's CPU time per generated token is reported too (from /proc), which a busy
   machine disturbs less than wall time.
2. The output path alone, no model: a fixed stream of token ids (reasoning, content and a tool call,
   as M2 writes them) through detokenization with a stop string, the M2 stream parser and the OpenAI
   chunk encoding: CPU time per token (best of 20) and `decode` calls per token. This is the server's
   work per token outside the model step.

    python benchmarks/bench_stream.py                       # this checkout
    python benchmarks/bench_stream.py --repo /work/wt-base  # another checkout of the project

`--repo` runs the server and the output-path loop from that checkout (PYTHONPATH), so the same
script measures a tree before and after a change. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The output-path loop, run with the measured checkout on PYTHONPATH. It imports the stream parser
# from wherever that checkout keeps it.
OUTPUT_PATH = r"""
import json, sys, time
from minimax2.chat.tokenizer import Tokenizer
try:
    from minimax2.chat.stream_parser import StreamParser
except ImportError:
    from minimax2.server.streaming import StreamParser
from minimax2.engine.output import OutputText
from minimax2.server.openai_api import event_delta, sse

demo, rounds = sys.argv[1], int(sys.argv[2])
tok = Tokenizer(demo)
decodes, real_decode = 0, tok.decode


def counted(ids, skip_special_tokens=False):
    global decodes
    decodes += 1
    return real_decode(ids, skip_special_tokens)


tok.decode = counted
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
         "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]
text = ("The user wants the weather, so I call the tool for the city they named. " * 4 + "</think>\n\n"
        + "Let me look that up for you, it takes a moment. " * 4
        + '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris, France</parameter>\n'
        + '<parameter name="days">3</parameter>\n</invoke>\n</minimax:tool_call>')
ids = tok.encode(text)
head = {"id": "chatcmpl-1", "created": 0, "model": "demo", "object": "chat.completion.chunk"}
best = None
for _ in range(rounds):
    decodes = 0
    t0 = time.thread_time()  # this thread's CPU time: other processes on a busy machine do not count
    out, parser, wire = OutputText(tok, ["<never-generated>"], tok.special_ids), StreamParser(tools), 0
    for t in ids:
        delta, _ = out.push(t)
        for ev in parser.feed(delta):
            wire += len(sse({**head, "choices": [{"index": 0, "delta": event_delta(ev), "logprobs": None,
                                                  "finish_reason": None}]}))
    for ev in parser.feed(out.finish()) + parser.finish():
        wire += len(event_delta(ev))
    dt = time.thread_time() - t0
    best = dt if best is None else min(best, dt)
print(json.dumps({"tokens": len(ids), "cpu_us_per_token": round(best / len(ids) * 1e6, 2),
                  "decodes_per_token": round(decodes / len(ids), 3)}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(repo: Path, port: int, state_dir: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(repo), "XDG_STATE_HOME": state_dir}
    cmd = [sys.executable, "-c", "import sys; from minimax2.cli import main; sys.exit(main(sys.argv[1:]))",
           "serve", "--model", str(repo / "minimax2" / "assets" / "demo"), "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--max-num-seqs", "16"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not become healthy within 300 s")


async def one_request(client, tokens: int) -> int:
    stream = await client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Tell me about the weather in Paris."}],
        max_tokens=tokens, stream=True, temperature=1.0, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True})
    used = 0
    async for chunk in stream:
        if chunk.usage is not None:
            used = chunk.usage.completion_tokens
    return used


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(client, pid: int, concurrency: int, tokens: int) -> tuple[float, float]:
    """(tokens/s, server CPU ms per token) of `concurrency` requests at once."""
    t0, c0 = time.perf_counter(), cpu_seconds(pid)
    n = sum(await asyncio.gather(*(one_request(client, tokens) for _ in range(concurrency))))
    return n / (time.perf_counter() - t0), (cpu_seconds(pid) - c0) / n * 1e3


async def end_to_end(port: int, pid: int, tokens: int, levels: list[int], rounds: int) -> dict:
    import openai

    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)
    await one_request(client, 8)  # warm up
    out = {}
    for c in levels:
        runs = [await one_round(client, pid, c, tokens) for _ in range(rounds)]
        out[f"tok_s_concurrency_{c}"] = round(statistics.median(r[0] for r in runs), 1)
        out[f"server_cpu_ms_per_token_concurrency_{c}"] = round(statistics.median(r[1] for r in runs), 3)
    await client.close()
    return out


def output_path(repo: Path, rounds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    res = subprocess.run([sys.executable, "-c", OUTPUT_PATH, str(repo / "minimax2" / "assets" / "demo"), str(rounds)],
                         cwd=repo, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per request (default 128)")
    ap.add_argument("--levels", default="1,16", help="concurrent requests per round (default 1,16)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per level; the median is kept (default 3)")
    ap.add_argument("--no-server", action="store_true", help="only the output-path loop")
    args = ap.parse_args()
    repo = args.repo.resolve()
    result = {"repo": str(repo), "output_path": output_path(repo, 20)}
    if not args.no_server:
        port = free_port()
        with tempfile.TemporaryDirectory() as state:
            proc = start_server(repo, port, state)
            try:
                result["end_to_end"] = asyncio.run(end_to_end(port, proc.pid, args.tokens,
                                                              [int(x) for x in args.levels.split(",")], args.rounds))
            finally:
                proc.terminate()
                proc.wait(60)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
