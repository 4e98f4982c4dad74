"""Architecture accounting against the reference doc's published figures."""

from __future__ import annotations

import subprocess
import sys

from minimax2.model.config import ModelConfig
from minimax2.model.info import PRESETS, spec_from_config
from minimax2.model.minimax_m2 import MiniMaxM2


def test_minimax_m2_preset():
    s = PRESETS["minimax-m2"]
    p = s.params()
    assert abs(p["total"] / 1e9 - 228.7) < 0.1
    assert abs(p["active_no_embed"] / 1e9 - 9.8) < 0.05 and abs(p["active"] / 1e9 - 10.4) < 0.05
    assert s.kv_bytes_per_token() == 2 * 8 * 128 * 62 * 2 == 248 * 1024


def test_neighbours_kv_bytes():
    assert PRESETS["kimi-k2"].kv_bytes_per_token() == 70272
    assert PRESETS["deepseek-v3.2"].kv_bytes_per_token() == 78324
    assert 1.0e12 < PRESETS["kimi-k2"].params()["total"] < 1.05e12
    assert 660e9 < PRESETS["deepseek-v3.2"].params()["total"] < 690e9


def test_param_count_equals_the_real_module():
    cfg = ModelConfig(vocab_size=100, hidden_size=32, intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8, rotary_dim=4, num_local_experts=6, num_experts_per_tok=2)
    model = MiniMaxM2(cfg)
    n = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert spec_from_config(cfg).params()["total"] == n


def test_memory_ordering():
    s = PRESETS["minimax-m2"]
    mem = [s.memory_bytes(p, 4096) for p in ("bf16", "fp8", "int4")]
    assert mem[0] > mem[1] > mem[2]
    assert s.memory_bytes("bf16", 8192) - s.memory_bytes("bf16", 4096) == 4096 * s.kv_bytes_per_token()


def test_cli_info_preset():
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "info", "--preset", "minimax-m2"],
                       capture_output=True, text=True, check=True)
    assert "228.69B" in r.stdout and "10.42B" in r.stdout and "248.0 KiB" in r.stdout


def test_batched_roofline_counts_the_experts_a_batch_touches():
    from minimax2.bench.roofline import BYTES_PER_PARAM, roofline_tok_s

    s = PRESETS["minimax-m2"]
    one = roofline_tok_s(s, "bf16", 1, 100e9)
    assert abs(one - 100e9 / (2 * s.params()["active"])) < 1e-6 * one
    # a huge batch touches every expert: the step reads all weights but the second embedding table
    everything = s.params()["total"] - s.params()["embedding"]
    assert abs(roofline_tok_s(s, "int8", 4096, 100e9) / 4096 - 100e9 / (BYTES_PER_PARAM["int8"] * everything)) < 1e-3
    ratios = [roofline_tok_s(s, "bf16", b, 100e9) / b for b in (1, 2, 8, 64)]
    assert ratios == sorted(ratios, reverse=True)  # more tokens per step, more distinct experts read
