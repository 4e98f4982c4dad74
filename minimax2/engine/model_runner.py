"""ModelRunner: owns the model and its paged KV cache; turns a scheduled batch into logits."""

from __future__ import annotations

import torch

from ..model import cpu_kernels
from ..model.attention import AttentionMetadata
from ..model.config import ModelConfig
from ..model.minimax_m2 import MiniMaxM2
from .sequence import Sequence


def kv_bytes_per_block(model: MiniMaxM2 | ModelConfig, block_size: int, dtype: torch.dtype | None = None) -> int:
    c = model if isinstance(model, ModelConfig) else model.cfg
    elem = torch.empty((), dtype=dtype or model.dtype).element_size()
    return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * block_size * elem


class ModelRunner:
    def __init__(self, model: MiniMaxM2, block_size: int, num_blocks: int):
        self.model = model
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.kv_bytes = model.allocate_kv_cache(num_blocks * block_size)
        if model.dtype == torch.bfloat16 and model.device.type == "cpu":
            cpu_kernels.load()  # bf16 decode matrix-vector kernel; falls back to torch where unavailable

    @torch.inference_mode()
    def run(self, batch: list[tuple[Sequence, int]]) -> tuple[torch.Tensor, list[int]]:
        """Compute `n` new tokens for each (seq, n). Returns logits for the sequences whose chunk reaches
        their last token (they sample next), with their positions in `batch`."""
        ids, pos, q_lens, ctx, tables, sample_rows = [], [], [], [], [], []
        for k, (seq, n) in enumerate(batch):
            start = seq.num_cached_tokens
            ids.extend(seq.token_ids[start:start + n])
            pos.extend(range(start, start + n))
            q_lens.append(n)
            ctx.append(start + n)
            tables.append(seq.block_table)
            if start + n == seq.num_tokens:
                sample_rows.append(k)
        dev = self.model.device
        meta = AttentionMetadata.from_block_tables(q_lens, ctx, tables, self.block_size, dev)
        last = torch.tensor([meta.cu_seqlens_q[k + 1] - 1 for k in sample_rows], dtype=torch.long, device=dev)
        logits = self.model(torch.tensor(ids, device=dev), torch.tensor(pos, device=dev), meta, logits_indices=last)
        return logits, sample_rows
