"""ModelConfig: the M2 architecture hyper-parameters, read from a Hugging Face `config.json`.

The same fact can be spelled two ways in the wild (MiniMax's own `rotary_dim` / `rope_theta`, or
transformers' `rope_parameters.partial_rotary_factor` / `rope_parameters.rope_theta`); both are
accepted. Defaults are MiniMax-M2's published values. Anything the model code cannot honour is
rejected here, naming the field, so a bad config never fails deep inside a matmul.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SUPPORTED_MODEL_TYPES = ("minimax_m2",)


class ConfigError(ValueError):
    """A config.json that this implementation cannot run, with the offending field named."""


@dataclass
class ModelConfig:
    vocab_size: int = 200064
    hidden_size: int = 3072
    intermediate_size: int = 1536  # per expert
    num_hidden_layers: int = 62
    num_attention_heads: int = 48
    num_key_value_heads: int = 8
    head_dim: int = 128
    rotary_dim: int = 64
    rope_theta: float = 5_000_000.0
    num_local_experts: int = 256
    num_experts_per_tok: int = 8
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 196608
    tie_word_embeddings: bool = False
    hidden_act: str = "silu"
    bos_token_id: int | None = None
    eos_token_id: list[int] = field(default_factory=list)
    # FP8 block quantization of the checkpoint on disk (None for bf16/fp32 checkpoints).
    quantization_config: dict | None = None
    model_type: str = "minimax_m2"

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @classmethod
    def from_dict(cls, raw: dict) -> "ModelConfig":
        model_type = raw.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"config.json field 'model_type' is {model_type!r}; this implementation supports "
                f"{', '.join(SUPPORTED_MODEL_TYPES)} (MiniMax-M2, M2.1, M2.5)"
            )
        kw = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw and raw[k] is not None}
        kw.pop("rotary_dim", None)
        kw.pop("rope_theta", None)
        cfg = cls(**kw)
        if "head_dim" not in raw or raw["head_dim"] is None:
            cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
        rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", None):
            raise ConfigError(f"config.json field 'rope_parameters.rope_type' is {rope_type!r}; M2 uses plain RoPE ('default')")
        theta = raw.get("rope_theta", rope.get("rope_theta"))
        cfg.rope_theta = float(theta) if theta is not None else cls.rope_theta
        if raw.get("rotary_dim") is not None:
            cfg.rotary_dim = int(raw["rotary_dim"])
        elif rope.get("partial_rotary_factor") is not None:
            cfg.rotary_dim = int(cfg.head_dim * float(rope["partial_rotary_factor"]))
        else:
            cfg.rotary_dim = min(cls.rotary_dim, cfg.head_dim)
        eos = raw.get("eos_token_id")
        cfg.eos_token_id = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
        cfg._check(raw)
        return cfg

    @classmethod
    def from_file(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.exists():
            raise ConfigError(f"no config.json at {path}")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from e
        return cls.from_dict(raw)

    def _check(self, raw: dict) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"config.json field '{name}' = {getattr(self, name, raw.get(name))!r}: {why}")

        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "num_local_experts", "num_experts_per_tok"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        if self.num_attention_heads % self.num_key_value_heads:
            raise bad("num_key_value_heads", f"must divide num_attention_heads ({self.num_attention_heads})")
        if self.num_experts_per_tok > self.num_local_experts:
            raise bad("num_experts_per_tok", f"exceeds num_local_experts ({self.num_local_experts})")
        if self.rotary_dim <= 0 or self.rotary_dim > self.head_dim or self.rotary_dim % 2:
            raise bad("rotary_dim", f"must be even and in 2..head_dim ({self.head_dim})")
        if self.hidden_act != "silu":
            raise bad("hidden_act", "M2 experts use SwiGLU ('silu')")
        if self.tie_word_embeddings:
            raise bad("tie_word_embeddings", "M2 has an untied lm_head")
        if raw.get("scoring_func", "sigmoid") != "sigmoid":
            raise ConfigError(f"config.json field 'scoring_func' = {raw['scoring_func']!r}: M2 routes with 'sigmoid'")
        if raw.get("use_qk_norm", True) is not True or raw.get("qk_norm_type", "per_layer") != "per_layer":
            raise ConfigError("config.json fields 'use_qk_norm'/'qk_norm_type': M2 normalises the whole q/k "
                              "projections ('per_layer'); other variants are not supported")
        qc = self.quantization_config
        if qc is not None:
            method = qc.get("quant_method")
            if method == "minimax2":  # pre-quantised by `minimax2 convert` (model/prequant.py)
                if qc.get("bits") not in (4, 8):
                    raise ConfigError(f"config.json field 'quantization_config.bits' = {qc.get('bits')!r}: expected 8 or 4")
                return
            if method != "fp8":
                raise ConfigError(f"config.json field 'quantization_config.quant_method' = {method!r}: only the "
                                  "official 'fp8' block format and minimax2's own int8/int4 are supported")
            if qc.get("fmt", "float8_e4m3fn") not in ("float8_e4m3fn", "e4m3"):
                raise ConfigError(f"config.json field 'quantization_config.fmt' = {qc.get('fmt')!r}: expected float8_e4m3fn")
            block = qc.get("weight_block_size")
            if not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)):
                raise ConfigError(f"config.json field 'quantization_config.weight_block_size' = {block!r}: expected [rows, cols]")

    def to_hf_dict(self) -> dict:
        """The config.json of an unquantised M2 checkpoint (both rotary spellings, so every loader agrees)."""
        d = asdict(self)
        d.pop("rope_theta")
        d["architectures"] = ["MiniMaxM2ForCausalLM"]
        d["rope_theta"] = self.rope_theta
        d["rope_parameters"] = {"rope_type": "default", "rope_theta": self.rope_theta,
                                "partial_rotary_factor": self.rotary_dim / self.head_dim}
        d["scoring_func"] = "sigmoid"
        d["use_routing_bias"] = True
        d["use_qk_norm"] = True
        d["qk_norm_type"] = "per_layer"
        d["eos_token_id"] = self.eos_token_id[0] if len(self.eos_token_id) == 1 else (self.eos_token_id or None)
        d.pop("quantization_config")  # weights written from memory are never quantised; see convert_to_fp8
        return d
