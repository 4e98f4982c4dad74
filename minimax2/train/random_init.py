"""Random M2-shaped checkpoints (official layout + a small BPE tokenizer), for tests, benchmarks and
for `make serve` before a trained model exists. Built with this project's own model and writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..model.config import ModelConfig
from ..model.minimax_m2 import MiniMaxM2
from ..model.writer import save_checkpoint
from .tokenizer import SAMPLE_TEXT, save_tokenizer, train_tokenizer

SHAPES: dict[str, dict] = {
    # a few MB: unit tests
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                 rotary_dim=16, num_local_experts=8, num_experts_per_tok=2, intermediate_size=32, vocab_size=1024),
    # m2-small of the engine benchmarks (563M total, 106M active)
    "m2-small": dict(hidden_size=1024, num_hidden_layers=10, num_attention_heads=16, num_key_value_heads=4,
                     head_dim=64, rotary_dim=32, num_local_experts=32, num_experts_per_tok=4, intermediate_size=512,
                     vocab_size=16384),
}


def init_weights(model: MiniMaxM2, seed: int, std: float = 0.02) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
        for layer in model.layers:
            layer.moe.e_score_correction_bias.copy_(torch.randn(layer.moe.e_score_correction_bias.shape, generator=g) * 0.01)


def build_random_checkpoint(out: str | Path, shape: str | dict = "tiny", seed: int = 0,
                            dtype: torch.dtype = torch.bfloat16, max_position_embeddings: int = 4096) -> Path:
    out = Path(out)
    kw = dict(SHAPES[shape]) if isinstance(shape, str) else dict(shape)
    tok = train_tokenizer(SAMPLE_TEXT * 4, vocab_size=min(kw["vocab_size"], 1024))
    kw["vocab_size"] = max(kw["vocab_size"], tok.get_vocab_size())
    eos = tok.token_to_id("[e~[")
    cfg = ModelConfig(**kw, max_position_embeddings=max_position_embeddings, eos_token_id=[eos],
                      bos_token_id=tok.token_to_id("]~!b["))
    torch.manual_seed(seed)
    with torch.device("meta"):
        model = MiniMaxM2(cfg)
    model.to_empty(device="cpu")
    init_weights(model, seed)
    save_checkpoint(model, out, dtype=dtype)
    save_tokenizer(tok, out, model_max_length=max_position_embeddings)
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": eos, "temperature": 1.0, "top_p": 0.95,
                                                            "top_k": 40}, indent=2) + "\n")
    return out
