"""Bad checkpoints fail early, with a message that names the tensor or field and the shapes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import edit_config
from minimax2.model.config import ConfigError, ModelConfig
from minimax2.model.loader import CheckpointError, load_model


@pytest.fixture
def ckpt(tiny_ckpt, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, dst)
    return dst


def _rewrite(path, fn):
    tensors = load_file(str(path / "model.safetensors"))
    fn(tensors)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


def test_missing_tensor(ckpt):
    _rewrite(ckpt, lambda t: t.pop("model.layers.1.block_sparse_moe.experts.5.w3.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensor model\.layers\.1\.block_sparse_moe\.experts\.5\.w3\.weight "
                                              r"with expected shape \[32, 64\]"):
        load_model(ckpt)


def test_wrong_shape(ckpt):
    _rewrite(ckpt, lambda t: t.update({"model.layers.0.self_attn.k_proj.weight": torch.zeros(48, 64)}))
    with pytest.raises(CheckpointError, match=r"tensor model\.layers\.0\.self_attn\.k_proj\.weight has shape \[48, 64\], "
                                              r"expected \[64, 64\]"):
        load_model(ckpt)


def test_unexpected_tensor(ckpt):
    _rewrite(ckpt, lambda t: t.update({"model.layers.0.mlp.shared_expert.weight": torch.zeros(4)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensor model\.layers\.0\.mlp\.shared_expert\.weight"):
        load_model(ckpt)


def test_mtp_layers_are_skipped(ckpt):
    _rewrite(ckpt, lambda t: t.update({"model.layers.2.self_attn.q_proj.weight": torch.zeros(3, 3),
                                       "model.layers.7.enorm.weight": torch.zeros(64)}))
    model = load_model(ckpt)
    assert len(model.layers) == 2


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_file(ckpt, cut):
    f = ckpt / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read safetensors file, it is truncated or corrupt"):
        load_model(ckpt)


def test_garbage_file(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(ckpt)


def test_missing_shard(ckpt):
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(CheckpointError, match="names shard model-00002-of-00002.safetensors, which does not exist"):
        load_model(ckpt)


def test_no_weights(tmp_path, ckpt):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model(ckpt)


def test_unsupported_model_type(ckpt):
    edit_config(ckpt, model_type="mixtral")
    with pytest.raises(ConfigError, match=r"'model_type' is 'mixtral'"):
        load_model(ckpt)


@pytest.mark.parametrize("changes, field", [
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"num_experts_per_tok": 9}, "num_experts_per_tok"),
    ({"rotary_dim": 48}, "rotary_dim"),
    ({"scoring_func": "softmax"}, "scoring_func"),
    ({"hidden_size": -1}, "hidden_size"),
    ({"quantization_config": {"quant_method": "gptq"}}, "quantization_config.quant_method"),
])
def test_inconsistent_config(changes, field):
    raw = {"model_type": "minimax_m2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
           "head_dim": 32, "num_local_experts": 8, "num_experts_per_tok": 2}
    raw.update(changes)
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        ModelConfig.from_dict(raw)


def test_cli_reports_the_error(ckpt):
    _rewrite(ckpt, lambda t: t.pop("lm_head.weight"))
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "generate", "--model", str(ckpt), "-p", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "missing tensor lm_head.weight" in r.stderr and "Traceback" not in r.stderr
