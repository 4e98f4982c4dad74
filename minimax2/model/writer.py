"""Write checkpoints in the official Hugging Face M2 layout, optionally FP8 block-quantised.

`save_checkpoint` is what the trainer and the random-checkpoint builder use; `convert_to_fp8`
rewrites an existing checkpoint the way MiniMax ships theirs (attention projections and experts in
float8_e4m3fn with `weight_scale_inv` block scales; gate, routing bias, norms, embeddings and lm_head
untouched), so FP8 loading is tested on files made exactly like the real ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import torch
from safetensors.torch import save_file

from .config import ModelConfig
from .fp8 import DEFAULT_BLOCK, quantize
from .loader import Reader, _open, checkpoint_files
from .mapped import save_aligned
from .weights import FP8_WEIGHT_RE

SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
              "chat_template.jinja", "README.md", "MODEL_CARD.md")


def write_tensors(tensors: Iterable[tuple[str, torch.Tensor]], out: Path, max_shard_bytes: int | None = None,
                  aligned: bool = False) -> list[Path]:
    """Stream (name, tensor) pairs into safetensors shards, holding at most one shard in memory.

    Writes `model.safetensors`, or `model-0000i-of-0000n.safetensors` plus the index when the
    tensors exceed `max_shard_bytes`.
    """
    out.mkdir(parents=True, exist_ok=True)
    parts: list[tuple[Path, list[str]]] = []
    shard: dict[str, torch.Tensor] = {}
    size = total = 0

    def flush():
        p = out / f".part-{len(parts):05d}.safetensors"
        if aligned:  # every tensor 64-byte aligned when mapped (pre-quantised checkpoints, mapped.py)
            save_aligned(shard, p)
        else:
            save_file(shard, str(p), metadata={"format": "pt"})
        parts.append((p, list(shard)))

    for name, t in tensors:
        nbytes = t.numel() * t.element_size()
        if max_shard_bytes and shard and size + nbytes > max_shard_bytes:
            flush()
            shard, size = {}, 0
        shard[name] = t.contiguous()
        size += nbytes
        total += nbytes
    flush()
    if len(parts) == 1:
        final = out / "model.safetensors"
        parts[0][0].replace(final)
        return [final]
    weight_map, paths = {}, []
    for n, (p, names) in enumerate(parts, 1):
        final = out / f"model-{n:05d}-of-{len(parts):05d}.safetensors"
        p.replace(final)
        paths.append(final)
        weight_map.update({name: final.name for name in names})
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return paths


def save_checkpoint(model, out: str | Path, max_shard_bytes: int | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Save a MiniMaxM2 module as config.json + safetensors under the official names."""
    from .weights import hf_state_dict

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(model.cfg.to_hf_dict(), indent=2) + "\n")

    def cast(items: Iterator[tuple[str, torch.Tensor]]):
        for name, t in items:
            keep_f32 = name.endswith("e_score_correction_bias")
            yield name, t.float() if keep_f32 else (t.to(dtype) if dtype else t)

    write_tensors(cast(hf_state_dict(model)), out, max_shard_bytes)
    return out


def _fp8_tensors(src: Path, block: tuple[int, int]) -> Iterator[tuple[str, torch.Tensor]]:
    from contextlib import ExitStack

    files = checkpoint_files(src)
    with ExitStack() as stack:
        read = Reader(files, {f: _open(f, stack) for f in set(files.values())}, block)
        for name in files:
            t = read(name)
            if FP8_WEIGHT_RE.search(name) and t.dim() == 2:
                q, scale = quantize(t, block)
                yield name, q
                yield name + "_scale_inv", scale
            else:
                yield name, t


def convert_to_fp8(src: str | Path, dst: str | Path, block: tuple[int, int] = DEFAULT_BLOCK,
                   max_shard_bytes: int | None = None) -> Path:
    src, dst = Path(src), Path(dst)
    cfg = ModelConfig.from_file(src)
    if cfg.quantization_config:
        raise ValueError(f"{src} is already quantised ({cfg.quantization_config.get('quant_method')})")
    write_tensors(_fp8_tensors(src, block), dst, max_shard_bytes)
    raw = json.loads((src / "config.json").read_text())
    raw["quantization_config"] = {"quant_method": "fp8", "fmt": "float8_e4m3fn", "activation_scheme": "dynamic",
                                  "weight_block_size": list(block),
                                  "modules_to_not_convert": ["gate", "e_score_correction_bias", "lm_head"]}
    (dst / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    for name in SIDE_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    return dst
