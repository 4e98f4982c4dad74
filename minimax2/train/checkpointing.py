"""Resumable training state: model weights and buffers (routing biases included), optimizer
moments and the next step. Data order is a function of the step, so nothing else is needed for
resumed training to continue exactly where it stopped."""

from __future__ import annotations

from pathlib import Path

import torch


def save_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, next_step: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "next_step": next_step}, tmp)
    tmp.replace(path)  # never leave a half-written state behind


def load_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """Restore `model` and `opt` in place; returns the step to continue from."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["next_step"])
