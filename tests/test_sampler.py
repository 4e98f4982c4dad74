"""The sampler at a real vocabulary: its allowed sets equal a per-row reference of the definitions
(temperature, top-k keeping ties with the k-th value, top-p over the survivors, min-p), seeded rows draw
the same tokens alone or in any batch, greedy rows are the argmax, and draws follow the distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from minimax2 import SamplingParams
from minimax2.engine.sampler import NO_TOKEN, allowed_tokens, make_generator, sample

M2_VOCAB = 200_064
INF = float("inf")


def reference_allowed(row: torch.Tensor, p: SamplingParams) -> list[int]:
    """One row, straight from the definitions, whole-vocabulary sorts and softmaxes (float64 after the
    float32 temperature scaling; ties at the top-p cut ranked by token id)."""
    s = row.float() / p.temperature
    if p.top_k and p.top_k < s.shape[-1]:
        kth = torch.topk(s, p.top_k).values[-1]
        s = s.masked_fill(s < kth, -INF)
    d = s.double()
    if p.top_p < 1.0:
        ranked, order = torch.sort(d, descending=True, stable=True)
        probs = ranked.softmax(-1)
        d = d.index_fill(0, order[probs.cumsum(-1) - probs >= p.top_p], -INF)
    if p.min_p > 0:
        probs = d.softmax(-1)
        d = d.masked_fill(probs < p.min_p * probs.max(), -INF)
    return torch.nonzero(d > -INF).flatten().tolist()


PARAMS = [SamplingParams(temperature=t, top_k=k, top_p=pp, min_p=mp)
          for t, k, pp, mp in [(1.0, 40, 0.95, 0.0), (1.0, 40, 1.0, 0.0), (0.7, 1, 1.0, 0.0), (1.3, 5, 0.5, 0.0),
                               (1.0, 300, 0.9, 0.05), (0.6, 0, 0.95, 0.0), (1.0, 0, 0.5, 0.0), (1.0, 0, 1.0, 0.1),
                               (2.0, 0, 0.8, 0.02), (1.0, 0, 1.0, 0.0), (0.9, 40, 1.0, 0.3), (1.0, 2000, 0.99, 0.0)]]


def _logits(batch: int, vocab: int, seed: int) -> torch.Tensor:
    """Random rows of several kinds: plain, peaked, bf16-rounded (many ties), mostly -inf, few finite."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, vocab, generator=g)
    for r in range(batch):
        kind = r % 5
        if kind == 1:
            x[r] *= 4
        elif kind == 2:
            x[r] = (x[r] * 3).bfloat16().float()
        elif kind == 3:
            x[r, torch.rand(vocab, generator=g) < 0.9] = -INF
        elif kind == 4:
            keep = torch.randperm(vocab, generator=g)[:7]
            row = torch.full((vocab,), -INF)
            row[keep] = x[r, keep]
            x[r] = row
    return x


@pytest.mark.parametrize("vocab", [1000, 8192])
def test_allowed_sets_equal_the_reference(vocab):
    for seed in range(4):
        x = _logits(len(PARAMS), vocab, seed)
        params = PARAMS[seed % len(PARAMS):] + PARAMS[:seed % len(PARAMS)]  # each row meets every setting
        got = allowed_tokens(x, params)
        for r, p in enumerate(params):
            assert got[r].tolist() == reference_allowed(x[r], p), (seed, r, p)
        # and each row alone (a different batch shape, other block-selection widths)
        for r, p in enumerate(params[:4]):
            assert allowed_tokens(x[r:r + 1], [p])[0].tolist() == reference_allowed(x[r], p)


def test_allowed_sets_at_the_m2_vocabulary():
    card = SamplingParams(temperature=1.0, top_p=0.95, top_k=40)
    params = [card, SamplingParams(top_k=40), SamplingParams(top_p=0.9), SamplingParams(min_p=0.05), card]
    x = _logits(len(params), M2_VOCAB, 7) * 2
    x[1, 1000:1100] = x[1].max() + 1  # a 100-way tie at the top: top-k keeps all of it
    x[4, 1000:1100] = x[4].max() + 1  # (top-p 0.95 cuts inside it, by token id)
    got = allowed_tokens(x, params)
    for r, p in enumerate(params):
        assert got[r].tolist() == reference_allowed(x[r], p), r
    assert got[1].tolist() == list(range(1000, 1100))
    assert 50 < len(got[4]) < 100 and got[4].tolist() == list(range(1000, 1000 + len(got[4])))


MATES = [SamplingParams(temperature=0.0), SamplingParams(temperature=1.0),
         SamplingParams(temperature=1.0, top_k=5000, top_p=0.9), SamplingParams(temperature=0.5, top_k=3)]


def _seeded(vocab: int) -> list[SamplingParams]:
    return [SamplingParams(temperature=1.0, top_p=0.95, top_k=40, seed=1),
            SamplingParams(temperature=0.8, top_k=1000, seed=2),
            SamplingParams(temperature=1.0, top_p=0.9, seed=3),
            SamplingParams(temperature=1.2, min_p=0.05, seed=4),
            SamplingParams(temperature=1.0, seed=5),
            SamplingParams(temperature=1.0, top_k=40, min_p=0.1, repetition_penalty=1.3, presence_penalty=0.5, seed=6)]


