"""The memory guard: a model is loaded only when its serving form and KV cache fit in the memory this
process may use, never to be OOM-killed halfway through a 100 GB read.

What may be used is the smaller of the kernel's MemAvailable and the cgroup's limit less its usage
(containers), or `max_memory` when the caller sets one. The refusal names both figures and the
`--quantization` that would fit.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import ModelConfig
from .linear import INT6_GROUP

GiB = 2**30


class InsufficientMemoryError(MemoryError, ValueError):
    """The serving form plus the KV cache would not fit in the memory this process may use."""


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> tuple[int, str]:
    """(bytes this process may still allocate, where the figure comes from)."""
    avail, source = None, "MemAvailable"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            room = max(limit - usage, 0)
            if avail is None or room < avail:
                avail, source = room, "the cgroup limit"
    if avail is None:  # not Linux: trust the caller
        return 2**62, "unknown"
    return avail, source


def _proj_bytes(n: int, k: int, form: str, el: int, group: int) -> int:
    if form == "int8":
        return n * k + n * el
    if form == "int4":
        return n * k // 2 + (k // group) * n * 2 * el
    if form == "int6":  # lm_head only (linear.int6_groups)
        return n * k * 3 // 4 + (k // INT6_GROUP) * n * 2 * el
    if form == "fp8":
        return n * k + (-(-n // 128)) * (-(-k // 128)) * 4
    return n * k * el


def serving_bytes(cfg: ModelConfig, form: str, dtype: torch.dtype = torch.bfloat16, group_size: int = 128,
                  lm_head: str | None = None) -> int:
    """Bytes of the model's weights in `form` ("float" = the model dtype, "fp8", "int8", "int4"), lm_head in
    `forms.lm_head_form(form, lm_head)`."""
    from .forms import lm_head_form

    el = torch.empty((), dtype=dtype).element_size()
    h, i, e, v = cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts, cfg.vocab_size
    qs, kvs = cfg.q_size, cfg.kv_size
    layer = (_proj_bytes(qs + 2 * kvs, h, form, el, group_size) + _proj_bytes(h, qs, form, el, group_size)
             + e * (_proj_bytes(2 * i, h, form, el, group_size) + _proj_bytes(h, i, form, el, group_size))
             + e * h * el + e * 4 + (2 * h + qs + kvs) * el)
    head = _proj_bytes(v, h, lm_head_form(form, lm_head), el, group_size)
    return cfg.num_hidden_layers * layer + v * h * el + head + h * el


def gpu_memory(device: torch.device) -> tuple[int, str]:
    free, _ = torch.cuda.mem_get_info(device)
    return free, f"free memory on {device}"


def check_memory(cfg: ModelConfig, form: str, dtype: torch.dtype, group_size: int, kv_bytes: int = 0,
                 max_memory: int | None = None, lm_head: str | None = None,
                 device: torch.device | str = "cpu") -> None:
    """Raise InsufficientMemoryError naming both figures and a quantization that would fit (on a CUDA
    `device`, against the GPU's free memory)."""
    need = serving_bytes(cfg, form, dtype, group_size, lm_head) + kv_bytes
    device = torch.device(device)
    avail, source = ((max_memory, "max_memory") if max_memory is not None
                     else gpu_memory(device) if device.type == "cuda" else available_memory())
    if need <= avail:
        return
    fits = [q for q in (("int8", "int4") if device.type == "cpu" else ())
            if serving_bytes(cfg, q, dtype, group_size, lm_head) + kv_bytes <= avail
            and q != form]  # with the lm_head asked for
    hint = (f"--quantization {fits[0]} would fit ({size(serving_bytes(cfg, fits[0], dtype, group_size, lm_head))} "
            f"of weights)" if fits else "no quantization fits; lower --kv-cache-gb or use a machine with more memory")
    shown = str(dtype).removeprefix("torch.").replace("bfloat16", "bf16") if form == "float" else form
    raise InsufficientMemoryError(
        f"not enough memory to load this model as {shown}: it needs {size(need)} "
        f"({size(need - kv_bytes)} of weights + {size(kv_bytes)} of KV cache) but only "
        f"{size(avail)} are available ({source}); {hint}")


def size(n: int) -> str:
    """Bytes in GiB, or MiB under one GiB (a small model's figures would all read 0.0 GiB)."""
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / 2**20:.1f} MiB"
