"""Load an M2 checkpoint in the official Hugging Face layout: safetensors, sharded or not, bf16/fp32 or
FP8 block-quantised.

The whole checkpoint is validated against the config before a byte of weights is read (every tensor
present, none unexpected, every shape right), so errors name the tensor and both shapes instead of
surfacing as a matmul failure. The model is built on the meta device and filled tensor by tensor
from memory-mapped files, so peak memory stays near the final model size.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .config import ModelConfig
from .fp8 import FP8_DTYPE, dequantize, scale_shape
from .minimax_m2 import MiniMaxM2
from .weights import checkpoint_targets, is_ignored

SCALE_SUFFIX = "_scale_inv"  # "x.weight" is paired with "x.weight_scale_inv"


class CheckpointError(ValueError):
    """A checkpoint that does not match its config or cannot be read; the message says which tensor/file."""


def checkpoint_files(path: Path) -> dict[str, Path]:
    """Map every tensor name to the safetensors file holding it."""
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index ({e})") from e
        files = {name: path / fname for name, fname in weight_map.items()}
        for f in sorted(set(files.values())):
            if not f.exists():
                raise CheckpointError(f"{index} names shard {f.name}, which does not exist")
        return files
    single = path / "model.safetensors"
    if single.exists():
        with ExitStack() as stack:
            return {name: single for name in _open(single, stack).keys()}
    found = sorted(p.name for p in path.glob("*.safetensors"))
    raise CheckpointError(f"no model.safetensors or model.safetensors.index.json in {path}"
                          + (f" (found {found}; sharded checkpoints need their index)" if found else ""))


def _open(file: Path, stack: ExitStack):
    try:
        return stack.enter_context(safe_open(str(file), framework="pt"))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: cannot read safetensors file, it is truncated or corrupt ({e})") from e


def _read(handle, name: str, file: Path) -> torch.Tensor:
    try:
        return handle.get_tensor(name)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{file}: cannot read tensor {name} ({e})") from e


def validate(cfg: ModelConfig, shapes: dict[str, tuple[int, ...]]) -> None:
    """Raise CheckpointError naming the first missing, unexpected or mis-shaped tensor."""
    targets = checkpoint_targets(cfg)
    block = tuple(cfg.quantization_config["weight_block_size"]) if cfg.quantization_config else None
    for name, shape in shapes.items():
        if is_ignored(name, cfg):
            continue
        if name.endswith(SCALE_SUFFIX):
            base = name[: -len(SCALE_SUFFIX)]
            if base not in targets:
                raise CheckpointError(f"unexpected tensor {name}: no weight {base} to scale")
            want = scale_shape(targets[base].shape, block or (128, 128))
            if shape != want:
                raise CheckpointError(f"tensor {name} has shape {list(shape)}, expected {list(want)} "
                                      f"(block scales of a {list(targets[base].shape)} weight)")
            continue
        if name not in targets:
            raise CheckpointError(f"unexpected tensor {name} with shape {list(shape)}: not part of the "
                                  f"MiniMax-M2 layout for this config")
        if shape != targets[name].shape:
            raise CheckpointError(f"tensor {name} has shape {list(shape)}, expected {list(targets[name].shape)}")
    missing = [n for n in targets if n not in shapes]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"missing tensor {missing[0]} with expected shape {list(targets[missing[0]].shape)}{more}")


def load_model(path: str | Path, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu",
               progress: bool = False) -> MiniMaxM2:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    cfg = ModelConfig.from_file(path)
    files = checkpoint_files(path)
    with ExitStack() as stack:
        handles = {f: _open(f, stack) for f in sorted(set(files.values()))}
        shapes = {}
        for name, f in files.items():
            try:
                shapes[name] = tuple(handles[f].get_slice(name).get_shape())
            except (SafetensorError, OSError) as e:
                raise CheckpointError(f"{f}: tensor {name} listed in the index is not in the file ({e})") from e
        validate(cfg, shapes)
        with torch.device("meta"):
            model = MiniMaxM2(cfg).to(dtype)
        for layer in model.layers:  # the routing bias stays float32, as in the reference
            layer.moe.e_score_correction_bias = layer.moe.e_score_correction_bias.float()
        model.to_empty(device=device)
        block = tuple(cfg.quantization_config["weight_block_size"]) if cfg.quantization_config else (128, 128)
        targets = checkpoint_targets(cfg)
        names = list(targets)
        bar = _progress(len(names)) if progress else None
        with torch.no_grad():
            for n, name in enumerate(names):
                f = files[name]
                t = _read(handles[f], name, f)
                if t.dtype == FP8_DTYPE:
                    scale_name = name + SCALE_SUFFIX
                    if scale_name not in files:
                        raise CheckpointError(f"tensor {name} is float8 but {scale_name} is missing")
                    t = dequantize(t, _read(handles[files[scale_name]], scale_name, files[scale_name]), block)
                dst = targets[name].view(model)
                dst.copy_(t.to(dst.dtype))
                if bar is not None and n % 64 == 0:
                    bar[0].update(bar[1], completed=n + 1)
        if bar is not None:
            bar[0].stop()
    model.eval()
    return model


def _progress(total: int):
    from rich.progress import Progress

    p = Progress(transient=True)
    task = p.add_task("loading weights", total=total)
    p.start()
    return p, task