@pytest.mark.parametrize("vocab", [1000, M2_VOCAB])
def test_seeded_rows_ignore_their_batch(vocab):
    seeded = _seeded(vocab)
    steps = 4
    x = [(_logits(len(seeded), vocab, 100 + t) * 2) for t in range(steps)]  # step t's logits of each seeded row
    history = ([1, 2, 3], [4, 4, 5])

    def run(order: list[int], mates: list[SamplingParams], mate_seed: int) -> dict[int, list[int]]:
        gens = {i: make_generator(seeded[i]) for i in order}
        mate_gens = [make_generator(m) for m in mates]
        got: dict[int, list[int]] = {i: [] for i in order}
        for t in range(steps):
            noise = _logits(len(mates), vocab, mate_seed + t)
            rows = [x[t][i] for i in order] + list(noise)
            params = [seeded[i] for i in order] + mates
            toks, _ = sample(torch.stack(rows), params, [gens[i] for i in order] + mate_gens,
                             [history] * len(params))
            for k, i in enumerate(order):
                got[i].append(toks[k])
        return got

    alone = {i: run([i], [], 0)[i] for i in range(len(seeded))}
    batched = run(list(range(len(seeded))), MATES, 7)
    shuffled = run([3, 0, 5, 1, 4, 2], MATES[::-1] + MATES, 11)
    assert batched == alone and shuffled == alone
    assert len({tuple(v) for v in alone.values()}) > 1


def test_temperature_zero_is_the_argmax():
    x = _logits(8, M2_VOCAB, 3) * 3
    x[1, [5, 70_000, 199_999]] = x[1].max() + 1  # ties at the maximum: the first one, as argmax
    x[2, 123] = INF
    x[3] = -INF
    x[4, 77] = math.nan  # NaN: torch's argmax (the NaN)
    x[6] = x[6].bfloat16().float()
    temps = [0.0, 0.0, 0.0, 0.0, 0.0, 1e-6, 0.0, 1.0]
    params = [SamplingParams(temperature=t, top_k=40, seed=9) for t in temps]
    toks, _ = sample(x, params, [make_generator(p) for p in params])
    want = x.argmax(-1).tolist()
    assert toks[:7] == want[:7] and toks[1] == 5 and toks[4] == 77
    for vocab in (1000, 8192):  # the other two paths (whole-row topk; a smaller block) and bf16 logits
        y = _logits(6, vocab, 5).bfloat16()
        toks, _ = sample(y, [SamplingParams(temperature=0)] * 6, [None] * 6)
        assert toks == y.float().argmax(-1).tolist()


def test_draws_follow_the_distribution():
    vocab = 8192
    x = torch.full((16, vocab), -5.0)
    want = torch.tensor([0.5, 0.3, 0.15, 0.05])
    x[:, [4000, 17, 8191, 64]] = want.log()
    p = SamplingParams(temperature=1.0, top_k=4)
    counts = torch.zeros(4)
    for _ in range(200):
        toks, _ = sample(x, [p] * 16, [None] * 16)
        for t in toks:
            counts[[4000, 17, 8191, 64].index(t)] += 1
    n = counts.sum()
    sigma = (n * want * (1 - want)).sqrt()
    assert ((counts - n * want).abs() < 5 * sigma).all(), counts


def test_a_failing_row_fails_alone_and_processors_never_touch_the_callers_logits():
    x = torch.randn(3, 8192)
    before = x.clone()

    def only_seven(_ids, row):
        out = torch.full_like(row, -INF)
        out[7] = row[7]
        row.fill_(0)  # a processor that edits its row in place
        return out

    params = [SamplingParams(temperature=1.0, top_k=40, seed=1, logits_processors=[only_seven]),
              SamplingParams(temperature=1.0, repetition_penalty=1.2),  # no history: apply_penalties raises
              SamplingParams(temperature=1.0, top_k=40, top_p=0.95, seed=2)]
    errors: dict[int, Exception] = {}
    toks, _ = sample(x, params, [make_generator(p) for p in params], [([], []), None, ([], [])], errors)
    assert toks[0] == 7 and toks[1] == NO_TOKEN and list(errors) == [1] and 0 <= toks[2] < 8192
    assert torch.equal(x, before)
    masked = [SamplingParams(logits_processors=[lambda _ids, row: torch.full_like(row, -INF)])]
    assert sample(x[:1], masked, [None], [([], [])])[0] == [NO_TOKEN]


def test_logprobs_are_the_processed_distribution():
    x = torch.randn(2, 8192)
    params = [SamplingParams(temperature=0, logprobs=3), SamplingParams(temperature=1.0, top_k=40, logprobs=0, seed=3)]
    toks, infos = sample(x, params, [make_generator(p) for p in params])
    lp = torch.log_softmax(x, -1)
    for r in range(2):
        assert infos[r]["token_id"] == toks[r]
        assert infos[r]["logprob"] == pytest.approx(float(lp[r, toks[r]]))
    assert [t for t, _ in infos[0]["top"]] == torch.topk(lp[0], 3).indices.tolist() and infos[1]["top"] == []
    assert np.isfinite(infos[1]["logprob"])
