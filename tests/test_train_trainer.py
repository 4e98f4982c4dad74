"""The trainer on the tiny recipe: schedule, learning, balancing, resume, accumulation, DDP, bf16."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from minimax2.model.attention import AttentionMetadata
from minimax2.train import balance
from minimax2.train.recipe import ExampleStream, build_model, build_tokenizer, get_recipe
from minimax2.train.schedule import lr_at
from minimax2.train.trainer import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    r = get_recipe("tiny")
    tok = build_tokenizer(r)
    return r, tok


def _run(setup, out, steps=6, resume=False, stop_after=None, **cfg_kw):
    r, tok = setup
    cfg = replace(r.train, steps=steps, **cfg_kw)
    model = build_model(r, tok)
    losses = []

    def on_step(log):
        losses.append(log.loss)
        if stop_after is not None and log.step + 1 == stop_after:
            raise _Stop

    try:
        train(model, ExampleStream(tok, r.data_seed), cfg, out, resume=resume, progress=False, on_step=on_step)
    except _Stop:
        pass
    return losses, model


class _Stop(Exception):
    pass


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 1.0, 10, 100, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lr_at(100, 1.0, 10, 100, 0.1) == pytest.approx(0.1)


def test_loss_goes_down(setup, tmp_path):
    losses, _ = _run(setup, tmp_path, steps=12)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses


def test_resume_gives_the_same_next_step_loss(setup, tmp_path):
    full, _ = _run(setup, tmp_path / "a", steps=6, save_every=3)
    first, _ = _run(setup, tmp_path / "b", steps=6, save_every=3, stop_after=4)  # state saved after step 3
    assert first == full[:4]
    rest, _ = _run(setup, tmp_path / "b", steps=6, save_every=3, resume=True)
    assert rest == full[3:]


def test_gradient_accumulation_matches_one_big_batch(setup, tmp_path):
    one, m1 = _run(setup, tmp_path / "a", steps=3)
    two, m2 = _run(setup, tmp_path / "b", steps=3, accum=2)
    assert two == pytest.approx(one, rel=1e-5)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_bf16_autocast_trains(setup, tmp_path):
    losses, _ = _run(setup, tmp_path, steps=3, bf16=True)
    assert all(torch.isfinite(torch.tensor(losses)))
    fp32, _ = _run(setup, tmp_path / "fp32", steps=1)
    assert losses[0] == pytest.approx(fp32[0], rel=0.02)


def test_bias_balancing_reduces_load_spread(setup):
    r, tok = setup
    model = build_model(r, tok).train()
    with torch.no_grad():  # biases that send almost every token to experts 0 and 1
        for layer in model.layers:
            bias = layer.moe.e_score_correction_bias
            bias.zero_()
            bias[:2] = 0.3
    ids = torch.randint(0, tok.get_vocab_size(), (512,))
    pos, meta = torch.arange(128).repeat(4), AttentionMetadata.for_batch(4, 128)

    def spreads():
        with torch.no_grad():
            model(ids, pos, meta)
        return [balance.spread(load) for load in balance.layer_loads(model)]

    before = spreads()
    for _ in range(60):
        spreads()
        balance.update_bias(model, balance.layer_loads(model), rate=0.02)
    after = spreads()
    assert all(b > 1.5 and a < 0.4 * b for a, b in zip(after, before)), (before, after)


def _torchrun(out: Path, nproc: int) -> list[float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
           "-m", "minimax2", "train", "--recipe", "tiny", "--steps", "4", "--out", str(out), "--eval-n", "0",
           "--no-progress", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_ddp_two_processes_match_one_process(tmp_path):
    one = _torchrun(tmp_path / "one", 1)
    two = _torchrun(tmp_path / "two", 2)
    assert len(one) == 4 and two == pytest.approx(one, rel=1e-5, abs=1e-6)
