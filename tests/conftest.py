"""Shared fixtures: real M2-shaped checkpoints written to temp dirs (by transformers and by us)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def hf_checkpoint(out: Path, seed: int = 0, bias_std: float = 0.5, max_shard_size=None, **cfg_kw) -> Path:
    """A random MiniMaxM2ForCausalLM saved with transformers' own save_pretrained (float32)."""
    from transformers import MiniMaxM2Config, MiniMaxM2ForCausalLM

    base = dict(vocab_size=300, max_position_embeddings=512, bos_token_id=None, eos_token_id=None)
    base.update(cfg_kw)
    torch.manual_seed(seed)
    model = MiniMaxM2ForCausalLM(MiniMaxM2Config(**base)).eval()
    with torch.no_grad():
        for layer in model.model.layers:  # a bias big enough to change which experts are chosen
            layer.mlp.e_score_correction_bias.normal_(0, bias_std)
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out, **kw)
    return out


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """Our own random tiny checkpoint with a trained BPE tokenizer (float32 weights)."""
    from minimax2.train.random_init import build_random_checkpoint

    return build_random_checkpoint(tmp_path_factory.mktemp("tiny"), "tiny", seed=0, dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_llm(tiny_ckpt):
    from minimax2 import LLM

    return LLM(tiny_ckpt, dtype="float32")


def edit_config(path: Path, **changes) -> None:
    cfg = json.loads((path / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (path / "config.json").write_text(json.dumps(cfg))
