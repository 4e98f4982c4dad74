"""Random checkpoints of any M2 shape written straight to disk, tensor by tensor, in the official layout:
bf16, or FP8 the way MiniMax ships it (attention projections and experts float8_e4m3fn with 128x128
`weight_scale_inv` blocks; router, bias, norms, embeddings and lm_head in bf16; the official
`quantization_config`). Memory stays at one shard (`max_shard_bytes`) plus one tensor, so the released
model's exact widths can be written on a small machine (benchmarks/make_checkpoints.py --shape m2-slice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch

from .config import ModelConfig
from .fp8 import DEFAULT_BLOCK, quantize
from .weights import FP8_WEIGHT_RE, checkpoint_targets
from .writer import write_tensors

FP8_CONFIG = {"quant_method": "fp8", "fmt": "float8_e4m3fn", "activation_scheme": "dynamic",
              "weight_block_size": list(DEFAULT_BLOCK),
              "modules_to_not_convert": ["gate", "e_score_correction_bias", "lm_head"]}


def random_tensors(cfg: ModelConfig, fp8: bool, seed: int = 0, std: float = 0.02,
                   progress=None) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) in checkpoint order; FP8 weights are followed by their `weight_scale_inv`."""
    g = torch.Generator().manual_seed(seed)
    for name, target in checkpoint_targets(cfg).items():
        if name.endswith("norm.weight"):
            t = torch.ones(target.shape, dtype=torch.bfloat16)
        elif name.endswith("e_score_correction_bias"):
            t = torch.randn(target.shape, generator=g) * 0.01
        else:
            t = (torch.randn(target.shape, generator=g) * std).to(torch.bfloat16)
        if fp8 and FP8_WEIGHT_RE.search(name):
            q, scale = quantize(t, DEFAULT_BLOCK)
            yield name, q
            yield name + "_scale_inv", scale
        else:
            yield name, t
        if progress is not None:
            progress(name)


def write_random_checkpoint(out: str | Path, cfg: ModelConfig, fp8: bool = True, seed: int = 0,
                            max_shard_bytes: int = 2**30, progress=None) -> Path:
    """Write config.json and the shards of a random `cfg`-shaped checkpoint to `out`."""
    out = Path(out)
    write_tensors(random_tensors(cfg, fp8, seed, progress=progress), out, max_shard_bytes)
    raw = cfg.to_hf_dict()
    if fp8:
        raw["quantization_config"] = dict(FP8_CONFIG)
    (out / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    return out
