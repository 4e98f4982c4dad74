"""The reference generation loop the paged engine is tested against: one batch of requests, a
contiguous KV region per sequence.

All prompts are prefilled in one flat forward; then every unfinished sequence decodes one token per
step. No scheduler, no paging, no prefix cache, no request validation (the engine's own, in
`LLMEngine.add_request`, is tested on the engine; callers here pass valid prompts). It shares the
model, the sampler and the detokenizer (`OutputText`) with the engine, and keeps its own few lines of
stop/length bookkeeping so that the engine's are checked against an independent version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from minimax2.chat.tokenizer import Tokenizer
from minimax2.engine.output import OutputText
from minimax2.engine.sampler import make_generator, sample
from minimax2.engine.sampling_params import SamplingParams
from minimax2.model.attention import AttentionMetadata
from minimax2.model.minimax_m2 import MiniMaxM2


@dataclass
class ReferenceSeq:
    prompt_ids: list[int]
    params: SamplingParams
    out: OutputText | None
    generator: torch.Generator | None
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None


def generate_batch(model: MiniMaxM2, tokenizer: Tokenizer | None, prompts: list[list[int]],
                   params: list[SamplingParams], eos_ids: list[int],
                   on_delta: Callable[[int, str], None] | None = None) -> list[ReferenceSeq]:
    """Run `prompts` to completion. `on_delta(i, text)` streams sequence i's text as it is released."""
    max_len = model.cfg.max_position_embeddings
    assert all(0 < len(p) < max_len for p in prompts), "the reference loop takes only valid prompts"
    specials = tokenizer.special_ids if tokenizer else set()
    seqs = [ReferenceSeq(list(p), sp, OutputText(tokenizer, sp.stop, specials) if tokenizer else None,
                         make_generator(sp)) for p, sp in zip(prompts, params)]
    cap = max(min(len(s.prompt_ids) + s.params.max_tokens, max_len) for s in seqs)
    saved = [(layer.attn.k_cache, layer.attn.v_cache) for layer in model.layers]  # an engine's cache, if any
    model.allocate_kv_cache(cap * len(seqs))
    try:
        with torch.inference_mode():
            _run(model, seqs, cap, eos_ids, on_delta)
    finally:
        for layer, (k, v) in zip(model.layers, saved):
            layer.attn.k_cache, layer.attn.v_cache = k, v
    return seqs


def _run(model, seqs: list[ReferenceSeq], cap: int, eos_ids: list[int], on_delta) -> None:
    dev = model.device
    active = list(range(len(seqs)))
    feed = {i: seqs[i].prompt_ids for i in active}  # tokens to run this step, per sequence
    while active:
        ctx = [len(seqs[i].prompt_ids) + len(seqs[i].token_ids) for i in active]
        q_lens = [len(feed[i]) for i in active]
        meta = AttentionMetadata.from_block_tables(q_lens, ctx, [[i] for i in active], cap, dev)
        ids = torch.tensor([t for i in active for t in feed[i]], device=dev)
        pos = torch.cat([torch.arange(c - q, c) for q, c in zip(q_lens, ctx)]).to(dev)
        last = torch.tensor(meta.cu_seqlens_q[1:], device=dev) - 1
        logits = model(ids, pos, meta, logits_indices=last)
        tokens, _ = sample(logits, [seqs[i].params for i in active], [seqs[i].generator for i in active],
                           [(seqs[i].prompt_ids, seqs[i].token_ids) for i in active])
        still = []
        for i, tok in zip(active, tokens):
            if _record(seqs[i], tok, eos_ids, on_delta, i, cap):
                still.append(i)
                feed[i] = [tok]
        active = still


def _record(s: ReferenceSeq, tok: int, eos_ids: list[int], on_delta, i: int, cap: int) -> bool:
    """Record one sampled token; returns whether the sequence goes on."""
    sp = s.params
    if (tok in eos_ids and not sp.ignore_eos) or tok in sp.stop_token_ids:
        s.finish_reason = "stop"
    else:
        s.token_ids.append(tok)
        if s.out is not None:
            delta, stopped = s.out.push(tok)
            if delta and on_delta:
                on_delta(i, delta)
            if stopped:
                s.finish_reason = "stop"
        if s.finish_reason is None and (len(s.token_ids) >= sp.max_tokens
                                        or len(s.prompt_ids) + len(s.token_ids) >= cap):
            s.finish_reason = "length"
    if s.finish_reason is None:
        return True
    if s.out is not None:
        tail = s.out.finish()
        if tail and on_delta:
            on_delta(i, tail)
        s.text = s.out.text
    return False
