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


def fill_fp8(model: MiniMaxM2, get, dtype: torch.dtype) -> None:
    """The official FP8 checkpoint served as released: every weight a view of the mapped shards (FP8
    projections and experts with their block scales; bf16 embeddings, norms, router and lm_head)."""
    from .experts import Fp8Experts
    from .forms import make_linear
    from .linear import Fp8Linear

    def keep(name: str) -> torch.nn.Parameter:
        t = get(name)
        return torch.nn.Parameter(t if t.dtype == dtype else t.to(dtype), requires_grad=False)

    def fp8(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return get(name + ".weight"), get(name + ".weight_scale_inv")

    cfg = model.cfg
    model.embed_tokens.weight = keep("model.embed_tokens.weight")
    model.norm.weight = keep("model.norm.weight")
    model.lm_head = make_linear(keep("lm_head.weight"), "float", dtype)
    for n, layer in enumerate(model.layers):
        p, a, moe = f"model.layers.{n}.", layer.attn, layer.moe
        layer.input_norm.weight = keep(p + "input_layernorm.weight")
        layer.post_norm.weight = keep(p + "post_attention_layernorm.weight")
        a.q_norm.weight, a.k_norm.weight = keep(p + "self_attn.q_norm.weight"), keep(p + "self_attn.k_norm.weight")
        a.qkv_proj = Fp8Linear([fp8(p + f"self_attn.{x}_proj") for x in "qkv"], dtype)
        a.o_proj = Fp8Linear([fp8(p + "self_attn.o_proj")], dtype)
        m = p + "block_sparse_moe."
        moe.gate = make_linear(keep(m + "gate.weight"), "float", dtype)
        moe.e_score_correction_bias = get(m + "e_score_correction_bias").float()
        parts = [[fp8(f"{m}experts.{e}.{w}") for e in range(cfg.num_local_experts)] for w in ("w1", "w3", "w2")]
        moe.experts = Fp8Experts(*([w for w, _ in ws] for ws in parts), *([s for _, s in ws] for ws in parts), dtype)
    model.bind_kernels()


def fill_bf16(model: MiniMaxM2, get) -> None:
    """A bf16 checkpoint served in bf16 (native kernels): every weight a view of the mapped shards, q/k/v
    as separate parts and each expert's w1 / w3 / w2 through the expert block's pointer tables."""
    from .experts import Bf16Experts
    from .forms import make_linear
    from .linear import Bf16Linear

    def keep(name: str) -> torch.nn.Parameter:
        return torch.nn.Parameter(get(name), requires_grad=False)

    cfg, bf16 = model.cfg, torch.bfloat16
    model.embed_tokens.weight = keep("model.embed_tokens.weight")
    model.norm.weight = keep("model.norm.weight")
    model.lm_head = make_linear(get("lm_head.weight"), "float", bf16)
    for n, layer in enumerate(model.layers):
        p, a, moe = f"model.layers.{n}.", layer.attn, layer.moe
        layer.input_norm.weight = keep(p + "input_layernorm.weight")
        layer.post_norm.weight = keep(p + "post_attention_layernorm.weight")
        a.q_norm.weight, a.k_norm.weight = keep(p + "self_attn.q_norm.weight"), keep(p + "self_attn.k_norm.weight")
        a.qkv_proj = Bf16Linear(parts=[get(p + f"self_attn.{x}_proj.weight") for x in "qkv"])
        a.o_proj = make_linear(get(p + "self_attn.o_proj.weight"), "float", bf16)
        m = p + "block_sparse_moe."
        moe.gate = make_linear(get(m + "gate.weight"), "float", bf16)
        moe.e_score_correction_bias = get(m + "e_score_correction_bias").float()
        moe.experts = Bf16Experts(*([get(f"{m}experts.{e}.{w}.weight") for e in range(cfg.num_local_experts)]
                                    for w in ("w1", "w3", "w2")))
    model.bind_kernels()


def mappable_bf16(cfg: ModelConfig, dtypes: dict[str, str]) -> bool:
    """Whether a checkpoint can be served in bf16 as views of its file: every weight stored in bf16 (the
    router's bias may be float32) and widths the native bf16 kernels take."""
    widths = (cfg.hidden_size, cfg.intermediate_size, cfg.q_size)
    return all(w % 32 == 0 for w in widths) and all(
        d == "BF16" or (d == "F32" and name.endswith("e_score_correction_bias")) for name, d in dtypes.items())


def load_bf16(cfg: ModelConfig, files: dict[str, Path], kv_bytes: int = 0, max_memory: int | None = None) -> MiniMaxM2:
    """A bf16 checkpoint (already validated) served in bf16 as views of its mapped shards."""
    check_memory(cfg, "float", torch.bfloat16, 128, kv_bytes, max_memory)
    maps = {f: MappedFile(f) for f in sorted(set(files.values()))}
    with torch.device("meta"):
        model = MiniMaxM2(cfg)
    with torch.no_grad():
        fill_bf16(model, lambda name: maps[files[name]].tensor(name))
    return model


def load_fp8(cfg: ModelConfig, files: dict[str, Path], dtype: torch.dtype, kv_bytes: int = 0,
             max_memory: int | None = None) -> MiniMaxM2:
    """An official FP8 checkpoint (already validated) in the fp8 form, as views of its mapped shards."""
    check_memory(cfg, "fp8", dtype, 128, kv_bytes, max_memory)
    maps = {f: MappedFile(f) for f in sorted(set(files.values()))}
    with torch.device("meta"):
        model = MiniMaxM2(cfg)
    with torch.no_grad():
        fill_fp8(model, lambda name: maps[files[name]].tensor(name), dtype)
    return model
