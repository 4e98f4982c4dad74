"""Load an M2 checkpoint in the official Hugging Face layout: safetensors, sharded or not, bf16/fp32 or
FP8 block-quantised.

The whole checkpoint is validated against the config before a byte of weights is read (every tensor
present, none unexpected, every shape right), so errors name the tensor and both shapes instead of
surfacing as a matmul failure. The model is built on the meta device and each tensor is read from
its memory-mapped shard, dequantized when it is FP8, put into its serving form (quantized when asked)
and written into its final buffer (fill.py), one tensor or one expert in flight: no float copy of a
quantized model ever exists.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .config import ModelConfig
from .fill import fill
from .forms import check_form, default_form, native_bf16
from .fp8 import FP8_DTYPE, dequantize, scale_shape
from .linear import int8_activations as int8_activations_for
from .memory import check_memory
from .minimax_m2 import MiniMaxM2
from .prequant import form_of, head_of
from .zero_copy import load_mapped, load_released, mappable_bf16
from .progress import LoadProgress
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


class Reader:
    """Tensors of a checkpoint by name, FP8 ones dequantized, whole or a range of rows at a time, with
    the bytes read reported to a progress bar."""

    def __init__(self, files: dict[str, Path], handles: dict, block: tuple[int, int], bar=None):
        self.files, self.handles, self.block, self.bar = files, handles, block, bar

    def _slice(self, name: str, a: int | None = None, b: int | None = None) -> torch.Tensor:
        f = self.files[name]
        try:
            t = self.handles[f].get_tensor(name) if a is None else self.handles[f].get_slice(name)[a:b]
        except (SafetensorError, OSError, RuntimeError) as e:
            raise CheckpointError(f"{f}: cannot read tensor {name} ({e})") from e
        if self.bar is not None:
            self.bar.advance(t.numel() * t.element_size())
        return t

    def __call__(self, name: str, a: int | None = None, b: int | None = None) -> torch.Tensor:
        """The tensor (rows [a, b) when given; a a multiple of the FP8 block height), dequantized."""
        t = self._slice(name, a, b)
        if t.dtype != FP8_DTYPE:
            return t
        scale_name = name + SCALE_SUFFIX
        if scale_name not in self.files:
            raise CheckpointError(f"tensor {name} is float8 but {scale_name} is missing")
        br = self.block[0]
        s = self._slice(scale_name, None if a is None else a // br, None if a is None else -(-b // br))
        return dequantize(t, s, self.block)


def load_model(path: str | Path, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu",
               progress: bool = False, quantization: str | None = None, group_size: int = 128,
               kv_bytes: int = 0, max_memory: int | None = None, lm_head: str | None = None,
               int8_activations: bool | None = None) -> MiniMaxM2:
    """Load a checkpoint straight into its serving form: `quantization` None keeps the weights in `dtype`
    (bf16 on a CPU with the native kernels gets their forms; an official FP8 checkpoint loaded in bf16 on
    such a CPU is served as released, "fp8"), "int8" / "int4" quantise each tensor as it is read, "fp8"
    maps the FP8 weights and their block scales as they are on disk (on a Hopper GPU, copies them there as they
    are: fp8_cuda.py). Before reading, the serving form plus `kv_bytes` is checked against the memory this process
    may use (`max_memory` bytes when given): InsufficientMemoryError instead of an OOM kill. `lm_head`
    ("bf16", "int8" or "int6") overrides lm_head's form (forms.lm_head_form): int8 under int8/int4, else bf16.
    `int8_activations`: the int8, int4 and 6-bit matrices (attention and experts under int8 and int4, lm_head
    under int8/int4 or `lm_head="int8"|"int6"`) quantise their decode activations to int8 instead of int16
    (linear.int8_activations); None (the default) does so under int4 on a CPU, as llama.cpp does for Q4_0
    (there the weights' own rounding dwarfs the activations'), and not under int8."""
    path = Path(path)
    act8 = int8_activations if int8_activations is not None else int4_on_cpu(path, quantization, device)
    with int8_activations_for(act8):
        return _load(path, dtype, device, progress, quantization, group_size, kv_bytes, max_memory, lm_head,
                     bool(int8_activations))


def int4_on_cpu(path: Path, quantization: str | None, device: str | torch.device) -> bool:
    """Whether this load serves int4 on a CPU (quantised at load or pre-quantised): int8 activations by default."""
    if torch.device(device).type != "cpu":
        return False
    if quantization is not None:
        return quantization == "int4"
    try:
        pre = form_of(ModelConfig.from_file(path))
    except (OSError, ValueError):
        return False  # _load says what is wrong with the checkpoint
    return pre is not None and pre[0] == "int4"


def _load(path: Path, dtype: torch.dtype, device: str | torch.device, progress: bool, quantization: str | None,
          group_size: int, kv_bytes: int, max_memory: int | None, lm_head: str | None, act8: bool) -> MiniMaxM2:
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {path} " + ("is a file, not a directory" if path.exists()
                                                                   else "does not exist"))
    cfg = ModelConfig.from_file(path)
    files = checkpoint_files(path)
    pre = form_of(cfg)
    if pre is not None:  # written by `minimax2 convert`: the file is the serving form, mapped as it is
        try:
            head = head_of(cfg)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from e
        if quantization not in (None, pre[0]) or torch.device(device).type != "cpu" or lm_head not in (None, head):
            raise CheckpointError(f"{path} is pre-quantised to {pre[0]} (lm_head {head}) for CPUs; load it without "
                                  f"--quantization and --lm-head (or convert the original checkpoint again)")
        model = load_mapped(cfg, files, pre[0], pre[1], dtype, kv_bytes, max_memory, head)
        model.eval()
        return model
    fp8_ckpt = (cfg.quantization_config or {}).get("quant_method") == "fp8"
    form = "float" if quantization == "bf16" else quantization or default_form(fp8_ckpt, dtype, device, cfg)
    if form == "fp8" and not fp8_ckpt:
        raise CheckpointError(f"--quantization fp8 serves an FP8 checkpoint as released, and {path} is not one "
                              f"(`minimax2 convert --to fp8` makes one)")
    check_form(form, device, group_size, lm_head, cfg, act8)
    with ExitStack() as stack:
        handles = {f: _open(f, stack) for f in sorted(set(files.values()))}
        shapes, dtypes = {}, {}
        for name, f in files.items():
            try:
                t = handles[f].get_slice(name)
                shapes[name], dtypes[name] = tuple(t.get_shape()), t.get_dtype()
            except (SafetensorError, OSError) as e:
                raise CheckpointError(f"{f}: tensor {name} listed in the index is not in the file ({e})") from e
        validate(cfg, shapes)
        used = {name: d for name, d in dtypes.items() if not is_ignored(name, cfg)}
        if form == "fp8" or (form == "float" and native_bf16(dtype, device) and mappable_bf16(cfg, used)):
            # the file is the serving form: mapped, nothing read up front
            model = load_released(cfg, files if form == "fp8" else {n: files[n] for n in used}, dtype, form,
                                  kv_bytes, max_memory, lm_head, device)
            model.eval()
            return model
        check_memory(cfg, form, dtype, group_size, kv_bytes, max_memory, lm_head, device)
        block = tuple(cfg.quantization_config["weight_block_size"]) if cfg.quantization_config else (128, 128)
        bar = LoadProgress(sum(f.stat().st_size for f in handles)) if progress else None
        with torch.device("meta"):
            model = MiniMaxM2(cfg)
        try:
            with torch.no_grad():
                fill(model, Reader(files, handles, block, bar), form, dtype, torch.device(device), group_size, lm_head)
        finally:
            if bar is not None:
                bar.close()
    model.eval()
    return model
