"""Build the two random M2-shaped reference checkpoints of the engine benchmarks with transformers
(`save_pretrained`, seed 0, bf16), plus a small BPE tokenizer so text prompts work.

    python benchmarks/make_checkpoints.py --out checkpoints            # both
    python benchmarks/make_checkpoints.py --out checkpoints --only m2-small
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

SHAPES = {
    "m2-small": dict(hidden_size=1024, num_hidden_layers=10, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                     rotary_dim=32, num_local_experts=32, num_experts_per_tok=4, intermediate_size=512, vocab_size=16384),
    "m2-medium": dict(hidden_size=2048, num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4,
                      head_dim=128, rotary_dim=64, num_local_experts=64, num_experts_per_tok=4, intermediate_size=512,
                      vocab_size=16384),
}


def build(name: str, out: Path) -> Path:
    from transformers import MiniMaxM2Config, MiniMaxM2ForCausalLM

    from minimax2.train.tokenizer import SAMPLE_TEXT, save_tokenizer, train_tokenizer

    path = out / name
    if (path / "config.json").exists():
        print(f"{path} exists, skipping")
        return path
    t = time.time()
    tok = train_tokenizer(SAMPLE_TEXT * 8, vocab_size=2048)
    cfg = MiniMaxM2Config(**SHAPES[name], max_position_embeddings=8192, bos_token_id=tok.token_to_id("]~!b["),
                          eos_token_id=tok.token_to_id("[e~["))
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = MiniMaxM2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(path)
    save_tokenizer(tok, path, model_max_length=8192)
    n = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n / 1e6:.0f}M parameters, written to {path} in {time.time() - t:.0f}s")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="checkpoints", help="parent directory (default ./checkpoints)")
    ap.add_argument("--only", choices=list(SHAPES), help="build just this one")
    args = ap.parse_args()
    for name in [args.only] if args.only else list(SHAPES):
        build(name, Path(args.out))


if __name__ == "__main__":
    main()
