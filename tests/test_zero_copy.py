"""Zero-copy starts (issue 15 item 3): `minimax2 convert --to int8|int4` writes the serving form once;
loading it maps the shards (no weights in anonymous memory) and gives the logits of quantising at load.
A bf16 checkpoint served in bf16 is mapped the same way (q/k/v and every expert's w1/w3/w2 read in place)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from minimax2.model import cpu_kernels
from minimax2.model.attention import AttentionMetadata
from minimax2.model.config import ModelConfig
from minimax2.model.loader import CheckpointError, load_model
from minimax2.model.experts import Bf16Experts
from minimax2.model.memory import serving_bytes
from minimax2.model.quant import serving_model
from minimax2.model.synth import write_random_checkpoint

MiB = 2**20
SHAPE = dict(hidden_size=1024, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, head_dim=128,
             rotary_dim=64, num_local_experts=32, num_experts_per_tok=4, intermediate_size=1024, vocab_size=4096,
             max_position_embeddings=512)

PROBE = r"""
import json, sys, torch
from minimax2.model.loader import load_model
from minimax2.model.mapped import rss_anon
load_model(sys.argv[2], torch.bfloat16)  # library initialisation, on a tiny checkpoint
base = rss_anon()
m = load_model(sys.argv[1], torch.bfloat16)
print(json.dumps({"extra": rss_anon() - base, "experts": type(m.layers[0].moe.experts).__name__}))
"""


def _logits(model, n: int = 24) -> torch.Tensor:
    ids = torch.arange(5, 5 + n)
    with torch.no_grad():
        return model(ids, torch.arange(n), AttentionMetadata.for_batch(1, n)).float()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("zc")
    src = write_random_checkpoint(root / "fp8", ModelConfig(**SHAPE), fp8=True, max_shard_bytes=64 * MiB)
    out = {"src": src, "bf16": write_random_checkpoint(root / "bf16", ModelConfig(**SHAPE), fp8=False,
                                                       max_shard_bytes=64 * MiB)}
    for form, group in (("int8", 128), ("int4", 64)):
        args = ["--to", form] + (["--group-size", str(group)] if form == "int4" else []) + ["--shard-size-mb", "64"]
        r = subprocess.run([sys.executable, "-m", "minimax2.cli", "convert", "--model", str(src),
                            "--out", str(root / form), *args], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "loads zero-copy" in r.stdout
        out[form] = root / form
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "convert", "--model", str(src), "--out",
                        str(root / "int4-head6"), "--to", "int4", "--group-size", "64", "--lm-head", "int6"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "lm_head int6" in r.stdout, r.stderr[-2000:]
    out["int4-head6"] = root / "int4-head6"
    return out


@pytest.mark.parametrize("form, group", [("int8", 128), ("int4", 64)])
def test_converted_checkpoint_gives_the_logits_of_quantising_at_load(ckpts, form, group):
    cfg = json.loads((ckpts[form] / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "minimax2" and cfg["bits"] == (8 if form == "int8" else 4)
    mapped = load_model(ckpts[form], torch.bfloat16)
    copied = load_model(ckpts["src"], torch.bfloat16, quantization=form, group_size=group)
    assert type(mapped.layers[1].moe.experts) is type(copied.layers[1].moe.experts)
    assert torch.equal(_logits(mapped), _logits(copied))


@pytest.mark.parametrize("form", ["int8", "int4", "bf16"])
def test_loading_a_converted_checkpoint_keeps_weights_out_of_anonymous_memory(ckpts, tmp_path, form):
    tiny = write_random_checkpoint(tmp_path / "tiny", ModelConfig(**{**SHAPE, "hidden_size": 128, "head_dim": 32,
                                                                   "rotary_dim": 16, "intermediate_size": 128}))
    r = subprocess.run([sys.executable, "-c", PROBE, str(ckpts[form]), str(tiny)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    weights = serving_bytes(ModelConfig(**SHAPE), "float" if form == "bf16" else form, torch.bfloat16, 64)
    if form == "bf16" and cpu_kernels.loaded():
        assert m["experts"] == "Bf16Experts"
    assert m["extra"] < 512 * MiB and m["extra"] < 0.1 * weights, (m["extra"] / MiB, weights / MiB)


@pytest.mark.skipif(not cpu_kernels.loaded(), reason="the bf16 serving form needs the native kernels")
def test_mapped_bf16_checkpoint_gives_the_logits_of_the_copied_model(ckpts):
    mapped = load_model(ckpts["bf16"], torch.bfloat16)
    experts = mapped.layers[1].moe.experts
    assert isinstance(experts, Bf16Experts) and not hasattr(experts, "stacks")  # views of the file, no stacks
    assert mapped.layers[0].attn.qkv_proj.parts is not None
    copied = serving_model(load_model(ckpts["bf16"], torch.float32).to(torch.bfloat16))  # fused q/k/v, stacks
    assert copied.layers[0].attn.qkv_proj.parts is None and hasattr(copied.layers[1].moe.experts, "stacks")
    ids = torch.tensor([7])
    with torch.no_grad():  # decode: the native kernels on both, so equal to the bit
        one = [m(ids, torch.tensor([0]), AttentionMetadata.for_batch(1, 1)) for m in (mapped, copied)]
    assert torch.equal(*one)
    a, b = _logits(mapped), _logits(copied)  # prefill: torch's GEMMs over separate parts vs fused
    assert (a - b).abs().max() <= 0.02 * b.abs().max() and torch.equal(a.argmax(-1), b.argmax(-1))


def test_a_converted_checkpoint_is_not_quantised_again(ckpts):
    with pytest.raises(CheckpointError, match="pre-quantised to int8"):
        load_model(ckpts["int8"], torch.bfloat16, quantization="int4")
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "convert", "--model", str(ckpts["int8"]), "--out",
                        str(ckpts["int8"].parent / "again"), "--to", "int4"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "already pre-quantised" in r.stderr


def test_a_6bit_head_converts_and_maps_like_the_rest(ckpts):
    """`convert --lm-head int6` stores the head in its 6-bit form (`lm_head_bits` 6): mapped, it gives the
    logits of quantising at load with `lm_head="int6"`; the FP8 checkpoint served as released takes the
    same head; a load asking for the other head is refused."""
    from minimax2.model.linear import Int6Linear

    assert json.loads((ckpts["int4-head6"] / "config.json").read_text())["quantization_config"]["lm_head_bits"] == 6
    mapped = load_model(ckpts["int4-head6"], torch.bfloat16)
    copied = load_model(ckpts["src"], torch.bfloat16, quantization="int4", group_size=64, lm_head="int6")
    assert isinstance(mapped.lm_head, Int6Linear) and isinstance(copied.lm_head, Int6Linear)
    assert torch.equal(_logits(mapped), _logits(copied))
    assert mapped.lm_head.a8 and mapped.layers[0].moe.experts.a8  # int4's default: int8 activations
    with torch.no_grad():  # one decode step through the native kernels on both
        one = [m(torch.tensor([7]), torch.tensor([0]), AttentionMetadata.for_batch(1, 1)) for m in (mapped, copied)]
    assert torch.equal(*one)
    released = load_model(ckpts["src"], torch.bfloat16, lm_head="int6")  # fp8 as released, 6-bit head
    assert isinstance(released.lm_head, Int6Linear)
    assert torch.equal(released.lm_head.packed, copied.lm_head.packed)
    with pytest.raises(CheckpointError, match=r"lm_head int6"):
        load_model(ckpts["int4-head6"], torch.bfloat16, lm_head="int8")
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "info", "--model", str(ckpts["int4-head6"])],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "int4 (groups of 64), lm_head int6" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "convert", "--model", str(ckpts["bf16"]), "--out",
                        str(ckpts["bf16"].parent / "fp8-head6"), "--to", "fp8", "--lm-head", "int6"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--lm-head applies to --to int8|int4" in r.stderr


def test_an_unknown_head_width_is_a_clear_error(ckpts, tmp_path):
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(ckpts["int4-head6"], odd)
    cfg = json.loads((odd / "config.json").read_text())
    cfg["quantization_config"]["lm_head_bits"] = 5
    (odd / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="lm_head_bits is 5; this version reads 8"):
        load_model(odd, torch.bfloat16)
