"""`minimax2 train`: train a recipe (the bundled demo model, or the tiny test one) from a fixed seed.

    minimax2 train --recipe demo --out runs/demo
    minimax2 train --recipe demo-chat --out runs/demo-chat --export minimax2/assets/demo
    torchrun --nproc_per_node 2 -m minimax2 train --recipe demo --out runs/demo   # data parallel
"""

from __future__ import annotations

import argparse
import sys


def register_train(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train an M2-architecture model on synthetic data (the bundled demo model)",
        description="Train a recipe from a fixed seed: tokenizer, model, AdamW with warm-up + cosine, aux-loss-free "
                    "expert balancing, checkpoints every few steps (the recipe's save_every; resume with --resume), then export the "
                    "HF checkpoint to OUT/model, score it on held-out prompts and write its MODEL_CARD.md. "
                    "Launched by torchrun it trains data parallel (gloo on CPU, NCCL on GPU) with the same results "
                    "as one process.",
        epilog="The bundled checkpoint (minimax2/assets/demo/MODEL_CARD.md): minimax2 train --recipe demo --out "
               "runs/demo, then minimax2 train --recipe demo-chat --out runs/demo-chat --export minimax2/assets/demo")
    p.add_argument("--recipe", default="demo", choices=["demo", "demo-chat", "tiny"],
                   help="what to train (default demo; demo-chat continues from the demo recipe's checkpoint, "
                        "runs/demo/model, or --init-from; tiny: a few-minute smoke run)")
    p.add_argument("--out", "-o", default=None, help="run directory: state, log, checkpoint (default runs/RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt (same data order, same losses)")
    p.add_argument("--export", default=None, help="also copy the final checkpoint to this directory")
    p.add_argument("--init-from", default=None, help="continue from this checkpoint instead of the recipe's own start")
    p.add_argument("--steps", type=int, default=None, help="override the recipe's optimizer steps")
    p.add_argument("--batch-size", type=int, default=None, help="override conversations per step (all ranks together)")
    p.add_argument("--accum", type=int, default=None, help="gradient-accumulation micro-batches per rank")
    p.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    p.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast (slower than fp32 on our CPUs)")
    p.add_argument("--device", default=None, help="cpu | cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process (default: 1 per process "
                   "under torchrun, else all cores)")
    p.add_argument("--eval-n", type=int, default=200,
                   help="held-out prompts per family to score at the end (default 200; 0: skip, the quick way "
                        "for a smoke run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.set_defaults(func=cmd_train)
    return p


def cmd_train(args) -> int:
    import os

    import torch

    from .run import run_recipe

    if args.threads:
        torch.set_num_threads(args.threads)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.set_num_threads(1)
    out = args.out or f"runs/{args.recipe}"
    ckpt = run_recipe(args.recipe, out, resume=args.resume, export_to=args.export, eval_n=args.eval_n,
                      progress=not args.no_progress, steps=args.steps, batch_size=args.batch_size, accum=args.accum,
                      lr=args.lr, bf16=args.bf16, device=args.device, init_from=args.init_from)
    if ckpt is not None:
        print(f"wrote {ckpt}" + (f" and {args.export}" if args.export else ""))
    return 0


if __name__ == "__main__":  # not an entry point: say which one is, rather than exit silently
    sys.exit("minimax2.train.cli only registers `train`; run `python -m minimax2 train ...`")
