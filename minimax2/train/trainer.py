"""The training loop: same model code as inference, AdamW with warm-up + cosine, gradient clipping,
optional bf16 autocast, gradient accumulation, auxiliary-loss-free expert balancing, data parallelism,
resumable checkpoints and a progress bar.

Data order is a pure function of the step: step `s` trains on conversations
`[s * batch_size, (s + 1) * batch_size)` of a deterministic stream (`examples(i)`), so resuming from
a checkpoint at step `s` replays exactly what uninterrupted training would have seen. Rank `r` of
`world` takes every `world`-th conversation of the global batch; the loss is divided by the global
number of loss tokens, so the run's numbers do not depend on the number of processes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from . import balance, dist
from .checkpointing import load_state, save_state
from .data import Encoded, flat_batch
from .schedule import adamw, lr_at


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32  # conversations per optimizer step, all ranks together
    accum: int = 1  # micro-batches per rank per step
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 50
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    bias_rate: float = 1e-3  # routing-bias nudge per step (DeepSeek-V3 uses 1e-3)
    bf16: bool = False  # autocast matmuls to bfloat16 (weights and optimizer stay float32)
    log_every: int = 10
    save_every: int = 200
    device: str = "cpu"


@dataclass
class StepLog:
    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens: int
    tok_per_s: float
    load_spread: list[float]


def step_batches(examples: Callable[[int], Encoded], step: int, cfg: TrainConfig, info: dist.DistInfo):
    """This rank's micro-batches for `step`, and the global number of loss tokens."""
    glob = [examples(step * cfg.batch_size + j) for j in range(cfg.batch_size)]
    n_targets = sum(e.num_targets for e in glob)
    mine = glob[info.rank::info.world]
    micro = [mine[k::cfg.accum] for k in range(cfg.accum)]
    return [m for m in micro if m], n_targets


def train_step(model, opt, examples, step: int, cfg: TrainConfig, info: dist.DistInfo) -> StepLog:
    t0 = time.perf_counter()
    lr = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
    for group in opt.param_groups:
        group["lr"] = lr
    micro, n_targets = step_batches(examples, step, cfg, info)
    model.train()
    opt.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), dtype=torch.float64)
    loads = [torch.zeros(layer.moe.num_experts, dtype=torch.float64) for layer in model.layers]
    tokens = 0
    for seqs in micro:
        b = flat_batch(seqs, cfg.device)
        with torch.autocast(device_type=torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(b.input_ids, b.positions, b.meta)
        loss = F.cross_entropy(logits.float(), b.labels, ignore_index=-100, reduction="sum") / max(1, n_targets)
        loss.backward()
        loss_sum += loss.detach().double().cpu()
        for acc, load in zip(loads, balance.layer_loads(model)):
            acc += load.cpu()
        tokens += b.num_tokens
    stats = [loss_sum, torch.tensor(float(tokens), dtype=torch.float64)]
    dist.all_reduce_sum(stats + loads, info)
    dist.reduce_grads(model, info)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    spreads = balance.update_bias(model, loads, cfg.bias_rate)
    dt = time.perf_counter() - t0
    return StepLog(step, float(stats[0]), lr, float(grad_norm), int(stats[1]), float(stats[1]) / dt, spreads)


def train(model, examples: Callable[[int], Encoded], cfg: TrainConfig, out: str | Path, resume: bool = False,
          progress: bool = True, on_step: Callable[[StepLog], None] | None = None) -> list[StepLog]:
    """Train `model` in place for `cfg.steps` optimizer steps; checkpoints and the log go under `out`."""
    out = Path(out)
    info = dist.init(cfg.device)
    model.to(cfg.device)
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    start = 0
    if resume and (out / "train_state.pt").exists():
        start = load_state(out / "train_state.pt", model, opt)
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    logs: list[StepLog] = []
    bar = _Bar(cfg.steps, start) if (progress and info.main) else None
    log_file = (out / "train_log.jsonl").open("a") if info.main else None
    try:
        for step in range(start, cfg.steps):
            log = train_step(model, opt, examples, step, cfg, info)
            logs.append(log)
            if on_step:
                on_step(log)
            if bar:
                bar.update(log)
            if log_file and (step % cfg.log_every == 0 or step == cfg.steps - 1):
                log_file.write(json.dumps(asdict(log)) + "\n")
                log_file.flush()
            last = step == cfg.steps - 1
            if info.main and ((step + 1) % cfg.save_every == 0 or last):
                save_state(out / "train_state.pt", model, opt, step + 1)
    finally:
        if bar:
            bar.stop()
        if log_file:
            log_file.close()
    return logs


class _Bar:
    """rich progress bar: step, loss, tokens/s, elapsed and ETA."""

    def __init__(self, total: int, start: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("loss {task.fields[loss]:.4f}  {task.fields[tps]:,.0f} tok/s"),
                          TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        self.task = self.p.add_task("train", total=total, completed=start, loss=float("nan"), tps=0.0)
        self.p.start()

    def update(self, log: StepLog) -> None:
        self.p.update(self.task, completed=log.step + 1, loss=log.loss, tps=log.tok_per_s)

    def stop(self) -> None:
        self.p.stop()
