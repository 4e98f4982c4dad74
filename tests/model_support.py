"""Shared helpers for model tests."""

from __future__ import annotations

import torch

from minimax2.model.attention import AttentionMetadata


def teacher_forced_logits(model, tokens: list[int], prompt: int) -> torch.Tensor:
    """Prefill `prompt` tokens, then decode the rest one by one through the paged cache (one block table
    of 256 slots): the logits of both batch kinds over the same fixed tokens, float32 [1 + rest, V]."""
    model.allocate_kv_cache(256)
    out = []
    with torch.inference_mode():
        meta = AttentionMetadata.from_block_tables([prompt], [prompt], [[0]], 256)
        out.append(model(torch.tensor(tokens[:prompt]), torch.arange(prompt), meta)[-1].float())
        for i in range(prompt, len(tokens)):
            meta = AttentionMetadata.from_block_tables([1], [i + 1], [[0]], 256)
            out.append(model(torch.tensor([tokens[i]]), torch.tensor([i]), meta)[0].float())
    model.free_kv_cache()
    return torch.stack(out)
