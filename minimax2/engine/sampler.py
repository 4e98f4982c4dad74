"""Token sampling: penalties, temperature, top-k, top-p, min-p, logprobs, per-request seeds.

Each request with a seed owns a `torch.Generator`, so its tokens do not depend on which other
requests share the batch. Rows without seeds share one draw from torch's global generator.

How it stays cheap at a 200,064-token vocabulary (the logits are never copied, sorted or
soft-maxed whole on the common path):

- Block maxima: the row is cut into blocks of 64 and `amax` (one vectorised pass) gives each
  block's maximum. The k largest logits of a row lie in the k blocks with the largest maxima, so
  top-k reads k x 64 gathered values instead of the row; greedy rows find their argmax in the
  first block holding the row's maximum.
- Top-k rows (the model card's 1.0 / 0.95 / 40) are batched: one `topk` over the block maxima,
  one gather, one `topk` over the candidates. Top-p and min-p then run over the k survivors.
- Everything after the candidate set is found runs per row, on that row's tensors alone, in a
  canonical order (logit descending, then token id), so a seeded row computes bit for bit the same
  thing alone or in any batch. The batched steps only select values (exact, no arithmetic); where a
  tie at a boundary makes the selection ambiguous the row takes the exact full-row path instead.
- Rows without a top-k cut (top-p alone, min-p alone, or plain temperature) take a per-row path
  over the full row: one exp pass, and for top-p a `topk` of growing size instead of a full sort.
- Draws are by inverse CDF: one uniform per row (from the row's generator, or the shared draw)
  searched in the cumulative weights of the allowed tokens.

Numerics are those of the reference definition (`logits / temperature`, then top-k keeping ties
with the k-th value, then top-p over the survivors' softmax, then min-p): temperatures below
1e-5 are greedy, and a row whose scaled logits have no usable maximum (NaN, +inf, overflow, all
-inf) falls back to its argmax over the non-NaN logits instead of raising.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from .sampling_params import SamplingParams

NO_TOKEN = -1  # returned for a row where every token was masked out
BLOCK = 64  # block of the block maxima; the vocabulary must split into blocks (else topk over whole rows)
MARGIN = 8  # candidates beyond k, so ties at the k-th value are seen whole (else the exact path)
CHUNK = 8  # rows per pass of the small batched steps: under torch's parallel grain, so they run inline
TOP_P_FIRST = 256  # top-p without top-k: candidates looked at first (x4 until the cut is inside)


def make_generator(params: SamplingParams, offset: int = 0) -> torch.Generator | None:
    if params.seed is None or params.greedy:
        return None
    g = torch.Generator()
    g.manual_seed((params.seed + offset) % 2**64)  # seed 2**64 - 1 with n > 1 wraps instead of overflowing
    return g


def apply_penalties(logits: torch.Tensor, params: SamplingParams, prompt_ids: list[int], output_ids: list[int]) -> torch.Tensor:
    """One row. Repetition penalty over prompt + output; presence/frequency over the output."""
    logits = logits.to(torch.float32, copy=True)
    if params.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(prompt_ids) | set(output_ids)), dtype=torch.long)
        if len(seen):
            v = logits[seen]
            logits[seen] = torch.where(v > 0, v / params.repetition_penalty, v * params.repetition_penalty)
    if output_ids and (params.presence_penalty or params.frequency_penalty):
        counts = torch.bincount(torch.tensor(output_ids), minlength=logits.shape[-1])[: logits.shape[-1]].float()
        logits -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0).float()
    return logits


def _block(vocab: int) -> int | None:
    """Block size for the block maxima, or None when whole-row topk is as cheap or the vocabulary does not split."""
    for b in (BLOCK, BLOCK // 2, BLOCK // 4):
        if vocab % b == 0 and vocab >= 64 * b:
            return b
    return None


def _fallback(row: torch.Tensor) -> int:
    """A row with no usable distribution: its argmax over the non-NaN logits."""
    return int(torch.nan_to_num(row.float(), nan=float("-inf")).argmax())


def _pick(weights: np.ndarray, u: float) -> int:
    """Inverse CDF: the first index whose cumulative weight exceeds u x total; never one that adds no weight
    (when u x total rounds up to the total: the last index that still adds weight)."""
    c = np.cumsum(weights, dtype=np.float64)
    return min(int(np.searchsorted(c, c[-1] * u, side="right")), int(np.searchsorted(c, c[-1], side="left")))


# The last step of a row: (token ids or None for the whole row in id order, float32 scaled logits, float64
# weights, the row's uniform) -> the result. `_draw` samples; `allowed_tokens` asks for the allowed set instead.
Choose = Callable[[Optional[np.ndarray], np.ndarray, np.ndarray, Callable[[], float]], object]


def _draw(ids: np.ndarray | None, s: np.ndarray, w: np.ndarray, u: Callable[[], float]) -> int:
    j = _pick(w, u())
    return j if ids is None else int(ids[j])


def _allowed(ids: np.ndarray | None, s: np.ndarray, w: np.ndarray, u: Callable[[], float]) -> np.ndarray:
    keep = np.flatnonzero(s > -np.inf)
    return np.sort(keep if ids is None else ids[keep])


def _canonical(ids: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logit descending, ties by token id: the same order whatever order the set came in."""
    order = np.lexsort((ids, -s))
    return ids[order], s[order]


