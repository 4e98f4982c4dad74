"""Engine benchmark (also `minimax2 bench engine`). Build the checkpoints first:

    python benchmarks/make_checkpoints.py --out checkpoints
    python benchmarks/bench_engine.py --model checkpoints/m2-small --out results/bench-m2-small.json
"""

from __future__ import annotations

import argparse

from minimax2.engine.benchmark import run_benchmark


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", required=True, help="checkpoint directory (e.g. checkpoints/m2-small)")
    ap.add_argument("--precisions", default="bf16,int8,int4", help="comma list of bf16,int8,int4")
    ap.add_argument("--batches", default="1,8,16", help="concurrent sequences to measure")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; medians are reported")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    ap.add_argument("--no-prefix", action="store_true", help="skip the shared-prefix scenario")
    ap.add_argument("--out", help="write the JSON report here")


def run(args) -> int:
    run_benchmark(args.model, tuple(args.precisions.split(",")), tuple(int(b) for b in args.batches.split(",")),
                  args.prompt_len, args.new_tokens, args.runs, hf=not args.no_hf, prefix=not args.no_prefix,
                  threads=args.threads, out=args.out)
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    raise SystemExit(run(ap.parse_args()))
