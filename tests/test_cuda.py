"""The CUDA path: the same model, engine and trainer on a GPU, checked against the CPU and transformers.

Skipped where torch sees no CUDA device (our CI machines). Run on a GPU machine with
`python -m pytest -q tests/test_cuda.py`; it needs torch, safetensors, tokenizers, jinja2, rich and,
for the transformers comparisons, transformers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, hf_checkpoint
from test_engine import greedy, reference, run
from minimax2 import LLM, SamplingParams
from minimax2.engine.llm_engine import EngineConfig, LLMEngine
from minimax2.model.attention import AttentionMetadata
from minimax2.model.loader import load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")

CFG = dict(hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
           head_dim=16, rotary_dim=8, num_local_experts=8, num_experts_per_tok=2)
TEXTS = ["Once upon a time there was a small model that", "def add(a, b):\n    return", "東京 is a city",
         "The quick brown fox jumps over the lazy dog and then the dog"]


@pytest.fixture(scope="module")
def hf_ckpt(tmp_path_factory) -> Path:
    return hf_checkpoint(tmp_path_factory.mktemp("hf"), seed=1, **CFG)


def test_logits_on_cuda_match_the_cpu(hf_ckpt):
    """Against our CPU model, which test_parity holds to transformers (the GPU machine's transformers
    may be an older release than the one the tests pin)."""
    cpu, ours = load_model(hf_ckpt, torch.float32), load_model(hf_ckpt, torch.float32, "cuda")
    assert ours.device.type == "cuda"
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 80), generator=torch.Generator().manual_seed(0))
    pos, meta = torch.arange(80).repeat(2), AttentionMetadata.for_batch(2, 80)
    with torch.no_grad():
        want = cpu(ids.flatten(), pos, meta)
        got = ours(ids.flatten().cuda(), pos.cuda(), meta)
    assert (got.cpu() - want).abs().max().item() < 1e-4
    moe = ours.layers[0].moe.eval()  # the decode-sized path (gathered experts) against the CPU loop
    x = torch.randn(3, ours.cfg.hidden_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(moe(x.cuda()).cpu(), cpu.layers[0].moe(x), atol=1e-5)


def test_bfloat16_on_cuda_stays_close_to_float32(hf_ckpt):
    m32, m16 = load_model(hf_ckpt, torch.float32, "cuda"), load_model(hf_ckpt, torch.bfloat16, "cuda")
    assert m16.layers[0].moe.e_score_correction_bias.dtype == torch.float32
    ids = (torch.arange(40) % m32.cfg.vocab_size).cuda()
    pos, meta = torch.arange(40).cuda(), AttentionMetadata.for_batch(1, 40)
    with torch.no_grad():
        a, b = m32(ids, pos, meta), m16(ids, pos, meta).float()
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.99


def test_paged_engine_on_cuda_matches_the_cpu(tiny_ckpt):
    """Chunked prefill beside running decodes, preemption and a prefix-cache hit, all on the GPU."""
    from minimax2.chat.tokenizer import Tokenizer

    tok = Tokenizer(tiny_ckpt)
    cpu, gpu = load_model(tiny_ckpt, torch.float32), load_model(tiny_ckpt, torch.float32, "cuda")
    prompts = [tok.encode(t) for t in TEXTS]
    want = [reference(cpu, tok, p, greedy(12)) for p in prompts]
    for cfg in (EngineConfig(block_size=4, max_num_batched_tokens=7, num_kv_blocks=200),  # chunked prefill
                EngineConfig(block_size=4, max_num_batched_tokens=16, num_kv_blocks=14)):  # preemption
        engine = LLMEngine(gpu, tok, [], cfg)
        got = run(engine, {0: [(str(i), p, greedy(12)) for i, p in enumerate(prompts)]})
        assert [got[str(i)][0] for i in range(len(prompts))] == want
        assert engine.block_manager.num_free_blocks == cfg.num_kv_blocks
    assert engine.scheduler.num_preemptions > 0
    shared = tok.encode("You are a helpful assistant. " * 6)
    engine = LLMEngine(gpu, tok, [], EngineConfig(block_size=4, num_kv_blocks=100))
    for rid, tail in (("a", " First question?"), ("b", " Second one!")):
        ids = shared + tok.encode(tail)
        assert run(engine, {0: [(rid, ids, greedy(8))]})[rid][0] == reference(cpu, tok, ids, greedy(8))
    assert engine.block_manager.prefix_hits >= (len(shared) // 4 - 1) * 4


def test_llm_api_on_cuda_bf16_and_clear_errors(tiny_ckpt):
    llm = LLM(tiny_ckpt, dtype="bfloat16", device="auto")
    assert llm.device == "cuda" and llm.model.device.type == "cuda"
    outs = llm.generate(TEXTS, SamplingParams(max_tokens=16, temperature=0.8, seed=3))
    assert all(o.outputs[0].finish_reason in ("stop", "length") and o.outputs[0].token_ids for o in outs)
    again = llm.generate(TEXTS, SamplingParams(max_tokens=16, temperature=0.8, seed=3))
    assert [o.outputs[0].token_ids for o in outs] == [o.outputs[0].token_ids for o in again]
    with pytest.raises(ValueError, match="CPU kernels; use bf16 on CUDA"):
        LLM(tiny_ckpt, device="cuda", quantization="int8")


def test_bundled_demo_model_answers_the_same_on_cuda():
    """Held-out prompts of each scored family, batched: the GPU's greedy replies are the CPU's."""
    if not (REPO / "minimax2/assets/demo/config.json").exists():
        pytest.skip("this checkout has no bundled demo model")
    from minimax2.train.evaluate import MAX_TOKENS, cases, judge

    cpu, gpu = (LLM(REPO / "minimax2/assets/demo", dtype="float32", device=d) for d in ("cpu", "cuda"))
    sp = SamplingParams(max_tokens=MAX_TOKENS, temperature=0)
    passed = 0
    for family in ("arithmetic", "tool", "parallel", "answer", "no_tool"):
        batch = cases(family, 4)
        prompts = [cpu.render(msgs, tools=ex.tools) for ex, msgs in batch]
        a, b = cpu.generate(prompts, sp), gpu.generate(prompts, sp)
        assert [o.outputs[0].token_ids for o in b] == [o.outputs[0].token_ids for o in a], family
        passed += sum(judge(family, ex, o.outputs[0].text) for (ex, _), o in zip(batch, b))
    assert passed >= 17  # and the replies are the trained model's, not noise


def test_fp8_checkpoint_loads_onto_cuda(hf_ckpt, tmp_path):
    dst = tmp_path / "fp8"
    r = subprocess.run([sys.executable, "-m", "minimax2.cli", "convert", "--model", str(hf_ckpt), "--out", str(dst),
                        "--to-fp8"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cpu, gpu = load_model(dst, torch.float32), load_model(dst, torch.float32, "cuda")
    for (name, a), (_, b) in zip(cpu.state_dict().items(), gpu.state_dict().items()):
        assert b.device.type == "cuda" and torch.equal(a, b.cpu()), name


def test_training_on_cuda_follows_the_cpu_and_learns(tmp_path):
    """The tiny recipe end to end with --device cuda: same first losses as the CPU (float32), the loss
    falls, and the exported checkpoint loads and is scored."""
    from dataclasses import replace

    from minimax2.train.recipe import ExampleStream, build_model, build_tokenizer, get_recipe
    from minimax2.train.trainer import train

    r = get_recipe("tiny")
    tok = build_tokenizer(r)
    losses = {}
    for dev in ("cpu", "cuda"):
        got: list[float] = []
        train(build_model(r, tok), ExampleStream(tok, r.data_seed), replace(r.train, steps=3, device=dev),
              tmp_path / dev, progress=False, on_step=lambda log, got=got: got.append(log.loss))
        losses[dev] = got
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-3)
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "minimax2.cli", "train", "--recipe", "tiny", "--device", "cuda", "--bf16",
                        "--steps", "30", "--out", str(out), "--eval-n", "2", "--no-progress"],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] * 0.8
    assert (out / "model/config.json").exists() and (out / "model/MODEL_CARD.md").exists()
    assert load_model(out / "model", torch.float32, "cuda").device.type == "cuda"


def test_generate_cli_on_cuda(tiny_ckpt):
    p = subprocess.run([sys.executable, "-m", "minimax2.cli", "generate", "--model", str(tiny_ckpt), "--device", "cuda",
                        "--prompt", "Hello", "--max-tokens", "8", "--temperature", "0"],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
