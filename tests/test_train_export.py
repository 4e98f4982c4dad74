"""A trained checkpoint is written in the official HF layout that our loader, our LLM API and
transformers' MiniMaxM2ForCausalLM all load, with the same logits; the CLI runs the whole recipe."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from minimax2.model.attention import AttentionMetadata
from minimax2.model.loader import load_model
from minimax2.cli import main as train_main
from minimax2.train.recipe import ExampleStream, build_model, build_tokenizer, export, get_recipe
from minimax2.train.trainer import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    r = get_recipe("tiny")
    tok = build_tokenizer(r)
    model = build_model(r, tok)
    out = tmp_path_factory.mktemp("run")
    train(model, ExampleStream(tok, r.data_seed), replace(r.train, steps=4), out, progress=False)
    return model, export(model, tok, out / "model", dtype=torch.float32)


def test_hf_layout_files(trained):
    _, ckpt = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (ckpt / name).exists(), name
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["model_type"] == "minimax_m2" and cfg["architectures"] == ["MiniMaxM2ForCausalLM"]
    assert cfg["eos_token_id"] == json.loads((ckpt / "tokenizer.json").read_text())["added_tokens"][2]["id"]


def test_our_loader_and_transformers_agree_with_the_trained_model(trained):
    from transformers import MiniMaxM2ForCausalLM

    model, ckpt = trained
    ours = load_model(ckpt, dtype=torch.float32)
    ref = MiniMaxM2ForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    pos, meta = torch.arange(40).repeat(2), AttentionMetadata.for_batch(2, 40)
    model.eval()
    with torch.no_grad():
        want = model(ids.flatten(), pos, meta)
        got = ours(ids.flatten(), pos, meta)
        hf = ref(ids).logits.reshape(want.shape)
    assert torch.equal(got, want)  # routing biases and weights survive the round trip exactly
    assert (hf - want).abs().max().item() < 1e-4


def test_llm_chat_on_the_trained_checkpoint(trained):
    from minimax2 import LLM, SamplingParams

    _, ckpt = trained
    reply = LLM(ckpt, dtype="float32").chat([{"role": "user", "content": "What is 2 + 2?"}],
                                             sampling_params=SamplingParams(max_tokens=8, temperature=0))
    assert reply.completion_tokens >= 1 and reply.prompt.endswith("]~b]ai\n<think>\n")


def test_cli_runs_the_tiny_recipe_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert train_main(["train", "--recipe", "tiny", "--steps", "3", "--out", str(out), "--export", str(tmp_path / "exp"),
                       "--eval-n", "2", "--no-progress", "--threads", "1"]) == 0
    card = (tmp_path / "exp" / "MODEL_CARD.md").read_text()
    assert "not MiniMax's weights" in card and "| arithmetic |" in card
    scores = json.loads((out / "heldout_scores.json").read_text())
    assert set(scores) == {"arithmetic", "tool", "parallel", "answer", "no_tool", "followup", "noreason", "nothink",
                           "json", "format"}
    assert all(s["n"] > 0 for s in scores.values())
