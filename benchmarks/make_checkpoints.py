"""Build the random M2-shaped reference checkpoints of the benchmarks, plus a small BPE tokenizer so
text prompts work.

    python benchmarks/make_checkpoints.py --out checkpoints            # m2-small and m2-medium
    python benchmarks/make_checkpoints.py --out checkpoints --only m2-small
    python benchmarks/make_checkpoints.py --out checkpoints --shape m2-slice --layers 4 [--bf16]

m2-small / m2-medium are written by transformers (`save_pretrained`, seed 0, bf16). m2-slice has the
released model's exact widths (hidden 3072, 48/8 heads x 128, 256 experts x 1536 top-8, vocab 200,064,
rotary 64, theta 5e6) with `--layers` layers, in the official FP8 layout (`--bf16`: plain bf16),
written shard by shard by our own writer, never more than ~1 GB in memory (about 3.6 GB of FP8 a layer).
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


def build_slice(out: Path, layers: int, bf16: bool) -> Path:
    from rich.progress import Progress

    from minimax2.model.config import ModelConfig
    from minimax2.model.synth import write_random_checkpoint
    from minimax2.model.weights import checkpoint_targets
    from minimax2.train.tokenizer import SAMPLE_TEXT, save_tokenizer, train_tokenizer

    path = out / f"m2-slice-{layers}l-{'bf16' if bf16 else 'fp8'}"
    if (path / "config.json").exists():
        print(f"{path} exists, skipping")
        return path
    t = time.time()
    tok = train_tokenizer(SAMPLE_TEXT * 8, vocab_size=2048)
    cfg = ModelConfig(num_hidden_layers=layers, max_position_embeddings=196608, eos_token_id=[tok.token_to_id("[e~[")],
                      bos_token_id=tok.token_to_id("]~!b["))
    names = len(checkpoint_targets(cfg))
    with Progress() as bar:
        task = bar.add_task(f"writing {path.name}", total=names)
        write_random_checkpoint(path, cfg, fp8=not bf16, progress=lambda _name: bar.advance(task))
    save_tokenizer(tok, path, model_max_length=196608)
    size = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    print(f"m2-slice: {layers} layers, {size / 1e9:.1f} GB written to {path} in {time.time() - t:.0f}s")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="checkpoints", help="parent directory (default ./checkpoints)")
    ap.add_argument("--only", choices=list(SHAPES), help="build just this one of m2-small / m2-medium")
    ap.add_argument("--shape", choices=["m2-slice"], help="the released model's exact widths with --layers layers")
    ap.add_argument("--layers", type=int, default=1, help="layers of the m2-slice (default 1; 4 is ~17 GB of FP8)")
    ap.add_argument("--bf16", action="store_true", help="m2-slice in plain bf16 instead of the official FP8 layout")
    args = ap.parse_args()
    if args.shape == "m2-slice":
        build_slice(Path(args.out), args.layers, args.bf16)
        return
    for name in [args.only] if args.only else list(SHAPES):
        build(name, Path(args.out))


if __name__ == "__main__":
    main()
