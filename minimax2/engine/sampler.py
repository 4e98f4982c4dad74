"""Token sampling: penalties, temperature, top-k, top-p, min-p, logprobs, per-request seeds.

Each request with a seed owns a `torch.Generator`, so its tokens do not depend on which other
requests share the batch. Rows without penalties or filters take a vectorised fast path.
"""

from __future__ import annotations

import torch

from .sampling_params import SamplingParams


def make_generator(params: SamplingParams, offset: int = 0) -> torch.Generator | None:
    if params.seed is None or params.greedy:
        return None
    g = torch.Generator()
    g.manual_seed((params.seed + offset) % 2**64)  # seed 2**64 - 1 with n > 1 wraps instead of overflowing
    return g


def apply_penalties(logits: torch.Tensor, params: SamplingParams, prompt_ids: list[int], output_ids: list[int]) -> torch.Tensor:
    """One row. Repetition penalty over prompt + output; presence/frequency over the output."""
    logits = logits.clone()
    if params.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(prompt_ids) | set(output_ids)), dtype=torch.long)
        if len(seen):
            v = logits[seen]
            logits[seen] = torch.where(v > 0, v / params.repetition_penalty, v * params.repetition_penalty)
    if output_ids and (params.presence_penalty or params.frequency_penalty):
        counts = torch.bincount(torch.tensor(output_ids), minlength=logits.shape[-1])[: logits.shape[-1]].float()
        logits -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0).float()
    return logits


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """One row of float32 logits -> temperature-scaled logits with top-k / top-p / min-p cut to -inf."""
    logits = logits / params.temperature
    if params.top_k and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens ranked above it already reach top_p (the top one always stays)
        drop = probs.cumsum(-1) - probs >= params.top_p
        logits = logits.index_fill(0, order[drop], float("-inf"))
    if params.min_p > 0:
        probs = logits.softmax(-1)
        logits = logits.masked_fill(probs < params.min_p * probs.max(), float("-inf"))
    return logits


NO_TOKEN = -1  # returned for a row where every token was masked out


def draw(row: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from one row of float32 logits. Numerically safe for every accepted parameter: a row whose
    filtered distribution is not a usable one (NaN / inf logits from a broken model) falls back to its
    argmax over the finite logits instead of raising inside the engine loop."""
    probs = filter_logits(row, params).softmax(-1)
    if bool(torch.isfinite(probs).all()) and float(probs.sum()) > 0:
        return int(torch.multinomial(probs, 1, generator=generator).item())
    return int(torch.nan_to_num(row, nan=float("-inf")).argmax())


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
    logits = logits.float().cpu()  # per-request generators and processors live on the CPU
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
                row = logits[i]
                for proc in p.logits_processors:
                    row = proc(history[i][1] if history else [], row)
                logits[i] = row
            guarded(i, process)
    out = logits.argmax(-1).tolist()
    # a processor allowed nothing (only processed rows can be all -inf; skipping the others saves a full pass)
    dead = {i for i, p in enumerate(params) if p.logits_processors and not torch.isfinite(logits[i]).any()}
    for i, p in enumerate(params):
        if i in dead or i in failed:
            out[i] = NO_TOKEN
            continue

        def pick(i=i, p=p):
            row, tok = logits[i], out[i]
            if p.has_penalties:
                row = apply_penalties(row, p, *history[i])
                tok = int(row.argmax())
            return draw(row, p, generators[i]) if not p.greedy else tok

        tok = guarded(i, pick)
        out[i] = NO_TOKEN if i in failed else tok
    infos: list[dict | None] = [None] * len(params)
    want = [i for i, p in enumerate(params) if p.logprobs is not None and out[i] != NO_TOKEN]
    if want:
        lp = torch.log_softmax(logits[want], dim=-1)
        for r, i in enumerate(want):
            k = params[i].logprobs
            top = torch.topk(lp[r], k) if k else None
            infos[i] = {"token_id": out[i], "logprob": float(lp[r, out[i]]),
                        "top": [] if top is None else list(zip(top.indices.tolist(), top.values.tolist()))}
    return out, infos
