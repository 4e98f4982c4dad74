"""The `minimax2` command line, its one entry point (also `python -m minimax2`): generate, chat, info,
convert and init here; train, serve, bench and eval (when installed) registered by their packages."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

DEFAULT_MODEL_ENV = "MINIMAX2_MODEL"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="checkpoint directory (HF layout: config.json, safetensors, tokenizer.json), or 'demo' for "
                        "the bundled demo model (default: demo)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"], help="compute dtype (default bfloat16)")
    from .engine.options import add_load_arguments, device, positive_float, positive_int

    p.add_argument("--device", default="cpu", type=device, help="cpu | cuda | cuda:N | auto (default cpu)")
    add_load_arguments(p)
    p.add_argument("--group-size", type=int, default=128, help="int4 group size: 32, 64, 128 or 256 (default 128)")
    p.add_argument("--max-model-len", type=positive_int, help="context length (default: the model's)")
    p.add_argument("--kv-cache-gb", type=positive_float,
                   help="KV cache budget in GiB (default: what the context needs, <= 4)")


def _add_sampling_args(p: argparse.ArgumentParser, max_tokens: int) -> None:
    g = p.add_argument_group("sampling")
    from .engine.options import positive_int

    g.add_argument("--max-tokens", type=positive_int, default=max_tokens, help=f"tokens to generate at most (default {max_tokens})")
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0, the model card's)")
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95)")
    g.add_argument("--top-k", type=int, default=40, help="keep the k most likely tokens, 0 = all (default 40)")
    g.add_argument("--seed", type=int, default=None, help="make sampling reproducible")
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def _sampling(args):
    from .engine.sampling_params import SamplingParams

    return SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                          top_k=args.top_k, seed=args.seed, stop=args.stop)


def _load(args):
    from rich.console import Console

    from .engine.llm import LLM
    from .engine.options import load_kwargs

    Console(stderr=True).print(f"loading {args.model} ({args.quantization or args.dtype})", style="dim")
    return LLM(args.model, dtype=args.dtype, device=args.device, progress=True, group_size=args.group_size,
               max_model_len=args.max_model_len, kv_cache_gb=args.kv_cache_gb, **load_kwargs(args))


def cmd_generate(args) -> int:
    import time

    from .chat.markers import BEGIN_OF_DOCUMENT

    llm = _load(args)
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if _chat_only(llm.path) and not prompt.startswith(BEGIN_OF_DOCUMENT):
        print(f"minimax2 generate: {llm.path.name} is a chat model trained on conversations only, so it continues "
              "raw text with noise; talk to it with `minimax2 chat`, or give `generate` a prompt in M2's chat "
              "format (LLM.render in Python)", file=sys.stderr)
    t0 = time.perf_counter()
    out = llm.generate([prompt], _sampling(args), on_delta=lambda i, d: (sys.stdout.write(d), sys.stdout.flush()))[0]
    dt = time.perf_counter() - t0
    c = out.outputs[0]
    print(file=sys.stdout)
    print(f"[{len(out.prompt_token_ids)} prompt + {len(c.token_ids)} generated tokens in {dt:.2f}s, "
          f"finish_reason={c.finish_reason}]", file=sys.stderr)
    return 0


def _chat_only(path: Path) -> bool:
    """Checkpoints that know only M2's chat format: the bundled demo model (and copies of it), by its model card."""
    card = Path(path) / "MODEL_CARD.md"
    return card.exists() and card.read_text(errors="replace").startswith("# minimax2 demo model")


def cmd_chat(args) -> int:
    from .chat.repl import run_repl

    tools = None
    if args.tools:
        try:
            tools = json.loads(Path(args.tools).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"--tools {args.tools} is not JSON ({e}); give a JSON list of tool definitions") from None
        if not isinstance(tools, list):
            raise ValueError(f"--tools {args.tools} holds a JSON {type(tools).__name__}, not a list of tool definitions")
    return run_repl(_load(args), _sampling(args), tools=tools, system=args.system)


