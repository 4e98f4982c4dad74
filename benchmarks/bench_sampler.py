"""The sampler at M2's vocabulary (200,064): `sample()` at batch 1, 8 and 16 with the model card's
temperature 1.0 / top-p 0.95 / top-k 40 (unseeded, and with a seed per request), greedy, and, for
information, top-p alone and plain temperature; the new sampler against the old one (copied below as
the baseline: all [B, V] logits copied, every row filtered over the whole vocabulary with a full sort
for top-p, one multinomial per row), and each as a share of a decode step.

    python benchmarks/bench_sampler.py [--step-ms 100] [--runs 7] [--threads N] [--dtype float32|bfloat16]

The decode-step time is an assumption passed with --step-ms (default 100 ms: roughly a batch-16 decode
step of a 1-layer M2-width slice on the 2-core development machine); measure yours and pass it. Times are
medians of --runs calls (old and new interleaved per batch size so a busy spell hits both); the logits
are random but peaked like a language model's (a few tokens well above a normal background).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from minimax2 import SamplingParams
from minimax2.engine.sampler import apply_penalties, make_generator, sample

VOCAB = 200_064


# -- the baseline: the sampler as it was before this benchmark (verbatim but for names) ------------------
def old_filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    logits = logits / params.temperature
    if params.top_k and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= params.top_p
        logits = logits.index_fill(0, order[drop], float("-inf"))
    if params.min_p > 0:
        probs = logits.softmax(-1)
        logits = logits.masked_fill(probs < params.min_p * probs.max(), float("-inf"))
    return logits


def old_draw(row: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    probs = old_filter_logits(row, params).softmax(-1)
    if bool(torch.isfinite(probs).all()) and float(probs.sum()) > 0:
        return int(torch.multinomial(probs, 1, generator=generator).item())
    return int(torch.nan_to_num(row, nan=float("-inf")).argmax())


@torch.inference_mode()
def old_sample(logits, params, generators, history=None, errors=None):
    logits = logits.float().cpu()
    failed: dict[int, Exception] = {} if errors is None else errors

    def guarded(i: int, fn):
        if errors is None:
            return fn()
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - as the old sampler did
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
    dead = {i for i, p in enumerate(params) if p.logits_processors and not torch.isfinite(logits[i]).any()}
    for i, p in enumerate(params):
        if i in dead or i in failed:
            out[i] = -1
            continue

        def pick(i=i, p=p):
            row, tok = logits[i], out[i]
            if p.has_penalties:
                row = apply_penalties(row, p, *history[i])
                tok = int(row.argmax())
            return old_draw(row, p, generators[i]) if not p.greedy else tok

        tok = guarded(i, pick)
        out[i] = -1 if i in failed else tok
    infos: list[dict | None] = [None] * len(params)
    want = [i for i, p in enumerate(params) if p.logprobs is not None and out[i] != -1]
    if want:
        lp = torch.log_softmax(logits[want], dim=-1)
        for r, i in enumerate(want):
            k = params[i].logprobs
            top = torch.topk(lp[r], k) if k else None
            infos[i] = {"token_id": out[i], "logprob": float(lp[r, out[i]]),
                        "top": [] if top is None else list(zip(top.indices.tolist(), top.values.tolist()))}
    return out, infos
# -----------------------------------------------------------------------------------------------------------


CONFIGS = {
    "card 1.0/0.95/40": dict(temperature=1.0, top_p=0.95, top_k=40),
    "card, seeded": dict(temperature=1.0, top_p=0.95, top_k=40, seed=0),
    "greedy": dict(temperature=0.0),
    "top-p 0.95 alone": dict(temperature=1.0, top_p=0.95),
    "temperature alone": dict(temperature=1.0),
}


def peaked_logits(batch: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, VOCAB, generator=g) * 2
    top = torch.randint(0, VOCAB, (batch, 30), generator=g)
    x.scatter_add_(1, top, 12 + 4 * torch.rand(batch, 30, generator=g))
    return x.to(dtype)


def timed(fn, logits, params, gens) -> float:
    t = time.perf_counter()
    fn(logits, params, gens)
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step-ms", type=float, default=100.0,
                    help="decode-step time to compare with (an assumption unless you measured it)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--no-old", action="store_true", help="skip the (slow) baseline")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"vocab {VOCAB}, {args.dtype} logits, {torch.get_num_threads()} threads, medians of {args.runs} calls, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"decode step ASSUMED to take {args.step_ms:g} ms (--step-ms; not measured here)")
    print(f"{'config':<20} {'B':>3} {'old ms':>9} {'new ms':>8} {'speed-up':>8} {'old % step':>10} {'new % step':>10}")
    for name in args.configs:
        for b in args.batch:
            logits = peaked_logits(b, dtype, seed=b)
            params = [SamplingParams(**{**CONFIGS[name], **({"seed": i} if "seed" in CONFIGS[name] else {})})
                      for i in range(b)]
            gens = [make_generator(p) for p in params]
            sample(logits, params, gens)  # warm-up
            if not args.no_old:
                old_sample(logits, params, gens)
            old, new = [], []
            for _ in range(args.runs):
                if not args.no_old:
                    old.append(timed(old_sample, logits, params, gens))
                new.append(timed(sample, logits, params, gens))
            n = statistics.median(new)
            o = statistics.median(old) if old else float("nan")
            print(f"{name:<20} {b:>3} {o:>9.2f} {n:>8.2f} {o / n:>7.1f}x {100 * o / args.step_ms:>9.1f}% "
                  f"{100 * n / args.step_ms:>9.2f}%")


if __name__ == "__main__":
    main()
