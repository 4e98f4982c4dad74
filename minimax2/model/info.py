"""Cost accounting for sparse-MoE transformers: parameters, FLOPs and memory per token and per context.

Covers M2's GQA attention and the MLA attention of Kimi-K2 / DeepSeek-V3.2 (with DeepSeek's DSA
indexer), so the architectures in the reference doc's section 8 can be compared on the same terms.
Matmul FLOPs are counted as 2 per multiply-add.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig

KIB = 1024


@dataclass
class ArchSpec:
    name: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    experts: int
    top_k: int
    expert_width: int
    shared_experts: int = 0
    dense_layers: int = 0
    dense_width: int = 0
    # GQA (M2): kv_heads, head_dim
    kv_heads: int = 0
    head_dim: int = 0
    # MLA (Kimi-K2, DeepSeek-V3.x)
    q_lora: int = 0
    kv_lora: int = 0
    nope_dim: int = 0
    rope_dim: int = 0
    v_dim: int = 0
    # DSA indexer (DeepSeek-V3.2): heads, head dim, keys attended, cached bytes per token per layer
    index_heads: int = 0
    index_dim: int = 0
    index_topk: int = 0
    index_key_bytes: int = 0

    @property
    def mla(self) -> bool:
        return self.kv_lora > 0

    def attention_params(self) -> int:
        h = self.hidden
        if not self.mla:
            q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
            return h * q + 2 * h * kv + q * h + q + kv  # q,k,v,o + whole-projection QK norms
        qk = self.nope_dim + self.rope_dim
        p = (h * self.q_lora + self.q_lora + self.q_lora * self.heads * qk
             + h * (self.kv_lora + self.rope_dim) + self.kv_lora
             + self.kv_lora * self.heads * (self.nope_dim + self.v_dim) + self.heads * self.v_dim * h)
        if self.index_heads:
            p += self.q_lora * self.index_heads * self.index_dim + h * self.index_dim + h * self.index_heads
        return p

    def params(self) -> dict[str, float]:
        h, moe_layers = self.hidden, self.layers - self.dense_layers
        expert = 3 * h * self.expert_width
        attn = self.layers * (self.attention_params() + 2 * h)
        router = moe_layers * (self.experts * h + self.experts)
        dense = self.dense_layers * 3 * h * self.dense_width
        experts_all = moe_layers * (self.experts + self.shared_experts) * expert
        experts_active = moe_layers * (self.top_k + self.shared_experts) * expert
        embed = self.vocab * h
        body_total = attn + router + dense + experts_all + h
        body_active = attn + router + dense + experts_active + h
        return {"total": body_total + 2 * embed, "active": body_active + embed,  # active counts lm_head
                "active_no_embed": body_active, "embedding": embed}

    def kv_bytes_per_token(self, bytes_per_value: float = 2) -> float:
        if self.mla:
            per_layer = (self.kv_lora + self.rope_dim) * bytes_per_value + self.index_key_bytes
        else:
            per_layer = 2 * self.kv_heads * self.head_dim * bytes_per_value
        return per_layer * self.layers

    def flops_per_token(self, context: int) -> float:
        """Forward FLOPs for one token that attends to `context` earlier tokens."""
        dense = 2 * self.params()["active"]
        if self.mla:
            seen = min(context, self.index_topk) if self.index_topk else context
            attn = 2 * self.heads * (2 * self.kv_lora + self.rope_dim) * seen  # absorbed MLA
            attn += 2 * self.index_heads * self.index_dim * context if self.index_heads else 0
        else:
            attn = 4 * self.heads * self.head_dim * context
        return dense + self.layers * attn

    def weight_bytes(self, precision: str) -> float:
        """Weights at a precision. Below 16 bits embeddings, routers and norms stay bf16; lm_head stays
        bf16 in fp8 (M2's own release) and is int8 under minimax2's int8 / int4 (quant.py)."""
        p = self.params()
        bits = {"bf16": 16, "fp8": 8, "int8": 8, "int4": 4}[precision]
        if bits == 16:
            return 2 * p["total"]
        moe_layers = self.layers - self.dense_layers
        keep16 = p["embedding"] + moe_layers * (self.experts * self.hidden + self.experts)
        head = p["embedding"] * (2 if precision == "fp8" else 1)
        return 2 * keep16 + head + (p["total"] - keep16 - p["embedding"]) * bits / 8

    def memory_bytes(self, precision: str, context: int, kv_bytes_per_value: float = 2) -> float:
        return self.weight_bytes(precision) + self.kv_bytes_per_token(kv_bytes_per_value) * context


def spec_from_config(cfg: ModelConfig, name: str = "checkpoint") -> ArchSpec:
    return ArchSpec(name=name, vocab=cfg.vocab_size, hidden=cfg.hidden_size, layers=cfg.num_hidden_layers,
                    heads=cfg.num_attention_heads, kv_heads=cfg.num_key_value_heads, head_dim=cfg.head_dim,
                    experts=cfg.num_local_experts, top_k=cfg.num_experts_per_tok, expert_width=cfg.intermediate_size)


_MLA = dict(q_lora=1536, kv_lora=512, nope_dim=128, rope_dim=64, v_dim=128, dense_width=18432)
PRESETS: dict[str, ArchSpec] = {
    "minimax-m2": spec_from_config(ModelConfig(), "MiniMax-M2"),
    "kimi-k2": ArchSpec(name="Kimi-K2", vocab=163840, hidden=7168, layers=61, heads=64, experts=384, top_k=8,
                        expert_width=2048, shared_experts=1, dense_layers=1, **_MLA),
    "deepseek-v3.2": ArchSpec(name="DeepSeek-V3.2", vocab=129280, hidden=7168, layers=61, heads=128, experts=256,
                              top_k=8, expert_width=2048, shared_experts=1, dense_layers=3, **_MLA,
                              index_heads=64, index_dim=128, index_topk=2048, index_key_bytes=132),
}


def _fmt_count(n: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def _fmt_bytes(n: float) -> str:
    for unit, div in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def info_rows(spec: ArchSpec, context: int) -> list[tuple[str, str]]:
    p = spec.params()
    rows = [("parameters, total", _fmt_count(p["total"])),
            ("parameters, active per token", _fmt_count(p["active"])),
            ("  of which not embeddings/lm_head", _fmt_count(p["active_no_embed"])),
            ("FLOPs per token, empty context", _fmt_count(spec.flops_per_token(0))),
            (f"FLOPs per token at context {context:,}", _fmt_count(spec.flops_per_token(context))),
            ("KV cache per token (bf16)", f"{spec.kv_bytes_per_token():,.0f} B ({_fmt_bytes(spec.kv_bytes_per_token())})"),
            (f"KV cache for {context:,} tokens (bf16)", _fmt_bytes(spec.kv_bytes_per_token() * context))]
    for prec in ("bf16", "fp8", "int8", "int4"):
        rows.append((f"memory, {prec} weights + KV", _fmt_bytes(spec.memory_bytes(prec, context))))
    return rows


def print_info(model: str | None = None, preset: str | None = None, context: int = 32768) -> int:
    from rich.console import Console
    from rich.table import Table

    if model is not None:
        specs = [spec_from_config(ModelConfig.from_file(model), str(model))]
    else:
        specs = list(PRESETS.values()) if preset == "all" else [PRESETS[preset]]
    table = Table(title=f"cost per token and per context token (context {context:,})")
    table.add_column("")
    for s in specs:
        table.add_column(s.name, justify="right")
    columns = [info_rows(s, context) for s in specs]
    for r, (label, _) in enumerate(columns[0]):
        table.add_row(label, *(col[r][1] for col in columns))
    Console(width=max(80, 44 + 24 * len(specs))).print(table)
    return 0