def cmd_info(args) -> int:
    from .model.info import print_info

    code = print_info(model=args.model, preset=args.preset, context=args.context)
    if args.model:
        from .model.config import ModelConfig
        from .model.memory import serving_bytes
        from .model.prequant import form_of, head_of

        cfg = ModelConfig.from_file(args.model)
        qc = cfg.quantization_config or {}
        form = form_of(cfg) or (("fp8", 128) if qc.get("quant_method") == "fp8" else ("float", 128))
        name = {"float": "bf16"}.get(form[0], form[0]) + (f" (groups of {form[1]})" if form[0] == "int4" else "")
        head = head_of(cfg) if form_of(cfg) else None
        name += f", lm_head {head}" if head else ""
        on_disk = sum(f.stat().st_size for f in Path(args.model).glob("*.safetensors"))
        print(f"on disk: {name}, {on_disk / 1e9:.2f} GB in safetensors; serving forms: "
              + ", ".join(f"{f} {serving_bytes(cfg, 'float' if f == 'bf16' else f, lm_head=head) / 1e9:.2f} GB"
                          for f in ("bf16", "fp8", "int8", "int4") if f != "fp8" or form[0] == "fp8"))
    if args.bandwidth:
        from .model.config import ModelConfig
        from .model.projection import MEASURED_SHARES, projection_rows

        cfg = ModelConfig.from_file(args.model) if args.model else ModelConfig()
        print(f"\nprojected batch-1 decode tok/s (short context / {args.context:,}-token context) at the roofline "
              f"share measured on the released widths ({MEASURED_SHARES['source']})")
        header = ["form", "weights", f"RAM w/ {args.context // 1024}K ctx", "share"] + [f"{b:g} GB/s" for b in args.bandwidth]
        print("  ".join(f"{h:>16}" for h in header))
        for row in projection_rows(cfg, {f: MEASURED_SHARES[f] for f in ("fp8", "int8", "int4")}, args.bandwidth,
                                   args.context):
            print("  ".join(f"{c:>16}" for c in row))
    return code


def cmd_convert(args) -> int:
    to = "fp8" if args.to_fp8 else args.to
    if to is None:
        print("minimax2 convert: nothing to do; pass --to int8|int4|fp8", file=sys.stderr)
        return 2
    shard = int(args.shard_size_mb * 2**20) if args.shard_size_mb else None
    if to == "fp8" and args.lm_head:
        print("minimax2 convert: --lm-head applies to --to int8|int4; the FP8 layout keeps the release's bf16 lm_head "
              "(serve it with --lm-head int8|int6 instead)", file=sys.stderr)
        return 2
    if to == "fp8":
        from .model.writer import convert_to_fp8

        out = convert_to_fp8(args.model, args.out, block=(args.block, args.block), max_shard_bytes=shard)
        print(f"wrote FP8 ({args.block}x{args.block} blocks) checkpoint to {out}")
        return 0
    from .model.prequant import convert

    out = convert(args.model, args.out, to, args.group_size, max_shard_bytes=shard or 2**30, progress=True,
                  lm_head=args.lm_head)
    group = (f", groups of {args.group_size}" if to == "int4" else "") + f", lm_head {args.lm_head or 'int8'}"
    print(f"wrote the {to}{group} serving form to {out}; it loads zero-copy (`--model {out}`, no --quantization)")
    return 0


