"""What a decode step must read, per serving form, and the full model's speed projected from it.

A batch-1 decode step is bound by memory bandwidth: it reads every active weight once (attention
projections, the router, the k chosen experts of every layer, lm_head, one embedding row) and the KV
cache of its context. `step_bytes` counts those bytes exactly as the serving forms store them
(memory.py); a machine's decode speed is then `share x bandwidth / step_bytes`, where `share` is the
fraction of the roofline the engine reaches, measured on the released widths with
benchmarks/bench_slice.py (the slice has the same per-layer shapes as the full model).
"""

from __future__ import annotations

from .config import ModelConfig
from .memory import _proj_bytes, serving_bytes


def step_bytes(cfg: ModelConfig, form: str, batch: int = 1, context: int = 0, el: int = 2, group: int = 128,
               lm_head: str | None = None) -> float:
    """Bytes one decode step of `batch` sequences reads: weights in `form` ("float" = bf16) with the experts
    a batch touches in expectation under uniform routing (lm_head in `lm_head_form(form, lm_head)`), plus
    `context` tokens of bf16 KV per sequence."""
    from .forms import lm_head_form

    h, i, e, k = cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts, cfg.num_experts_per_tok
    distinct = e * (1 - (1 - k / e) ** batch)
    attn = _proj_bytes(cfg.q_size + 2 * cfg.kv_size, h, form, el, group) + _proj_bytes(h, cfg.q_size, form, el, group)
    expert = _proj_bytes(2 * i, h, form, el, group) + _proj_bytes(h, i, form, el, group)
    layer = attn + distinct * expert + e * h * el
    head = _proj_bytes(cfg.vocab_size, h, lm_head_form(form, lm_head), el, group)
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * el * context * batch
    return cfg.num_hidden_layers * layer + head + batch * h * el + kv


def projection_rows(cfg: ModelConfig, shares: dict[str, float], bandwidths: list[float],
                    context: int = 32768) -> list[list[str]]:
    """Rows of form, weights, RAM with `context` tokens of KV, and batch-1 decode tok/s at each bandwidth
    (GB/s) for a short context and for a full `context`."""
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2 * context
    rows = []
    for form, share in shares.items():
        w = serving_bytes(cfg, form)
        speeds = [f"{share * bw * 1e9 / step_bytes(cfg, form):.1f} / {share * bw * 1e9 / step_bytes(cfg, form, 1, context):.1f}"
                  for bw in bandwidths]
        rows.append([form, f"{w / 1e9:.0f} GB", f"{(w + kv) / 1e9:.0f} GB", f"{share:.0%}", *speeds])
    return rows


# Batch-1 decode roofline shares measured on the 4-layer FP8 slice of the released widths, 2 threads,
# 2026-12-04 (`python benchmarks/bench_slice.py --model checkpoints/m2-slice-4l-fp8 --forms fp8 int8-pre
# int4-pre`, README "Running the real MiniMax-M2"): each run's share against probes right before and
# after it, only that checkpoint in the page cache; the lower of two runs' medians (fp8 90% and 89%,
# int8 93% and 97%, int4 86% and 89%).
MEASURED_SHARES = {"fp8": 0.89, "int8": 0.93, "int4": 0.86, "source": "4-layer slice, 2 threads, 2026-12-04"}
