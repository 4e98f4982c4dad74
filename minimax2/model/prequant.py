"""Pre-quantised checkpoints: `minimax2 convert --to int8|int4` writes the serving form once, so every
later start maps it from disk (zero-copy) instead of quantising again.

Layout (safetensors, sharded like the official checkpoint, `quantization_config.quant_method` =
"minimax2" with `bits` and `group_size`). Tensors the serving form keeps in bf16 keep their official
names (embeddings, norms, router, routing bias). Quantised ones are stored fused and stacked per
layer, exactly as the kernels read them, under the official module path plus a documented suffix:

    lm_head.qweight [V, H] int8, lm_head.scales [V] bf16              (int8, the default under both)
    lm_head.{qweight [V, H/2], qweight_top [V, H/4], scales [V/64, H/64, 64, 2]}  (6-bit: --lm-head int6)
    model.layers.L.self_attn.qkv_proj.{qweight,scales}   q, k, v rows fused (q_proj, k_proj, v_proj)
    model.layers.L.self_attn.o_proj.{qweight,scales}
    model.layers.L.block_sparse_moe.experts.w13.{qweight,scales}   all experts, w1 and w3 rows fused
    model.layers.L.block_sparse_moe.experts.w2.{qweight,scales}

int8: qweight [N, K] int8, scales [N] (per output row, symmetric). int4: qweight [N, K/2] uint8 in
torch's CPU int4pack layout (tests/test_cpu_kernels.py pins it), scales [K/group, N, 2] bf16 as
(scale, zero) pairs; experts add a leading [E] dimension to both. A 6-bit lm_head is linear.int6_groups'
layout (`quantization_config.lm_head_bits` 6; 8 or absent: int8).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import torch

from .config import ModelConfig
from .fill import fill_layer, fill_top
from .forms import experts_module, make_linear, quantized_linear
from .linear import INT6_GROUP, Int6Linear
from .minimax_m2 import MiniMaxM2

QUANT_METHOD = "minimax2"
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
              "chat_template.jinja", "README.md")


HEAD_SUFFIXES = {"int8": ("qweight", "scales"), "int6": ("qweight", "qweight_top", "scales")}


def _q(mod) -> tuple[torch.Tensor, ...]:
    if hasattr(mod, "top"):
        return mod.packed, mod.top, mod.scale_zeros
    return (mod.weight, mod.scale) if hasattr(mod, "scale") else (mod.packed, mod.scale_zeros)


def _experts_q(ex) -> list[torch.Tensor]:
    return [ex.w13, ex.s13, ex.w2, ex.s2] if hasattr(ex, "s13") else [ex.p13, ex.sz13, ex.p2, ex.sz2]


def quantized_tensors(src: Path, read, cfg: ModelConfig, form: str, group_size: int,
                      head: str = "int8") -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of the pre-quantised checkpoint, one layer in memory at a time."""
    dtype, dev = torch.bfloat16, torch.device("cpu")
    with torch.device("meta"):
        model = MiniMaxM2(cfg)
    fill_top(model, read, form, dtype, dev, group_size, head)
    yield "model.embed_tokens.weight", model.embed_tokens.weight.data
    yield "model.norm.weight", model.norm.weight.data
    for suffix, t in zip(HEAD_SUFFIXES[head], _q(model.lm_head)):
        yield f"lm_head.{suffix}", t
    del model.embed_tokens, model.lm_head
    for n in range(cfg.num_hidden_layers):
        fill_layer(model, n, read, form, dtype, dev, group_size)
        layer, p = model.layers[n], f"model.layers.{n}."
        yield p + "input_layernorm.weight", layer.input_norm.weight.data
        yield p + "post_attention_layernorm.weight", layer.post_norm.weight.data
        yield p + "self_attn.q_norm.weight", layer.attn.q_norm.weight.data
        yield p + "self_attn.k_norm.weight", layer.attn.k_norm.weight.data
        for proj in ("qkv_proj", "o_proj"):
            for suffix, t in zip(("qweight", "scales"), _q(getattr(layer.attn, proj))):
                yield f"{p}self_attn.{proj}.{suffix}", t
        m = p + "block_sparse_moe."
        yield m + "gate.weight", layer.moe.gate.weight.detach()
        yield m + "e_score_correction_bias", layer.moe.e_score_correction_bias
        for name, t in zip(("w13.qweight", "w13.scales", "w2.qweight", "w2.scales"), _experts_q(layer.moe.experts)):
            yield f"{m}experts.{name}", t
        model.layers[n] = torch.nn.Identity()  # this layer's buffers go once the writer has them


