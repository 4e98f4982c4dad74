"""Zero-copy starts: where the file holds the serving form (the official FP8 as `fp8`, a bf16 checkpoint
in bf16 with the native kernels, a `convert`ed one), every weight is a view of the memory-mapped
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
                kv_bytes: int = 0, max_memory: int | None = None, head: str = "int8") -> MiniMaxM2:
    """A pre-quantised checkpoint (prequant.py) as views of its mapped shards."""
    maps = {f: MappedFile(f) for f in sorted(set(files.values()))}
    have = {name: tuple(maps[f].header[name]["shape"]) for name, f in files.items()
            if not name.startswith((PAD_PREFIX, "model.mtp"))}
    check_shapes(expected_shapes(cfg, form, group_size, head), have)
    check_memory(cfg, form, dtype, group_size, kv_bytes, max_memory, head)
    with torch.device("meta"):
        model = MiniMaxM2(cfg)
    with torch.no_grad():
        # torch's packed int8/int4 ops need 64-byte aligned weights: `convert` writes them so (no copy)
        fill_mapped(model, lambda name: maps[files[name]].tensor(name, align=64), form, group_size, dtype, head)
    return model


def fill_released(model: MiniMaxM2, get, dtype: torch.dtype, form: str, lm_head: str | None = None,
                  device: torch.device | str = "cpu") -> None:
    """A checkpoint served as it is stored, every weight a view of the mapped shards: "fp8" (the official
    FP8 projections and experts with their block scales) or "float" (bf16 weights in a bf16 model with
    the native kernels). Fused products keep their parts: q/k/v as separate views, each expert's
    w1 / w3 / w2 through the expert block's pointer tables. Embeddings, norms, router and lm_head are
    kept in the model dtype (the routing bias in float32); `lm_head="int8"` (or "int6") quantises lm_head
    instead, a chunk of rows at a time (the one copy: half (0.41 x) lm_head's bytes in anonymous memory). On a CUDA `device`
    ("fp8" only) each tensor is copied to the GPU as it is read, into fp8_cuda's forms."""
    from .experts import Bf16Experts, Fp8Experts
    from .forms import lm_head_form, make_linear
    from .fp8_cuda import Fp8CudaExperts, Fp8CudaLinear
    from .linear import Bf16Linear, Fp8Linear

    device = torch.device(device)
    cuda = device.type == "cuda"

    def keep(name: str) -> torch.nn.Parameter:
        t = get(name)
        return torch.nn.Parameter(t.to(device=device, dtype=dtype), requires_grad=False)

    def weight(name: str):  # name without ".weight"
        return (get(name + ".weight"), get(name + ".weight_scale_inv")) if form == "fp8" else get(name + ".weight")

    def proj(names: list[str]) -> torch.nn.Module:
        if cuda:
            return Fp8CudaLinear([weight(n) for n in names], device)
        return Fp8Linear([weight(n) for n in names], dtype) if form == "fp8" else Bf16Linear(parts=[weight(n)
                                                                                                  for n in names])

    cfg = model.cfg
    model.embed_tokens.weight = keep("model.embed_tokens.weight")
    model.norm.weight = keep("model.norm.weight")
    head_form = lm_head_form(form, lm_head)
    if head_form != "float":
        head = get("lm_head.weight")
        model.lm_head = make_linear(None, head_form, dtype, name="lm_head", rows=lambda a, b: head[a:b],
                                    shape=tuple(head.shape))
    else:
        model.lm_head = make_linear(keep("lm_head.weight"), "float", dtype)
    for n, layer in enumerate(model.layers):
        p, a, moe = f"model.layers.{n}.", layer.attn, layer.moe
        layer.input_norm.weight = keep(p + "input_layernorm.weight")
        layer.post_norm.weight = keep(p + "post_attention_layernorm.weight")
        a.q_norm.weight, a.k_norm.weight = keep(p + "self_attn.q_norm.weight"), keep(p + "self_attn.k_norm.weight")
        a.qkv_proj = proj([p + f"self_attn.{x}_proj" for x in "qkv"])
        a.o_proj = proj([p + "self_attn.o_proj"])
        m = p + "block_sparse_moe."
        moe.gate = make_linear(keep(m + "gate.weight"), "float", dtype)
        moe.e_score_correction_bias = get(m + "e_score_correction_bias").to(device=device, dtype=torch.float32)
        if cuda:
            moe.experts = Fp8CudaExperts(cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size, device)
            for e in range(cfg.num_local_experts):
                x = f"{m}experts.{e}."
                moe.experts.put(e, *(get(x + w + ".weight") for w in ("w1", "w3", "w2")),
                                *(get(x + w + ".weight_scale_inv") for w in ("w1", "w3", "w2")))
            moe.experts.finish()
            continue
        parts = [[weight(f"{m}experts.{e}.{w}") for e in range(cfg.num_local_experts)] for w in ("w1", "w3", "w2")]
        if form == "fp8":
            moe.experts = Fp8Experts(*([w for w, _ in ws] for ws in parts), *([s for _, s in ws] for ws in parts),
                                     dtype)
        else:
            moe.experts = Bf16Experts(*parts)
    model.bind_kernels()


def mappable_bf16(cfg: ModelConfig, dtypes: dict[str, str]) -> bool:
    """Whether a checkpoint can be served in bf16 as views of its file: every weight stored in bf16 (the
    router's bias may be float32) and widths the native bf16 kernels take."""
    widths = (cfg.hidden_size, cfg.intermediate_size, cfg.q_size)
    return all(w % 32 == 0 for w in widths) and all(
        d == "BF16" or (d == "F32" and name.endswith("e_score_correction_bias")) for name, d in dtypes.items())


def load_released(cfg: ModelConfig, files: dict[str, Path], dtype: torch.dtype, form: str, kv_bytes: int = 0,
                  max_memory: int | None = None, lm_head: str | None = None,
                  device: torch.device | str = "cpu") -> MiniMaxM2:
    """A checkpoint (already validated) in the form it is stored in ("fp8", or "float" for bf16), as views
    of its mapped shards (lm_head quantised when `lm_head` is "int8" or "int6"); on a CUDA `device`, FP8
    copied to the GPU."""
    check_memory(cfg, form, dtype, 128, kv_bytes, max_memory, lm_head, device)
    maps = {f: MappedFile(f) for f in sorted(set(files.values()))}
    with torch.device("meta"):
        model = MiniMaxM2(cfg)
    with torch.no_grad():
        fill_released(model, lambda name: maps[files[name]].tensor(name), dtype, form, lm_head, device)
    return model
