"""Weight-only int8 / int4 quantisation of a model already in memory (a trained model, a comparison).

Loading a checkpoint quantises while it reads (loader.py, `load_model(..., quantization=...)`), with
no float copy of the model. This converts a float-form model in place, layer by layer, through the
same builders (forms.py), releasing each layer's float weights as soon as it is done:

* int8: symmetric, one scale per output channel (`aten._weight_int8pack_mm`; native int8 kernels
  for decode rows);
* int4: asymmetric, one (scale, zero) pair per group of `group_size` input channels
  (`aten._weight_int4pack_mm_for_cpu`; native int4 kernels for decode rows).

Applied to the attention projections (fused qkv, o) and to every expert's gate/up and down
matrices; lm_head becomes int8 under both methods. Activations stay in the model dtype.
"""

from __future__ import annotations

import torch

from .forms import QUANTIZATIONS, ExpertsBuilder, check_form, lm_head_form, make_linear
from .linear import Int4Linear, Int8Linear, int8_rows  # noqa: F401 - re-exported for callers
from .minimax_m2 import MiniMaxM2

METHODS = QUANTIZATIONS


def quantize_model(model: MiniMaxM2, method: str, group_size: int = 128) -> MiniMaxM2:
    """Replace attention projections and experts by their `method` forms, layer by layer."""
    if method not in METHODS:
        raise ValueError(f"unknown quantization {method!r}; choose one of {', '.join(METHODS)}")
    return serving_model(model, method, group_size)


def _weight(lin) -> torch.Tensor:
    """A linear's whole weight (a mapped fused projection keeps q/k/v apart: concatenated here)."""
    parts = getattr(lin, "parts", None)
    return torch.cat(parts) if parts else lin.weight


def serving_model(model: MiniMaxM2, method: str = "float", group_size: int = 128) -> MiniMaxM2:
    """An in-memory float-form model (built or trained here) in its serving `method` form ("float": the
    model dtype's form, e.g. bf16 with the native kernels), for inference only."""
    check_form(method, model.device, group_size)
    dtype, cfg = model.dtype, model.cfg
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            a = layer.attn
            layer.moe.gate = make_linear(layer.moe.gate.weight, "float", dtype)
            a.qkv_proj = make_linear(_weight(a.qkv_proj), method, dtype, group_size, f"layers.{i}.qkv_proj")
            a.o_proj = make_linear(_weight(a.o_proj), method, dtype, group_size, f"layers.{i}.o_proj")
            old = layer.moe.experts
            b = ExpertsBuilder(method, cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size, dtype,
                               group_size=group_size)
            for e in range(cfg.num_local_experts):
                b.put(e, *old.expert_weights(e))
            layer.moe.experts = b.module()
            del old
        model.lm_head = make_linear(model.lm_head.weight, lm_head_form(method), dtype)
    model.bind_kernels()
    return model
