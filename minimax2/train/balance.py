"""MoE load balancing without an auxiliary loss (DeepSeek-V3's scheme, which M2's
`e_score_correction_bias` implies).

The bias only chooses experts; it never weights their outputs. After each optimizer step every
layer's bias moves by `rate` toward equal load: up for experts that got fewer tokens than the
mean, down for those that got more. `expert_load` comes from the model's training forwards.
"""

from __future__ import annotations

import torch


def layer_loads(model) -> list[torch.Tensor]:
    """Tokens routed to each expert in the last forward, per layer (float64 for summing)."""
    loads = []
    for layer in model.layers:
        load = layer.moe.expert_load
        if load is None:
            raise RuntimeError("no expert load recorded: run a forward in training mode first")
        loads.append(load.to(torch.float64))
    return loads


def spread(load: torch.Tensor) -> float:
    """(max - min) / mean tokens per expert: 0 is perfectly balanced."""
    mean = load.float().mean()
    return float((load.max() - load.min()) / mean) if mean > 0 else 0.0


@torch.no_grad()
def update_bias(model, loads: list[torch.Tensor], rate: float) -> list[float]:
    """Nudge each layer's routing bias toward equal load; returns each layer's spread before the nudge."""
    spreads = []
    for layer, load in zip(model.layers, loads):
        bias = layer.moe.e_score_correction_bias
        bias += rate * torch.sign(load.mean() - load).to(bias.device, bias.dtype)  # loads are summed on the CPU
        spreads.append(spread(load))
    return spreads
