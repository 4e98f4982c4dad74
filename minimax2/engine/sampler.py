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
    g.manual_seed(params.seed + offset)
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


@torch.inference_mode()
def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None],
           history: list[tuple[list[int], list[int]] | None] | None = None) -> tuple[list[int], list[dict | None]]:
    """logits [B, V] -> (one token id per row, logprob info per row or None). A row whose logits
    processors masked every token gets NO_TOKEN; the engine ends that sequence.

    `history[i]` = (prompt ids, output ids) of row i; required for rows with logits processors or penalties.
    """
    logits = logits.float().cpu()  # per-request generators and processors live on the CPU
    for i, p in enumerate(params):
        if p.logits_processors:
            row = logits[i]
            for proc in p.logits_processors:
                row = proc(history[i][1] if history else [], row)
            logits[i] = row
    out = logits.argmax(-1).tolist()
    # a processor allowed nothing (only processed rows can be all -inf; skipping the others saves a full pass)
    dead = {i for i, p in enumerate(params) if p.logits_processors and not torch.isfinite(logits[i]).any()}
    for i, p in enumerate(params):
        row = logits[i]
        if i in dead:
            out[i] = NO_TOKEN
            continue
        if p.has_penalties:
            row = apply_penalties(row, p, *history[i])
            out[i] = int(row.argmax())
        if not p.greedy:
            probs = filter_logits(row, p).softmax(-1)
            out[i] = int(torch.multinomial(probs, 1, generator=generators[i]).item())
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