def write_config(src: Path, dst: Path, form: str, group_size: int, head: str = "int8") -> None:
    raw = json.loads((src / "config.json").read_text())
    raw["quantization_config"] = {"quant_method": QUANT_METHOD, "bits": 8 if form == "int8" else 4,
                                  "group_size": group_size if form == "int4" else None,
                                  "lm_head_bits": 6 if head == "int6" else 8,
                                  "layout": "fused q/k/v and w1/w3, experts stacked per layer; int4 in torch's CPU "
                                            "int4pack layout; see minimax2/model/prequant.py",
                                  "modules_to_not_convert": ["embed_tokens", "norm", "gate", "e_score_correction_bias"]}
    (dst / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    for name in SIDE_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)


def expected_shapes(cfg: ModelConfig, form: str, group_size: int, head: str = "int8") -> dict[str, tuple[int, ...]]:
    """Every tensor a pre-quantised checkpoint of `cfg` holds, with its shape (validated before loading)."""
    h, i, e, v, qkv = (cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts, cfg.vocab_size,
                       cfg.q_size + 2 * cfg.kv_size)

    def q(n: int, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return ((n, k), (n,)) if form == "int8" else ((n, k // 2), (k // group_size, n, 2))

    out = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.qweight": (v, h),
           "lm_head.scales": (v,)}
    if head == "int6":
        out.update({"lm_head.qweight": (v, h // 2), "lm_head.qweight_top": (v, h // 4),
                    "lm_head.scales": (v // 64, h // INT6_GROUP, 64, 2)})
    for n in range(cfg.num_hidden_layers):
        p = f"model.layers.{n}."
        out.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                    p + "self_attn.q_norm.weight": (cfg.q_size,), p + "self_attn.k_norm.weight": (cfg.kv_size,),
                    p + "block_sparse_moe.gate.weight": (e, h), p + "block_sparse_moe.e_score_correction_bias": (e,)})
        for proj, (rows, cols) in (("qkv_proj", (qkv, h)), ("o_proj", (h, cfg.q_size))):
            out[f"{p}self_attn.{proj}.qweight"], out[f"{p}self_attn.{proj}.scales"] = q(rows, cols)
        for name, (rows, cols) in (("w13", (2 * i, h)), ("w2", (h, i))):
            wq, ws = q(rows, cols)
            out[f"{p}block_sparse_moe.experts.{name}.qweight"] = (e, *wq)
            out[f"{p}block_sparse_moe.experts.{name}.scales"] = (e, *ws)
    return out


def form_of(cfg: ModelConfig) -> tuple[str, int] | None:
    """("int8" | "int4", group size) of a pre-quantised checkpoint's config, None for any other."""
    qc = cfg.quantization_config or {}
    if qc.get("quant_method") != QUANT_METHOD:
        return None
    return ("int8", 128) if qc.get("bits") == 8 else ("int4", int(qc.get("group_size") or 128))


def head_of(cfg: ModelConfig) -> str:
    """lm_head's form in a pre-quantised checkpoint: "int6" or "int8" (`lm_head_bits` 6, or 8 / absent)."""
    bits = (cfg.quantization_config or {}).get("lm_head_bits", 8)
    if bits not in (6, 8):
        raise ValueError(f"quantization_config.lm_head_bits is {bits!r}; this version reads 8 (int8) or 6 (int6) "
                         f"(convert the original checkpoint again)")
    return "int6" if bits == 6 else "int8"


def fill_mapped(model: MiniMaxM2, get, form: str, group_size: int, dtype: torch.dtype, head: str = "int8") -> None:
    """Every weight of `model` a view of the mapped files (`get(name)`); only dtype changes copy."""
    def keep(t: torch.Tensor) -> torch.Tensor:
        return t if t.dtype == dtype or t.dtype in (torch.int8, torch.uint8) else t.to(dtype)

    nn = torch.nn
    model.embed_tokens.weight = nn.Parameter(keep(get("model.embed_tokens.weight")), requires_grad=False)
    model.norm.weight = nn.Parameter(keep(get("model.norm.weight")), requires_grad=False)
    parts = [get(f"lm_head.{x}") for x in HEAD_SUFFIXES[head]]
    model.lm_head = (Int6Linear(None, dtype, quantized=(parts[0], parts[1], keep(parts[2]))) if head == "int6" else
                     quantized_linear("int8", parts[0], keep(parts[1]), dtype, group_size))
    for n, layer in enumerate(model.layers):
        p, a, moe = f"model.layers.{n}.", layer.attn, layer.moe
        for mod, name in ((layer.input_norm, "input_layernorm"), (layer.post_norm, "post_attention_layernorm"),
                          (a.q_norm, "self_attn.q_norm"), (a.k_norm, "self_attn.k_norm")):
            mod.weight = nn.Parameter(keep(get(p + name + ".weight")), requires_grad=False)
        for proj in ("qkv_proj", "o_proj"):
            q, s = get(f"{p}self_attn.{proj}.qweight"), keep(get(f"{p}self_attn.{proj}.scales"))
            setattr(a, proj, quantized_linear(form, q, s, dtype, group_size))
        m = p + "block_sparse_moe."
        moe.gate = make_linear(keep(get(m + "gate.weight")), "float", dtype)
        moe.e_score_correction_bias = get(m + "e_score_correction_bias").float()
        names = ("w13.qweight", "w13.scales", "w2.qweight", "w2.scales")
        moe.experts = experts_module(form, [keep(get(f"{m}experts.{x}")) for x in names], dtype, group_size)
    model.bind_kernels()


def convert(src: str | Path, dst: str | Path, form: str, group_size: int = 128, max_shard_bytes: int = 2**30,
            progress: bool = False, lm_head: str | None = None) -> Path:
    """Write `src` (bf16, float32 or the official FP8) pre-quantised to `form` at `dst`, one layer in
    memory at a time (the loader's own builders, so a converted checkpoint loads to the same logits as
    quantising at load). `lm_head`: "int8" (the default) or "int6"."""
    from contextlib import ExitStack

    from .forms import check_form, lm_head_form
    from .loader import Reader, _open, checkpoint_files, validate
    from .progress import LoadProgress
    from .writer import write_tensors

    src, dst = Path(src), Path(dst)
    if form not in ("int8", "int4"):
        raise ValueError(f"convert --to takes int8 or int4, got {form!r}")
    check_form(form, "cpu", group_size, lm_head)
    head = lm_head_form(form, lm_head)
    if head not in HEAD_SUFFIXES:
        raise ValueError(f"a pre-quantised checkpoint keeps lm_head in int8 or int6, not {lm_head}")
    cfg = ModelConfig.from_file(src)
    if form_of(cfg) is not None:
        raise ValueError(f"{src} is already pre-quantised; convert the original checkpoint")
    files = checkpoint_files(src)
    with ExitStack() as stack:
        handles = {f: _open(f, stack) for f in sorted(set(files.values()))}
        validate(cfg, {n: tuple(handles[f].get_slice(n).get_shape()) for n, f in files.items()})
        block = tuple(cfg.quantization_config["weight_block_size"]) if cfg.quantization_config else (128, 128)
        bar = LoadProgress(sum(f.stat().st_size for f in handles), "converting") if progress else None
        try:
            read = Reader(files, handles, block, bar)
            with torch.no_grad():
                write_tensors(quantized_tensors(src, read, cfg, form, group_size, head), dst, max_shard_bytes,
                              aligned=True)
        finally:
            if bar is not None:
                bar.close()
    write_config(src, dst, form, group_size, head)
    return dst
