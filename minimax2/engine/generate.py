"""The reference generation loop: one batch of requests, a contiguous KV region per sequence.

All prompts are prefilled in one flat forward; then every unfinished sequence decodes one token
per step. No scheduler, no paging, no prefix cache: the paged engine (llm_engine.py) is tested
against this loop, and `LLM` runs on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..chat.tokenizer import Tokenizer
from ..model.attention import AttentionMetadata
from ..model.minimax_m2 import MiniMaxM2
from .output import OutputText
from .sampler import make_generator, sample
from .sampling_params import SamplingParams


@dataclass
class SeqState:
    prompt_ids: list[int]
    params: SamplingParams
    out: OutputText | None
    generator: torch.Generator | None
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None


class ContextLengthError(ValueError):
    pass


def generate_batch(model: MiniMaxM2, tokenizer: Tokenizer | None, prompts: list[list[int]],
                   params: list[SamplingParams], eos_ids: list[int],
                   on_delta: Callable[[int, str], None] | None = None) -> list[SeqState]:
    """Run `prompts` to completion. `on_delta(i, text)` streams sequence i's text as it is released."""
    max_len = model.cfg.max_position_embeddings
    seqs = []
    for i, (p, sp) in enumerate(zip(prompts, params)):
        if not p:
            raise ValueError(f"prompt {i} is empty")
        if len(p) >= max_len:
            raise ContextLengthError(f"prompt {i} has {len(p)} tokens; the model's context is {max_len}")
        bad = [t for t in p if not 0 <= t < model.cfg.vocab_size]
        if bad:
            raise ValueError(f"prompt {i} has token id {bad[0]} outside the vocabulary (0..{model.cfg.vocab_size - 1})")
        specials = tokenizer.special_ids if tokenizer else set()
        out = OutputText(tokenizer, sp.stop, specials) if tokenizer else None
        seqs.append(SeqState(list(p), sp, out, make_generator(sp)))
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


def _run(model, seqs: list[SeqState], cap: int, eos_ids: list[int], on_delta) -> None:
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
            s = seqs[i]
            if _append(s, tok, eos_ids, on_delta, i, cap):
                still.append(i)
                feed[i] = [tok]
        active = still


def _append(s: SeqState, tok: int, eos_ids: list[int], on_delta, i: int, cap: int) -> bool:
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