def _finish(ids: np.ndarray, s: np.ndarray, params: SamplingParams, u, choose: Choose, top_p: bool = True):
    """The allowed-by-top-k tokens of one row (ids, float32 scaled logits, any order, the largest finite) ->
    top-p, min-p and the draw, in float64. Depends only on the set, so a row's token is the same in any batch."""
    ids, s = _canonical(ids, s)
    w = np.exp(s.astype(np.float64) - float(s[0]))  # probabilities relative to the top token's
    n = len(w)
    if top_p and params.top_p < 1.0:
        probs = w / w.sum()
        cum = np.cumsum(probs)
        n = int(np.count_nonzero(cum - probs < params.top_p))  # a prefix: the mass ranked above only grows
    if params.min_p > 0:
        n = min(n, int(np.count_nonzero(w[:n] >= params.min_p)))
    return choose(ids[:n], s[:n], w[:n], u)


def _full_row(row: torch.Tensor, params: SamplingParams, u, choose: Choose):
    """One row without a top-k cut (or whose top-k set was ambiguous in the batch): exact, over the whole row."""
    s = row.float() / params.temperature
    vocab = s.shape[-1]
    m = s.max()
    if not bool(torch.isfinite(m)):
        return _fallback_as(row, choose)
    m = float(m)
    neg_inf = float("-inf")
    if params.top_k and params.top_k < vocab:
        kth = torch.topk(s, params.top_k).values[-1]
        idx = torch.nonzero((s >= kth) & (s > neg_inf)).flatten()
        return _finish(idx.numpy(), s[idx].numpy(), params, u, choose)
    if params.top_p < 1.0:
        z = float(torch.exp(s.double() - m).sum())
        k = min(vocab, TOP_P_FIRST)
        while True:  # the top-p set from the k largest; k x 4 until the cut falls inside them
            v, i = torch.topk(s, k)
            v, i = v.numpy(), i.numpy()
            last = float(v[-1])
            sure = int(np.count_nonzero(v > last)) if k < vocab and last > neg_inf else k  # a tie at the edge: unsure
            if sure:
                ids, vals = _canonical(i[:sure], v[:sure])
                probs = np.exp(vals.astype(np.float64) - m) / z
                cum = np.cumsum(probs)
                n = int(np.count_nonzero(cum - probs < params.top_p))
                if n < sure or k == vocab or last == neg_inf:  # the cut is inside (or the rest weighs nothing)
                    return _finish(ids[:n], vals[:n], params, u, choose, top_p=False)
            k = min(vocab, 4 * k)
    if params.min_p > 0:
        floor = m + math.log(params.min_p)
        floor -= 1e-5 * (abs(floor) + abs(m) + 1.0)  # a margin for rounding; _finish cuts exactly
        idx = torch.nonzero(s >= floor).flatten()
        return _finish(idx.numpy(), s[idx].numpy(), params, u, choose)
    s_np = s.numpy()
    return choose(None, s.numpy(), torch.exp(s - m).numpy(), u)


def _fallback_as(row: torch.Tensor, choose: Choose):
    tok = _fallback(row)
    return tok if choose is _draw else np.array([tok])


