"""Token sampling: temperature, top-k, top-p, per-request seeded generators.

Each request with a seed owns a `torch.Generator`, so its tokens do not depend on which other
requests share the batch; greedy rows never touch a generator.
"""

from __future__ import annotations

import torch

from .sampling_params import SamplingParams


def make_generator(params: SamplingParams) -> torch.Generator | None:
    if params.seed is None or params.greedy:
        return None
    g = torch.Generator()
    g.manual_seed(params.seed)
    return g


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """One row of float32 logits -> temperature-scaled logits with top-k / top-p cut to -inf."""
    logits = logits / params.temperature
    if params.top_k and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens ranked above it already reach top_p (the top one always stays)
        drop = probs.cumsum(-1) - probs >= params.top_p
        logits = logits.index_fill(0, order[drop], float("-inf"))
    return logits


def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]) -> list[int]:
    """logits [B, V] (any float dtype) -> one token id per row."""
    logits = logits.float()
    out = logits.argmax(-1).tolist()
    for i, p in enumerate(params):
        if p.greedy:
            continue
        probs = filter_logits(logits[i], p).softmax(-1)
        out[i] = int(torch.multinomial(probs, 1, generator=generators[i]).item())
    return out
