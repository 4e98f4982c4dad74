"""Timed runs: prefill and decode tok/s of the engine and of transformers' `generate` on the same
prompts, medians over runs, and the shared-prefix agent scenario (TTFT cold vs a prefix-cache hit)."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

from ..engine.llm import LLM
from ..engine.llm_engine import LLMEngine
from ..engine.sampling_params import SamplingParams


def _files(path: str | Path) -> list[Path]:
    path = Path(path)
    return sorted(path.glob("*.safetensors")) if path.is_dir() else [path]


def warm_page_cache(path: str | Path) -> None:
    """Read a checkpoint's files (a directory's *.safetensors, or one file) once, so that a mapped model's
    timed runs read memory, not the disk: a short warm-up run touches only the experts it routes to,
    and another checkpoint read since may have pushed the rest out of the page cache."""
    for f in _files(path):
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass


def release_page_cache(path: str | Path) -> None:
    """Drop a checkpoint's clean pages from the page cache (`posix_fadvise` DONTNEED; pages that a running
    process maps stay). Where several checkpoints outgrow RAM, the one read last is not the one kept:
    pages a finished run mapped and used often count as active, the new ones read once as inactive,
    and the kernel evicts the inactive first, so a mapped run then faults its experts in from disk
    (measured here: fp8 slice batch 1 at 65-72% of the roofline after int8 and int4 runs, 85% alone)."""
    for f in _files(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def random_prompts(batch: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, vocab - 10, (batch, length), generator=g).tolist()


def engine_run(engine: LLMEngine, prompts: list[list[int]], new_tokens: int) -> dict:
    """Prefill all prompts, then decode; returns prefill tok/s, decode tok/s (after every first token).
    The prefill is cold: the prefix cache is emptied first (a run repeating earlier prompts would
    otherwise find them cached and time one token each), and prompts sharing a prefix among themselves
    are refused, since their prefill would not be what it claims."""
    sp = SamplingParams(max_tokens=new_tokens, temperature=0, ignore_eos=True)
    engine.reset_prefix_cache()
    hits = engine.block_manager.prefix_hits
    for i, p in enumerate(prompts):
        engine.add_request(f"b{i}", p, sp)
    t0 = time.perf_counter()
    first, generated, t_first = set(), 0, None
    while engine.has_unfinished():
        for o in engine.step():
            if o.request_id not in first:
                first.add(o.request_id)
                if len(first) == len(prompts):
                    t_first = time.perf_counter()
            elif o.new_token_ids:
                generated += 1
    t1 = time.perf_counter()
    if engine.block_manager.prefix_hits != hits:
        raise ValueError(f"{engine.block_manager.prefix_hits - hits} prompt tokens came from the prefix cache: "
                         "a prefill benchmark needs prompts that share no prefix")
    return {"prefill_tok_s": sum(map(len, prompts)) / (t_first - t0), "decode_tok_s": generated / (t1 - t_first)}


def hf_run(model, prompts: list[list[int]], new_tokens: int) -> dict:
    """transformers `generate` on the model's device: prefill (one new token), then the whole run."""
    ids = torch.tensor(prompts, device=model.device)

    def timed(n: int) -> float:
        _sync(ids.device)
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        _sync(ids.device)
        return time.perf_counter() - t

    with torch.inference_mode():
        t_prefill, total = timed(1), timed(new_tokens)
    return {"prefill_tok_s": ids.numel() / t_prefill, "decode_tok_s": len(prompts) * (new_tokens - 1) / (total - t_prefill)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_of(fn, runs: int) -> dict:
    results = [fn() for _ in range(runs)]
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def prefix_scenario(llm: LLM, system_len: int = 2000, convs: int = 8, turns: int = 4, new_tokens: int = 32) -> dict:
    eng, vocab = llm.engine, llm.cfg.vocab_size
    system = random_prompts(1, system_len, vocab, seed=1)[0]
    sp = SamplingParams(max_tokens=new_tokens, temperature=0, ignore_eos=True)

    def ttft(rid, prompt):
        eng.add_request(rid, prompt, sp)
        t = time.perf_counter()
        while True:
            if any(o.request_id == rid for o in eng.step()):
                dt = time.perf_counter() - t
                break
        eng.abort(rid)
        return dt

    cold = ttft("cold", random_prompts(1, system_len + 50, vocab, seed=2)[0])  # nothing of it is cached
    ttft("warm-up", system + random_prompts(1, 50, vocab, seed=3)[0])
    hit = ttft("hit", system + random_prompts(1, 50, vocab, seed=4)[0])
    histories = [system + random_prompts(1, 40, vocab, seed=10 + c)[0] for c in range(convs)]
    hits0, queries0, tokens, t = eng.block_manager.prefix_hits, eng.block_manager.prefix_queries, 0, time.perf_counter()
    for turn in range(turns):
        outs = llm.generate(histories, sp)
        for c, o in enumerate(outs):
            histories[c] = histories[c] + o.outputs[0].token_ids + random_prompts(1, 30, vocab, seed=100 * turn + c)[0]
            tokens += len(o.outputs[0].token_ids)
    elapsed = time.perf_counter() - t
    bm = eng.block_manager
    return {"ttft_cold_s": cold, "ttft_prefix_hit_s": hit, "hit_over_cold": hit / cold,
            "turns_output_tok_s": tokens / elapsed,
            "prefix_hit_rate": (bm.prefix_hits - hits0) / max(1, bm.prefix_queries - queries0)}
