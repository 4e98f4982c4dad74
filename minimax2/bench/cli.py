"""`minimax2 bench engine`: registers the `bench` command group; `minimax2 bench serve` joins it from
the eval harness when that is installed (minimax2/eval/cli.py)."""

from __future__ import annotations

import argparse


def register_bench(subparsers) -> argparse._SubParsersAction:
    """Adds `bench` and its `engine` subcommand; returns bench's own subparsers for more benchmarks."""
    bench = subparsers.add_parser("bench", help="benchmarks: engine throughput, serving load").add_subparsers(
        dest="bench_command", metavar="BENCH", required=True)
    e = bench.add_parser("engine", help="decode/prefill throughput per precision vs HF transformers and the roofline",
                         description="Engine benchmark on a checkpoint (see benchmarks/make_checkpoints.py).")
    e.add_argument("--model", "-m", required=True, help="checkpoint directory")
    e.add_argument("--precisions", default="bf16,int8,int4", help="comma list of bf16,int8,int4 (default all three)")
    e.add_argument("--batches", default="1,8,16", help="concurrent sequences to measure (default 1,8,16)")
    e.add_argument("--prompt-len", type=int, default=128, help="prompt tokens per sequence (default 128)")
    e.add_argument("--new-tokens", type=int, default=128, help="tokens generated per sequence (default 128)")
    e.add_argument("--runs", type=int, default=3, help="runs per figure; medians are reported (default 3)")
    e.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    e.add_argument("--quality-model", default="demo",
                   help="trained checkpoint on whose text int8/int4 quality is also measured (default: the bundled "
                        "demo model; 'none' to skip)")
    e.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    e.add_argument("--no-prefix", action="store_true", help="skip the shared-prefix scenario")
    e.add_argument("--out", help="write the JSON report here")
    e.set_defaults(func=cmd_bench_engine)
    return bench


def cmd_bench_engine(args) -> int:
    from .run import run_benchmark

    run_benchmark(args.model, tuple(args.precisions.split(",")), tuple(int(b) for b in args.batches.split(",")),
                  args.prompt_len, args.new_tokens, args.runs, hf=not args.no_hf, prefix=not args.no_prefix,
                  threads=args.threads, out=args.out, quality_model=_quality_model(args.quality_model))
    return 0


def _quality_model(name: str) -> str | None:
    from ..assets import DEMO_MODEL

    if name == "none":
        return None
    if name == "demo":
        return str(DEMO_MODEL) if (DEMO_MODEL / "config.json").exists() else None
    return name
