"""Weights load straight into their serving form (issue 15): quantised while read, within a memory bound,
refused up front when they cannot fit, and equal to quantising a loaded model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from minimax2.model.attention import AttentionMetadata
from minimax2.model.config import ModelConfig
from minimax2.model.loader import load_model
from minimax2.model.memory import InsufficientMemoryError, serving_bytes, size
from minimax2.model.quant import quantize_model
from minimax2.model.synth import write_random_checkpoint

MiB = 2**20

PROBE = r"""
import json, sys, threading, time, torch
from minimax2.model.loader import load_model
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) * 1024
load_model(sys.argv[2], torch.bfloat16, quantization=sys.argv[3] or None)  # library initialisation, on a tiny one
base, peak, done = anon(), [0], [False]
def watch():
    while not done[0]:
        peak[0] = max(peak[0], anon()); time.sleep(0.002)
t = threading.Thread(target=watch); t.start()
m = load_model(sys.argv[1], torch.bfloat16, quantization=sys.argv[3] or None, group_size=128)
done[0] = True; t.join()
print(json.dumps({"extra": max(peak[0], anon()) - base, "experts": type(m.layers[0].moe.experts).__name__}))
"""

# 403M expert weights in FP8 (~0.4 GB on disk, 0.8 GB as bf16), with partial 128-blocks in q/k/v/o
BIG = dict(hidden_size=1024, num_hidden_layers=2, num_attention_heads=10, num_key_value_heads=2, head_dim=64,
           rotary_dim=32, num_local_experts=64, num_experts_per_tok=4, intermediate_size=1024, vocab_size=4096,
           max_position_embeddings=512)
TINY = dict(hidden_size=128, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
            rotary_dim=16, num_local_experts=4, num_experts_per_tok=2, intermediate_size=128, vocab_size=256,
            max_position_embeddings=512)


@pytest.fixture(scope="module")
def fp8_ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp8")
    big = write_random_checkpoint(root / "big", ModelConfig(**BIG), fp8=True, max_shard_bytes=256 * MiB)
    tiny = write_random_checkpoint(root / "tiny", ModelConfig(**TINY), fp8=True)
    return big, tiny


@pytest.mark.parametrize("form", ["int8", "int4"])
def test_fp8_checkpoint_loads_quantised_within_the_memory_bound(fp8_ckpts, form):
    big, tiny = fp8_ckpts
    r = subprocess.run([sys.executable, "-c", PROBE, str(big), str(tiny), form], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    serving = serving_bytes(ModelConfig(**BIG), form, torch.bfloat16, 128)
    bf16 = serving_bytes(ModelConfig(**BIG), "float", torch.bfloat16)
    assert m["experts"] == f"{form.capitalize()}Experts"
    assert m["extra"] <= 1.10 * serving + 512 * MiB, (m["extra"] / MiB, serving / MiB)
    assert m["extra"] < bf16  # a bf16 copy of the model alone would not fit under the bound


def test_bf16_checkpoint_loads_as_int4_within_the_memory_bound(tmp_path, fp8_ckpts):
    path = write_random_checkpoint(tmp_path / "bf16", ModelConfig(**BIG), fp8=False, max_shard_bytes=256 * MiB)
    r = subprocess.run([sys.executable, "-c", PROBE, str(path), str(fp8_ckpts[1]), "int4"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    extra = json.loads(r.stdout.strip().splitlines()[-1])["extra"]
    assert extra <= 1.10 * serving_bytes(ModelConfig(**BIG), "int4", torch.bfloat16, 128) + 512 * MiB


def test_memory_guard_refuses_with_both_figures_and_a_quantization_that_fits(fp8_ckpts):
    big, _ = fp8_ckpts
    cfg = ModelConfig(**BIG)
    limit = (serving_bytes(cfg, "int4", torch.bfloat16) + serving_bytes(cfg, "int8", torch.bfloat16)) // 2
    with pytest.raises(InsufficientMemoryError) as e:
        load_model(big, torch.bfloat16, quantization="bf16", max_memory=limit)
    msg = str(e.value)
    assert f"{size(serving_bytes(cfg, 'float', torch.bfloat16))} of weights" in msg
    assert f"only {size(limit)} are available (max_memory)" in msg and size(limit).endswith("MiB")
    assert "--quantization int4 would fit" in msg
    with pytest.raises(InsufficientMemoryError, match="no quantization fits"):
        load_model(big, torch.bfloat16, quantization="int4", max_memory=10 * MiB)


@pytest.mark.parametrize("form, group", [("int8", 128), ("int4", 32)])
def test_quantise_at_load_equals_quantising_the_loaded_model(tiny_ckpt, form, group):
    at_load = load_model(tiny_ckpt, torch.float32, quantization=form, group_size=group)
    after = quantize_model(load_model(tiny_ckpt, torch.float32), form, group)
    ids = torch.arange(3, 40)
    meta = AttentionMetadata.for_batch(1, len(ids))
    with torch.no_grad():
        a = at_load(ids, torch.arange(len(ids)), meta)
        b = after(ids, torch.arange(len(ids)), meta)
    assert torch.equal(a, b)


def test_fp8_checkpoint_at_int8_follows_its_dequantised_weights(fp8_ckpts):
    _, tiny = fp8_ckpts
    ref = load_model(tiny, torch.float32)  # FP8 dequantised to float32
    q = load_model(tiny, torch.float32, quantization="int8")
    ids = torch.arange(1, 30)
    meta = AttentionMetadata.for_batch(1, len(ids))
    with torch.no_grad():
        a = ref(ids, torch.arange(len(ids)), meta).log_softmax(-1)
        b = q(ids, torch.arange(len(ids)), meta).log_softmax(-1)
    kl = torch.nn.functional.kl_div(b, a, log_target=True, reduction="batchmean")
    assert 0 < kl < 1e-3
