"""The MiniMax-M2 model (M2, M2.1 and M2.5 share it), one forward path for prefill, decode and training.

Semantics follow the transformers reference (`MiniMaxM2ForCausalLM`) exactly:
  * RMSNorm computes in float32 and scales by the weight in the input dtype;
  * QK-norm is one RMSNorm over the WHOLE q (and k) projection, before the split into heads;
  * partial RoPE on the first `rotary_dim` dims of each head, half-split (NeoX) rotation;
  * GQA, causal softmax attention with scale 1/sqrt(head_dim);
  * sigmoid router in float32; `e_score_correction_bias` only chooses experts, the weights are the
    unbiased scores of the chosen experts renormalised to sum 1; SwiGLU experts; untied lm_head.

Tokens arrive flat ([T]) with positions and `AttentionMetadata` (see attention.py); q, k and v come
from one fused projection, and each expert's gate and up projections are one fused matrix. The model
is built in its float form (training); the loader swaps in each projection's and expert stack's
serving form (linear.py, experts.py, forms.py) and binds the norms' and the attention's decode
kernels (`bind_kernels`): each choice made once, at load, leaving one branch per batch kind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels
from .attention import AttentionMetadata, attend
from .config import ModelConfig
from .experts import TorchExperts
from .linear import MAX_ROWS, Linear


class RMSNorm(nn.Module):
    """The float form computes through torch's ops; `bind_kernels` (at load) gives bf16 weights on a CPU
    with the native kernels their decode form: decode rows (at most MAX_ROWS) in one native call each."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.norm_kernel = self.add_norm_kernel = None  # set by bind_kernels

    def bind_kernels(self) -> None:
        """Bind the native norm kernels where they apply to these weights (bf16, CPU, kernels built)."""
        w = self.weight
        ext = cpu_kernels.load() if w.dtype == torch.bfloat16 and w.device.type == "cpu" and cpu_kernels.loaded() \
            else None
        self.norm_kernel = ext.rms_norm_bf16 if ext is not None else None
        self.add_norm_kernel = ext.add_rms_norm_bf16 if ext is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_kernel is not None and 0 < x.shape[0] <= MAX_ROWS:
            return self.norm_kernel(x, self.weight, self.eps)
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)

    def add_norm(self, h: torch.Tensor, delta: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, RMSNorm(s)) with s = h + delta, the residual add and the norm after it (one native call for
        decode rows); delta None: (h, RMSNorm(h))."""
        if delta is None:
            return h, self(h)
        if self.add_norm_kernel is not None and 0 < h.shape[0] <= MAX_ROWS:
            return self.add_norm_kernel(h, delta, self.weight, self.eps)
        h = h + delta
        return h, self(h)


def rope_cos_sin(positions: torch.Tensor, rotary_dim: int, theta: float, dtype: torch.dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float, device=positions.device) / rotary_dim))
    ang = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    return emb.cos().to(dtype)[:, None, :], emb.sin().to(dtype)[:, None, :]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, H, D]; rotates dims [0, rotary_dim) half-split style, leaves the rest untouched."""
    rd = cos.shape[-1]
    r, rest = x[..., :rd], x[..., rd:]
    r1, r2 = r[..., : rd // 2], r[..., rd // 2:]
    rotated = torch.cat((-r2, r1), dim=-1)
    return torch.cat((r * cos + rotated * sin, rest), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv_proj = Linear(cfg.hidden_size, cfg.q_size + 2 * cfg.kv_size, bias=False)
        self.o_proj = Linear(cfg.q_size, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(cfg.q_size, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(cfg.kv_size, cfg.rms_norm_eps)
        self.scale = cfg.head_dim ** -0.5
        self.k_cache: torch.Tensor | None = None  # [slots, kv_heads, head_dim] in the model dtype, set by the runner
        self.v_cache: torch.Tensor | None = None
        self.prologue_kernel = self.decode_kernel = None  # set by bind_kernels

    def bind_kernels(self) -> None:
        """Bind the native decode pair where it applies (bf16 norms on a CPU with the kernels, head_dim a
        multiple of 32): the prologue (qkv split, QK-norm, RoPE, cache write) and the attention that reads
        the paged cache in place. Both or neither: the native attention reads the keys the prologue wrote."""
        w, c = self.q_norm.weight, self.cfg
        native = w.dtype == torch.bfloat16 and w.device.type == "cpu" and c.head_dim % 32 == 0 and cpu_kernels.loaded()
        ext = cpu_kernels.load() if native else None
        self.prologue_kernel = ext.attention_prep_bf16 if ext is not None else None
        self.decode_kernel = ext.decode_attention_bf16 if ext is not None else None

    def forward(self, x, cos, sin, meta: AttentionMetadata) -> torch.Tensor:
        c = self.cfg
        qkv = self.qkv_proj(x)
        if self.decode_kernel is not None and meta.decode_slots is not None:  # decode batch: two native calls
            q = self.prologue_kernel(qkv, self.q_norm.weight, self.k_norm.weight, cos, sin, self.q_norm.eps,
                                     c.num_attention_heads, self.k_cache, self.v_cache, meta.slot_mapping)
            o = self.decode_kernel(q, self.k_cache, self.v_cache, meta.decode_slots, meta.decode_lens, self.scale)
        else:
            q, k, v = qkv.split([c.q_size, c.kv_size, c.kv_size], dim=-1)
            q = self.q_norm(q).view(-1, c.num_attention_heads, c.head_dim)
            k = self.k_norm(k).view(-1, c.num_key_value_heads, c.head_dim)
            v = v.reshape(-1, c.num_key_value_heads, c.head_dim)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            o = attend(q, k, v, meta, self.k_cache, self.v_cache, self.scale)
        return self.o_proj(o.reshape(-1, c.q_size))


class SparseMoE(nn.Module):
    """Top-k sigmoid-routed SwiGLU experts; only the experts the batch routes to are run."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        e, h, i = cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size
        self.top_k, self.num_experts = cfg.num_experts_per_tok, e
        self.gate = Linear(h, e, bias=False)
        self.register_buffer("e_score_correction_bias", torch.zeros(e, dtype=torch.float32))
        self.experts: nn.Module = TorchExperts(e, h, i)  # replaced by its serving form at load (experts.py)

    @property
    def expert_load(self) -> torch.Tensor | None:
        """Tokens per expert in the last training forward (the trainer's bias balancing reads it)."""
        return self.experts.load

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.sigmoid(self.gate(x).float())
        _, idx = torch.topk(scores + self.e_score_correction_bias, self.top_k, dim=-1, sorted=False)
        w = scores.gather(1, idx)
        return idx, w / w.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.experts.block is not None and x.shape[0] <= cpu_kernels.MAX_BLOCK_TOKENS:
            # decode batches and prefill chunks: routing and the chosen experts in two native calls, same
            # rounding as below
            return self.experts.block(x, *cpu_kernels.route(self.gate(x), self.e_score_correction_bias, self.top_k))
        return self.experts(x, *self.route(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg)
        self.post_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.moe = SparseMoE(cfg)

    def forward(self, h, delta, cos, sin, meta):
        """The residual stream is h + delta, where delta is the previous layer's MoE output (None before the
        first layer): each residual add runs fused with the norm after it. Returns the next (h, delta)."""
        h, x = self.input_norm.add_norm(h, delta)
        h, x = self.post_norm.add_norm(h, self.attn(x, cos, sin, meta))
        return h, self.moe(x)


class MiniMaxM2(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata,
                logits_indices: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, positions: [T]. Returns logits [T, vocab], or only the rows in `logits_indices`."""
        h, delta = self.embed_tokens(input_ids), None
        cos, sin = rope_cos_sin(positions, self.cfg.rotary_dim, self.cfg.rope_theta, h.dtype)
        for layer in self.layers:
            h, delta = layer(h, delta, cos, sin, meta)
        if logits_indices is not None:
            h = h.index_select(0, logits_indices)
            delta = None if delta is None else delta.index_select(0, logits_indices)
        return self.lm_head(self.norm.add_norm(h, delta)[1])

    def bind_kernels(self) -> None:
        """Choose the norms' and the attention's decode kernels once, from the loaded weights' dtype and
        device (the loaders and `quant.serving_model` call it after putting the weights in place, as they
        choose each projection's and expert stack's form)."""
        for m in self.modules():
            if isinstance(m, (RMSNorm, Attention)):
                m.bind_kernels()

    def allocate_kv_cache(self, num_slots: int) -> int:
        """Give every layer a [num_slots, kv_heads, head_dim] K and V cache in the model dtype (the dtype
        the attention's kernels were bound for). Returns bytes allocated."""
        c, dtype = self.cfg, self.dtype
        total = 0
        for layer in self.layers:
            a = layer.attn
            a.k_cache = torch.zeros(num_slots, c.num_key_value_heads, c.head_dim, dtype=dtype, device=self.device)
            a.v_cache = torch.zeros_like(a.k_cache)
            total += 2 * a.k_cache.numel() * a.k_cache.element_size()
        return total

    def free_kv_cache(self) -> None:
        for layer in self.layers:
            layer.attn.k_cache = layer.attn.v_cache = None
