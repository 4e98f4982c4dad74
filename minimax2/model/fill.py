"""Fill a meta-device model from a checkpoint, each tensor straight into its serving form.

The model arrives built on the meta device (no memory). Norms, embeddings, the router and its bias
are read and set in the model dtype (the bias in float32, as in the reference); attention projections
and expert stacks are built by their form's builder (forms.py) from the tensors read one at a time
(q/k/v fused, each expert's w1/w3 fused); lm_head is quantised a chunk of rows at a time. Nothing of
the model is left on the meta device afterwards.
"""

from __future__ import annotations

import torch
from torch import nn

from .forms import ExpertsBuilder, lm_head_form, make_linear
from .minimax_m2 import MiniMaxM2


def _param(t: torch.Tensor, dtype: torch.dtype, device: torch.device) -> nn.Parameter:
    return nn.Parameter(t.to(device=device, dtype=dtype), requires_grad=False)


def fill(model: MiniMaxM2, read, form: str, dtype: torch.dtype, device: torch.device, group_size: int,
         lm_head: str | None = None) -> None:
    """`read(name, a=None, b=None)` returns a checkpoint tensor (rows [a, b)) as float, dequantized."""
    fill_top(model, read, form, dtype, device, group_size, lm_head)
    for n in range(len(model.layers)):
        fill_layer(model, n, read, form, dtype, device, group_size)
    left = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"loader bug: {left[:3]} were not filled from the checkpoint")
    model.bind_kernels()


def fill_top(model: MiniMaxM2, read, form: str, dtype: torch.dtype, device: torch.device, group_size: int,
             lm_head: str | None = None) -> None:
    """Embeddings, the final norm and lm_head (in `lm_head_form`, quantised a chunk of rows at a time)."""
    cfg = model.cfg
    model.embed_tokens.weight = _param(read("model.embed_tokens.weight"), dtype, device)
    model.norm.weight = _param(read("model.norm.weight"), dtype, device)
    head_shape = (cfg.vocab_size, cfg.hidden_size)
    model.lm_head = make_linear(None, lm_head_form(form, lm_head), dtype, group_size, "lm_head",
                                rows=lambda a, b: read("lm_head.weight", a, b).to(device), shape=head_shape)


def fill_layer(model: MiniMaxM2, n: int, read, form: str, dtype: torch.dtype, device: torch.device,
               group_size: int) -> None:
    """Layer n: norms, router and bias in the model dtype, projections and experts in their form."""
    cfg, layer, p = model.cfg, model.layers[n], f"model.layers.{n}."
    layer.input_norm.weight = _param(read(p + "input_layernorm.weight"), dtype, device)
    layer.post_norm.weight = _param(read(p + "post_attention_layernorm.weight"), dtype, device)
    a = layer.attn
    a.q_norm.weight = _param(read(p + "self_attn.q_norm.weight"), dtype, device)
    a.k_norm.weight = _param(read(p + "self_attn.k_norm.weight"), dtype, device)
    part_dtype = dtype if form == "float" else torch.float32
    qkv = torch.cat([read(p + f"self_attn.{x}_proj.weight").to(device=device, dtype=part_dtype) for x in "qkv"])
    a.qkv_proj = make_linear(qkv, form, dtype, group_size, f"layers.{n}.qkv_proj")
    del qkv
    a.o_proj = make_linear(read(p + "self_attn.o_proj.weight").to(device), form, dtype, group_size,
                           f"layers.{n}.o_proj")
    moe, m = layer.moe, p + "block_sparse_moe."
    moe.gate = make_linear(read(m + "gate.weight").to(device), "float", dtype)
    moe.e_score_correction_bias = read(m + "e_score_correction_bias").to(device=device, dtype=torch.float32)
    b = ExpertsBuilder(form, cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size, dtype, device,
                       group_size)
    for e in range(cfg.num_local_experts):
        x = f"{m}experts.{e}."
        w13 = torch.cat([read(x + "w1.weight"), read(x + "w3.weight")]).to(device)
        b.put(e, w13, read(x + "w2.weight").to(device))
    moe.experts = b.module()
