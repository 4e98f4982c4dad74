"""Command-line flags that choose how a checkpoint loads, shared by generate, chat and serve (no torch
import here, so `--help` stays fast)."""

from __future__ import annotations

import argparse
import re


def _number(text: str, cast, ok, rule: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if cast is int else 'a number'}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{rule}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "must be at least 1")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, float, lambda v: 0 < v < float("inf"), "must be a number above 0")


def port(text: str) -> int:
    """argparse type: a TCP port, 0-65535 (0: any free one)."""
    return _number(text, int, lambda v: 0 <= v <= 65535, "a port is 0-65535")


def device(text: str) -> str:
    """argparse type: cpu, cuda, cuda:N or auto."""
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: choose cpu, cuda, cuda:N or auto")
    return text


def add_load_arguments(p) -> None:
    """The command-line flags that choose how a checkpoint loads (generate, chat and serve share them)."""
    p.add_argument("--quantization", "-q", choices=["bf16", "fp8", "int8", "int4"], default=None,
                   help="serving form of the weights: int8 / int4 quantised while loading (CPU), fp8 the "
                        "official FP8 weights as released (the default for FP8 checkpoints on a CPU and on a "
                        "Hopper GPU), bf16 dequantized (default: the checkpoint's own form)")
    p.add_argument("--lm-head", choices=["bf16", "int8", "int6"], default=None,
                   help="form of the output matrix (200,064 x 3,072 in M2, the largest one a batch-1 step reads): "
                        "int8 halves its bytes, int6 (6.5 bits a weight, the size of llama.cpp's Q6_K output "
                        "matrix in its Q4 files) takes 81%% of int8's, less exact (default: int8 under int8/int4, "
                        "else bf16, as released)")
    p.add_argument("--int8-activations", action=argparse.BooleanOptionalAction, default=None,
                   help="int8, int4 and 6-bit matrices (-q int8 or int4, --lm-head int8 or int6) quantise their "
                        "decode activations to int8 (per 128 columns, per group for int4 and 6-bit), as "
                        "llama.cpp does, instead of int16: 1.2-1.35x faster products at 8 sequences, each "
                        "activation rounded to 1/254 of its block's largest value, not 1/65534 (default: on "
                        "under int4, where the weights' 4-bit rounding dwarfs it; off under int8)")
    p.add_argument("--max-memory-gb", type=positive_float, default=None,
                   help="refuse to load when weights + KV cache exceed this (default: MemAvailable / the cgroup limit)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (default: the CPUs this process may use)")


def load_kwargs(args) -> dict:
    """LLM keyword arguments from the flags of `add_load_arguments`."""
    gb = args.max_memory_gb
    return dict(quantization=args.quantization, lm_head=args.lm_head, threads=args.threads,
                int8_activations=args.int8_activations, max_memory=None if gb is None else int(gb * 2**30))