def _sample_rows(x: torch.Tensor, rows: list[int], params: list[SamplingParams], uniforms: list,
                 choose: Choose = _draw) -> list:
    """Rows `rows` of x [B, V] (float32, contiguous, CPU) -> one token each. `uniforms[r]()` gives
    the uniform in [0, 1) of rows[r] (its generator's or the shared draw); called only when that row draws."""
    batch, vocab = x.shape
    out = [0] * len(rows)
    bs = _block(vocab)
    greedy = [r for r, p in enumerate(params) if p.greedy]
    cut = [r for r, p in enumerate(params) if not p.greedy and p.top_k and p.top_k < vocab]
    full = [r for r, p in enumerate(params) if not p.greedy and not (p.top_k and p.top_k < vocab)]
    need = [rows[r] for r in greedy + cut]
    bmax = None  # block maxima of the rows that need them: [len(need), V // bs]
    if bs and need:
        view = x.view(batch, vocab // bs, bs)
        bmax = view.amax(-1) if len(need) == batch else torch.stack([view[row].amax(-1) for row in need])
        where = {row: k for k, row in enumerate(need)} if len(need) < batch else None
    neg_inf = float("-inf")

    def gather(ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:  # x[ids[r], pos[r, j]]
        if len(ids) == batch and bool((ids == torch.arange(batch)).all()):
            return x.gather(1, pos)
        return torch.take(x, pos + ids[:, None] * vocab)

    def at(rs: list[int]) -> torch.Tensor:  # the bmax lines of rows rs
        return torch.tensor(rs if where is None else [where[row] for row in rs])

    for start in range(0, len(greedy), CHUNK):
        part = greedy[start:start + CHUNK]
        g = torch.tensor([rows[r] for r in part])
        if bmax is None:
            toks = x[g].argmax(-1)
        else:  # the first block holding the maximum holds its first occurrence
            bm = bmax[at([rows[r] for r in part])]
            pos = bm.argmax(-1)[:, None] * bs + torch.arange(bs)
            toks = pos.gather(1, gather(g, pos).argmax(-1, keepdim=True)).flatten()
            nan = torch.isnan(bm).any(-1).tolist()
        for k, (r, t) in enumerate(zip(part, toks.tolist())):
            out[r] = int(x[rows[r]].argmax()) if bmax is not None and nan[k] else t  # NaN: torch's argmax
            if choose is not _draw:
                out[r] = np.array([out[r]])

    for start in range(0, len(cut), CHUNK):
        part = cut[start:start + CHUNK]
        ids = torch.tensor([rows[r] for r in part])
        k_max = max(params[r].top_k for r in part)
        temps = torch.tensor([[params[r].temperature] for r in part], dtype=torch.float32)
        if bmax is None:
            width = min(vocab, k_max + MARGIN)
            v, i = torch.topk(x[ids], width)
            outside = None
        else:
            nblocks = vocab // bs
            kb = min(nblocks, k_max + MARGIN)
            bv, bi = torch.topk(bmax[at(ids.tolist())], kb)
            pos = (bi[:, :, None] * bs + torch.arange(bs)).flatten(1)
            cand = gather(ids, pos)
            width = min(cand.shape[1], k_max + MARGIN)
            v, j = torch.topk(cand, width)
            i = pos.gather(1, j)
            # everything outside the gathered blocks is at most the last chosen block's maximum
            outside = bv[:, -1:].float() / temps if kb < nblocks else None
        s = v.float() / temps  # exactly `row / temperature`, on the candidates only
        kth = s.gather(1, torch.tensor([[params[r].top_k - 1] for r in part]))
        count = ((s >= kth) & (s > neg_inf)).sum(1)  # a prefix: s is sorted descending
        # the candidates hold the whole allowed set when all beyond them is below the k-th value (or -inf)
        ok = (s[:, -1:] < kth) | (s[:, -1:] == neg_inf) if width < vocab else torch.ones_like(kth, dtype=torch.bool)
        if outside is not None:
            ok &= (outside < kth) | (outside == neg_inf)
        usable = torch.isfinite(s[:, :1])  # NaN and +inf rank first in topk
        i_np, s_np = i.numpy(), s.numpy()
        for c, (r, cnt, good, fine) in enumerate(zip(part, count.tolist(), ok.flatten().tolist(),
                                                    usable.flatten().tolist())):
            row = x[rows[r]]
            if not fine:
                out[r] = _fallback_as(row, choose)
            elif good:
                out[r] = _finish(i_np[c, :cnt], s_np[c, :cnt], params[r], uniforms[r], choose)
            else:
                out[r] = _full_row(row, params[r], uniforms[r], choose)

    for r in full:
        out[r] = _full_row(x[rows[r]], params[r], uniforms[r], choose)
    return out


@torch.inference_mode()
def allowed_tokens(logits: torch.Tensor, params: list[SamplingParams]) -> list[np.ndarray]:
    """The token ids (sorted) each row may draw after temperature, top-k, top-p and min-p, found by the code
    `sample` draws with (no penalties or processors here; a greedy or fallback row: its argmax alone)."""
    x = logits.detach().to("cpu", torch.float32).contiguous()
    return _sample_rows(x, list(range(len(params))), params, [None] * len(params), _allowed)


@torch.inference_mode()
def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None],
           history: list[tuple[list[int], list[int]] | None] | None = None,
           errors: dict[int, Exception] | None = None) -> tuple[list[int], list[dict | None]]:
    """logits [B, V] -> (one token id per row, logprob info per row or None). A row whose logits
    processors masked every token gets NO_TOKEN; the engine ends that sequence.

    `history[i]` = (prompt ids, output ids) of row i; required for rows with logits processors or penalties.
    With `errors`, a row whose processors or sampling raise gets NO_TOKEN and its exception in
    `errors[row]` while the other rows are sampled as usual; without it the exception propagates.
    """
    x = logits.detach()
    # one float32 copy on the CPU (per-request generators and processors live there); none when it already is
    owned = x.device.type != "cpu" or x.dtype != torch.float32
    x = x.to("cpu", torch.float32)
    if any(p.logits_processors for p in params) and not owned:
        x = x.clone()  # processors get (and may edit) float32 rows: never the caller's
    x = x.contiguous()
    failed: dict[int, Exception] = {} if errors is None else errors

    def guarded(i: int, fn):
        if errors is None:
            return fn()
        try:
            return fn()
        except Exception as e:  # a processor's bug or a broken row fails that request only
            failed[i] = e
            return None

    for i, p in enumerate(params):
        if p.logits_processors:
            def process(i=i, p=p):
                row = x[i]
                for proc in p.logits_processors:
                    row = proc(history[i][1] if history else [], row)
                x[i] = row
            guarded(i, process)
    # a processor allowed nothing (only processed rows can be all -inf; skipping the others saves a full pass)
    dead = {i for i, p in enumerate(params) if p.logits_processors and i not in failed
            and not bool(torch.isfinite(x[i]).any())}
    out = [NO_TOKEN] * len(params)
    live = [i for i in range(len(params)) if i not in dead and i not in failed]

    shared = [i for i in live if not params[i].greedy and generators[i] is None]
    draws = dict(zip(shared, torch.rand(len(shared), dtype=torch.float64).tolist())) if shared else {}

    def uniform(i: int):
        g = generators[i]
        if g is None:
            return lambda: draws[i]
        return lambda: float(torch.rand(1, generator=g, dtype=torch.float64))

    groups = [([i for i in live if not params[i].has_penalties], x)]
    penalised = []
    for i in live:
        if params[i].has_penalties:
            row = guarded(i, lambda i=i: apply_penalties(x[i], params[i], *history[i]))
            if row is not None:
                penalised.append((i, row))
    if penalised:
        groups.append(([i for i, _ in penalised], torch.stack([row for _, row in penalised])))

    def run(ids: list[int], data: torch.Tensor, at: list[int]):
        for i, t in zip(ids, _sample_rows(data, at, [params[i] for i in ids], [uniform(i) for i in ids])):
            out[i] = t

    for ids, data in groups:
        if not ids:
            continue
        at = ids if data is x else list(range(len(ids)))
        if errors is None:
            run(ids, data, at)
            continue
        states = {i: generators[i].get_state() for i in ids if generators[i] is not None}
        try:
            run(ids, data, at)
        except Exception:  # noqa: BLE001 - one row broke the batched pass: redo row by row, so it fails alone
            for i, state in states.items():
                generators[i].set_state(state)
            for i, row in zip(ids, at):
                guarded(i, lambda i=i, row=row: run([i], data, [row]))
    for i in failed:
        out[i] = NO_TOKEN

    infos: list[dict | None] = [None] * len(params)
    want = [i for i, p in enumerate(params) if p.logprobs is not None and out[i] != NO_TOKEN]
    if want:
        lp = torch.log_softmax(x[want].float(), dim=-1)
        for r, i in enumerate(want):
            k = params[i].logprobs
            top = torch.topk(lp[r], k) if k else None
            infos[i] = {"token_id": out[i], "logprob": float(lp[r, out[i]]),
                        "top": [] if top is None else list(zip(top.indices.tolist(), top.values.tolist()))}
    return out, infos