def cmd_init(args) -> int:
    from .engine.llm import resolve_dtype
    from .train.random_init import build_random_checkpoint

    out = build_random_checkpoint(args.out, args.shape, seed=args.seed, dtype=resolve_dtype(args.dtype))
    print(f"wrote random M2-shaped checkpoint '{args.shape}' (seed {args.seed}) to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="minimax2", description="Run MiniMax-M2 (and M2-shaped checkpoints) locally, and measure it.")
    p.add_argument("--version", action="version", version=f"minimax2 {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    g = sub.add_parser("generate", help="complete a prompt, streaming tokens to the terminal",
                       description="Complete raw text (no chat template) and stream it to stdout.")
    _add_model_args(g)
    g.add_argument("--prompt", "-p", help="prompt text (default: read stdin)")
    _add_sampling_args(g, max_tokens=128)
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("chat", help="interactive chat: reasoning dimmed, tool calls structured",
                       description="Interactive multi-turn chat in M2's prompt format. Commands: /reset, /exit, "
                                   "and /tool TEXT to answer a tool call with TEXT (with --tools).")
    _add_model_args(c)
    c.add_argument("--tools", help="JSON file with a list of OpenAI-style tool definitions to offer")
    c.add_argument("--system", help="system prompt")
    _add_sampling_args(c, max_tokens=1024)
    c.set_defaults(func=cmd_chat)

    i = sub.add_parser("info", help="parameters, FLOPs, KV cache and memory of a checkpoint or a preset",
                       description="Cost accounting: total/active parameters, FLOPs per token, KV bytes per token, "
                                   "memory at bf16/fp8/int8/int4 for a context length.")
    src = i.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", "-m", help="checkpoint directory (reads config.json only), or 'demo'")
    src.add_argument("--preset", choices=["minimax-m2", "kimi-k2", "deepseek-v3.2", "all"], help="built-in architecture")
    i.add_argument("--context", type=int, default=32768, help="context length for the memory column (default 32768)")
    i.add_argument("--bandwidth", type=float, nargs="+", metavar="GBPS",
                   help="also project decode tok/s at these memory bandwidths (GB/s) for fp8 / int8 / int4, from the "
                        "roofline share measured on the released widths (benchmarks/bench_slice.py)")
    i.set_defaults(func=cmd_info)

    v = sub.add_parser("convert", help="write a checkpoint in another form: pre-quantised int8/int4 (zero-copy "
                                       "starts) or the official FP8 block layout",
                       description="--to int8|int4: quantise once (from bf16, fp32 or the official FP8) into the "
                                   "serving form, which later starts map from disk without reading it up front. "
                                   "--to fp8: MiniMax's FP8 layout (float8_e4m3fn + 128x128 weight_scale_inv).")
    v.add_argument("--model", "-m", required=True, help="source checkpoint directory")
    v.add_argument("--out", "-o", required=True, help="destination directory")
    v.add_argument("--to", choices=["int8", "int4", "fp8"], help="target form")
    v.add_argument("--to-fp8", action="store_true", help="same as --to fp8")
    v.add_argument("--group-size", type=int, default=128, help="int4: input channels per (scale, zero) (default 128)")
    v.add_argument("--lm-head", choices=["int8", "int6"], default=None,
                   help="int8/int4: the output matrix's form, int6 6.5 bits a weight (default int8)")
    v.add_argument("--block", type=int, default=128, help="fp8: square block size of the scales (default 128)")
    v.add_argument("--shard-size-mb", type=float, default=None,
                   help="split into shards of this size, with an index (default: int8/int4 1 GiB, fp8 one file)")
    v.set_defaults(func=cmd_convert)

    n = sub.add_parser("init", help="write a random M2-shaped checkpoint (for tests and benchmarks)",
                       description="Write a checkpoint with M2's architecture and random weights (the layout "
                                   "transformers saves, plus a small BPE tokenizer and the chat template): "
                                   "tiny (a few MB, for tests) or m2-small (~0.6B parameters, for benchmarks).")
    n.add_argument("--out", "-o", required=True, help="destination directory")
    n.add_argument("--shape", default="tiny", choices=["tiny", "m2-small"], help="size preset (default tiny)")
    n.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    n.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                   help="dtype of the saved weights (default bfloat16)")
    n.set_defaults(func=cmd_init)

    _register_packages(sub)
    return p


def _register_packages(sub) -> None:
    """Commands that live with their own packages, each adding itself with its `register_*` function
    (none of them imports this module: this is the one entry point)."""
    from .bench.cli import register_bench
    from .server.cli import register_serve  # stdlib-only import; `serve` says what to install if fastapi is missing
    from .train.cli import register_train

    register_train(sub)
    register_serve(sub)
    bench = register_bench(sub)
    if importlib.util.find_spec("minimax2.eval.cli") is not None:
        from .eval.cli import register_bench_serve, register_eval

        register_eval(sub)
        register_bench_serve(bench)


def main(argv: list[str] | None = None) -> int:
    import logging

    args = build_parser().parse_args(argv)
    if hasattr(args, "model") and (args.command in ("generate", "chat") or (args.command == "info" and args.model)):
        from .assets import resolve_model

        try:
            args.model = resolve_model(args.model)
        except ValueError as e:
            print(f"minimax2 {args.command}: error: {e}", file=sys.stderr)
            return 2
    logging.basicConfig(level=os.environ.get("MINIMAX2_LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from .chat.tokenizer import TokenizerError
    from .model.config import ConfigError
    from .model.loader import CheckpointError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, CheckpointError, TokenizerError, OSError, ValueError) as e:
        print(f"minimax2 {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
