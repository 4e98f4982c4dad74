"""The mapping between the official checkpoint's tensor names and this model's parameters.

On disk (reference doc section 3) q/k/v are separate and each expert has w1/w3/w2; in memory q/k/v
are one fused projection and each expert's w1 and w3 are one [2I, H] matrix. Every on-disk tensor
maps to a (parameter, slice) pair here, both for loading and for saving, so the two can never
disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .config import ModelConfig
from .minimax_m2 import MiniMaxM2

_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.")

# Names of the 2-D weights that the official FP8 checkpoints store block-quantised.
FP8_WEIGHT_RE = re.compile(r"(self_attn\.[qkvo]_proj|block_sparse_moe\.experts\.\d+\.w[123])\.weight$")


@dataclass
class Target:
    shape: tuple[int, ...]
    view: Callable[[MiniMaxM2], torch.Tensor]  # the slice of a parameter this tensor fills


def layer_index(name: str) -> int | None:
    m = _LAYER_RE.match(name)
    return int(m.group(1)) if m else None


def checkpoint_targets(cfg: ModelConfig) -> dict[str, Target]:
    """Every tensor an M2 checkpoint must hold, with its expected shape and destination."""
    h, i, qs, kvs = cfg.hidden_size, cfg.intermediate_size, cfg.q_size, cfg.kv_size
    t: dict[str, Target] = {
        "model.embed_tokens.weight": Target((cfg.vocab_size, h), lambda m: m.embed_tokens.weight),
        "model.norm.weight": Target((h,), lambda m: m.norm.weight),
        "lm_head.weight": Target((cfg.vocab_size, h), lambda m: m.lm_head.weight),
    }
    for L in range(cfg.num_hidden_layers):
        p = f"model.layers.{L}."

        def layer(m, L=L):
            return m.layers[L]

        t[p + "input_layernorm.weight"] = Target((h,), lambda m, f=layer: f(m).input_norm.weight)
        t[p + "post_attention_layernorm.weight"] = Target((h,), lambda m, f=layer: f(m).post_norm.weight)
        t[p + "self_attn.q_proj.weight"] = Target((qs, h), lambda m, f=layer: f(m).attn.qkv_proj.weight[:qs])
        t[p + "self_attn.k_proj.weight"] = Target((kvs, h), lambda m, f=layer: f(m).attn.qkv_proj.weight[qs:qs + kvs])
        t[p + "self_attn.v_proj.weight"] = Target((kvs, h), lambda m, f=layer: f(m).attn.qkv_proj.weight[qs + kvs:])
        t[p + "self_attn.o_proj.weight"] = Target((h, qs), lambda m, f=layer: f(m).attn.o_proj.weight)
        t[p + "self_attn.q_norm.weight"] = Target((qs,), lambda m, f=layer: f(m).attn.q_norm.weight)
        t[p + "self_attn.k_norm.weight"] = Target((kvs,), lambda m, f=layer: f(m).attn.k_norm.weight)
        moe = p + "block_sparse_moe."
        t[moe + "gate.weight"] = Target((cfg.num_local_experts, h), lambda m, f=layer: f(m).moe.gate.weight)
        t[moe + "e_score_correction_bias"] = Target(
            (cfg.num_local_experts,), lambda m, f=layer: f(m).moe.e_score_correction_bias)
        for e in range(cfg.num_local_experts):
            x = f"{moe}experts.{e}."
            t[x + "w1.weight"] = Target((i, h), lambda m, f=layer, e=e: f(m).moe.experts.w13[e, :i])
            t[x + "w3.weight"] = Target((i, h), lambda m, f=layer, e=e: f(m).moe.experts.w13[e, i:])
            t[x + "w2.weight"] = Target((h, i), lambda m, f=layer, e=e: f(m).moe.experts.w2[e])
    return t


def is_ignored(name: str, cfg: ModelConfig) -> bool:
    """Tensors a real checkpoint may carry that the model does not use: MTP layers, RoPE caches."""
    L = layer_index(name)
    if L is not None and L >= cfg.num_hidden_layers:
        return True
    return name.endswith("rotary_emb.inv_freq") or name.startswith("model.mtp") or name.startswith("mtp.")


def hf_state_dict(model: MiniMaxM2) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's weights under the official on-disk names (views, no copies)."""
    for name, target in checkpoint_targets(model.cfg).items():
        yield name, target.view(model).detach()
