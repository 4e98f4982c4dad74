"""Run a recipe end to end: tokenizer, model, training (resumable, data parallel under torchrun),
export of the HF checkpoint, held-out evaluation and the model card."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from . import dist
from .recipe import ExampleStream, export, get_recipe, prepare
from .trainer import train


def run_recipe(name: str, out: str | Path, resume: bool = False, export_to: str | Path | None = None,
               eval_n: int = 200, progress: bool = True, **overrides) -> Path | None:
    """Train recipe `name` into `out`; the checkpoint lands in `out/model` (and `export_to` if given).

    Returns the checkpoint directory on the main process, None on the other ranks.
    """
    out = Path(out)
    r = get_recipe(name, **overrides)
    info = dist.init(r.train.device)
    tok, model = prepare(r, out, resume)
    t0 = time.time()
    logs = train(model, ExampleStream(tok, r.data_seed, mix=r.mix), r.train, out, resume=resume, progress=progress)
    seconds = time.time() - t0
    if not info.main:
        dist.shutdown()
        return None
    ckpt = export(model, tok, out / "model")
    summary = {"recipe": name, "steps": r.train.steps, "batch_size": r.train.batch_size, "world_size": info.world,
               "seconds_this_run": round(seconds, 1), "threads_per_process": torch.get_num_threads(),
               "parameters": sum(p.numel() for p in model.parameters())}
    if logs:
        summary.update(final_loss=round(sum(l.loss for l in logs[-20:]) / len(logs[-20:]), 4),
                       tokens_this_run=sum(l.tokens for l in logs),
                       tokens_per_s=round(sum(l.tokens for l in logs) / seconds, 1),
                       final_load_spread=[round(s, 3) for s in logs[-1].load_spread])
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if eval_n:
        from .evaluate import evaluate
        from .model_card import write_model_card

        scores = evaluate(ckpt, n=eval_n, progress=progress)
        (out / "heldout_scores.json").write_text(json.dumps(scores, indent=2) + "\n")
        write_model_card(ckpt, r, summary, scores, out / "train_log.jsonl")
    if export_to:
        dst = Path(export_to)
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(ckpt, dst)
    dist.shutdown()
    return ckpt
