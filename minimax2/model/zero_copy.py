"""Zero-copy starts: where the file holds the serving form, every weight is a view of the memory-mapped
shards (mapped.py). Nothing is read up front; anonymous memory after the load is the KV cache plus
what dtype changes copy, and processes serving one checkpoint share its pages.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import ModelConfig
from .mapped import PAD_PREFIX, MappedFile
from .memory import check_memory
from .minimax_m2 import MiniMaxM2
from .prequant import expected_shapes, fill_mapped


def check_shapes(want: dict[str, tuple[int, ...]], have: dict[str, tuple[int, ...]]) -> None:
    from .loader import CheckpointError

    for name, shape in have.items():
        if name not in want:
            raise CheckpointError(f"unexpected tensor {name} with shape {list(shape)} in a pre-quantised checkpoint")
        if tuple(shape) != want[name]:
            raise CheckpointError(f"tensor {name} has shape {list(shape)}, expected {list(want[name])}")
    missing = [n for n in want if n not in have]
    if missing:
        raise CheckpointError(f"missing tensor {missing[0]} with expected shape {list(want[missing[0]])}"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


def load_mapped(cfg: ModelConfig, files: dict[str, Path], form: str, group_size: int, dtype: torch.dtype,
                kv_bytes: int = 0, max_memory: int | None = None) -> MiniMaxM2:
    """A pre-quantised checkpoint (prequant.py) as views of its mapped shards."""
    maps = {f: MappedFile(f) for f in sorted(set(files.values()))}
    have = {name: tuple(maps[f].header[name]["shape"]) for name, f in files.items()
            if not name.startswith((PAD_PREFIX, "model.mtp"))}
    check_shapes(expected_shapes(cfg, form, group_size), have)
    check_memory(cfg, form, dtype, group_size, kv_bytes, max_memory)
    with torch.device("meta"):
        model = MiniMaxM2(cfg)
    with torch.no_grad():
        # torch's packed int8/int4 ops need 64-byte aligned weights: `convert` writes them so (no copy)
        fill_mapped(model, lambda name: maps[files[name]].tensor(name, align=64), form, group_size, dtype)
    return model
