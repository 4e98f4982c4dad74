"""Where a decode step's time goes: each native kernel, the torch ops outside them, and the rest
(Python, engine bookkeeping), from the torch profiler; and the same steps with every kernel replaced
by a replay of its recorded result, which is the time no faster kernel can remove.

    python benchmarks/profile_decode.py --model checkpoints/m2-small --precision int4 [--batch 1]
        [--steps 64] [--runs 5] [--threads 2] [--trace decode.json]

The step times (real and replayed) are medians of --runs, alternated in one process because the
machine's bandwidth drifts; they are taken without the profiler. The per-kernel table comes from one
further run under the torch profiler, which adds a few microseconds per op and range, so read its
shares, not its sum. --trace writes that run as a Chrome trace (chrome://tracing, Perfetto).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from minimax2 import LLM, SamplingParams
from minimax2.bench.throughput import random_prompts
from minimax2.model import cpu_kernels


class Kernels:
    """Stands in for the compiled extension. mode "run": call through; "profile": each call inside a
    profiler range named kernel::<name>; "record": call and keep the result; "replay": return the
    next kept result without computing anything (the same greedy steps make the same calls)."""

    def __init__(self, ext):
        self.ext, self.mode, self.kept, self.next = ext, "run", [], 0

    def __getattr__(self, name):
        fn = getattr(self.ext, name)

        def call(*args):
            if self.mode == "replay":
                self.next += 1
                return self.kept[self.next - 1]
            if self.mode == "profile":
                with record_function(f"kernel::{name}"):
                    return fn(*args)
            out = fn(*args)
            if self.mode == "record":
                self.kept.append(out)
            return out
        return call


def decode(llm: LLM, kernels: Kernels | None, mode: str, batch: int, prompt: int, steps: int,
           around=contextlib.nullcontext()) -> float:
    """Prefill `batch` prompts with the kernels running, then time `steps` decode steps in `mode`
    (inside the context manager `around`, e.g. a profiler)."""
    engine = llm.engine
    sp = SamplingParams(max_tokens=steps + 1, temperature=0, ignore_eos=True)
    for i, p in enumerate(random_prompts(batch, prompt, llm.cfg.vocab_size)):
        engine.add_request(f"p{i}", p, sp)
    started: set[str] = set()
    while len(started) < batch:
        started.update(o.request_id for o in engine.step())
    if kernels is not None:
        kernels.mode, kernels.next = mode, 0
    done = 0
    with around:
        t = time.perf_counter()
        while engine.has_unfinished():
            engine.step()
            done += 1
        elapsed = (time.perf_counter() - t) / done
    if kernels is not None:
        kernels.mode = "run"
    return elapsed


def kernel_table(prof, steps: int) -> tuple[dict, dict]:
    """ms per step by kernel::<name> range (inclusive) and by top-level aten op outside any kernel range."""
    kernels, ops = defaultdict(lambda: [0, 0.0]), defaultdict(lambda: [0, 0.0])
    for ev in prof.events():
        parents, p = [], ev.cpu_parent
        while p is not None:
            parents.append(p.name)
            p = p.cpu_parent
        if ev.name.startswith("kernel::"):
            row = kernels[ev.name[8:]]
        elif ev.name.startswith("aten::") and not any(n.startswith(("kernel::", "aten::")) for n in parents):
            row = ops[ev.name]
        else:
            continue
        row[0] += 1
        row[1] += ev.cpu_time_total / 1e3
    scale = lambda d: {k: (c / steps, ms / steps) for k, (c, ms) in d.items()}
    return scale(kernels), scale(ops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--model", default="checkpoints/m2-small", help="checkpoint directory")
    ap.add_argument("--precision", default="int4", choices=("bf16", "fp8", "int8", "int4", "stored"),
                    help="the serving form; `stored` loads the checkpoint as it is (a `minimax2 convert` output "
                         "in its own form, anything else in its dtype)")
    ap.add_argument("--batch", type=int, default=1, help="sequences decoding together")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens per sequence")
    ap.add_argument("--steps", type=int, default=64, help="decode steps per run")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each kind (medians)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lm-head", choices=("bf16", "int8", "int6"), help="the output matrix's form (default: the form's own)")
    ap.add_argument("--int8-activations", action=argparse.BooleanOptionalAction, default=None,
                    help="the int8/int4/6-bit matrices quantise their decode activations to int8 "
                         "(`--int8-activations`; default: the form's own, on under int4 only)")
    ap.add_argument("--trace", help="write the profiled run as a Chrome trace to this file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ext = cpu_kernels.load(verbose=False)
    kernels = Kernels(ext) if ext is not None else None
    if kernels is None:
        print("native kernels unavailable here: every kernel row below is empty and the replay equals the real step")
    cpu_kernels._ext = kernels  # before loading: the serving forms bind their kernels at construction
    llm = LLM(a.model, dtype="bfloat16", quantization=None if a.precision in ("bf16", "stored") else a.precision,
              lm_head=a.lm_head, int8_activations=a.int8_activations)
    run = lambda mode, around=contextlib.nullcontext(): decode(llm, kernels, mode, a.batch, a.prompt, a.steps, around)
    run("run")  # warm-up
    run("record")
    real, replay = [], []
    for _ in range(a.runs):
        real.append(run("run"))
        replay.append(run("replay") if kernels is not None else real[-1])
    real_ms, replay_ms = 1e3 * statistics.median(real), 1e3 * statistics.median(replay)
    prof = profile(activities=[ProfilerActivity.CPU])
    profiled_ms = 1e3 * run("profile", prof)
    if a.trace:
        prof.export_chrome_trace(a.trace)
    cpu_kernels._ext = ext

    print(f"{a.model}, {a.precision}, batch {a.batch}, prompt {a.prompt}, {a.steps} decode steps, {a.threads} threads")
    print(f"decode step: {real_ms:.3f} ms ({a.batch * 1e3 / real_ms:.1f} tok/s), median of {a.runs}: "
          f"{[round(1e3 * x, 3) for x in real]}")
    print(f"same steps with every kernel replayed: {replay_ms:.3f} ms ({replay_ms / real_ms:.0%} of the step): "
          "Python, torch ops and engine bookkeeping")
    ks, ops = kernel_table(prof, a.steps)
    print(f"\nunder the torch profiler ({profiled_ms:.3f} ms per step with its overhead), per decode step:")
    print(f"  {'':44s} {'calls':>6s} {'ms':>8s} {'share':>6s}")
    rows = [(f"kernel {k}", c, ms) for k, (c, ms) in sorted(ks.items(), key=lambda kv: -kv[1][1])]
    top_ops = sorted(ops.items(), key=lambda kv: -kv[1][1])
    rows += [(f"torch {k}", c, ms) for k, (c, ms) in top_ops[:8]]
    rest_ops = top_ops[8:]
    if rest_ops:
        rows.append((f"torch, {len(rest_ops)} other ops", sum(c for _, (c, _) in rest_ops), sum(ms for _, (_, ms) in rest_ops)))
    rows.append(("the rest: Python, engine, profiler", 0, profiled_ms - sum(ms for _, _, ms in rows)))
    for name, c, ms in rows:
        print(f"  {name:44s} {c:6.1f} {ms:8.3f} {ms / profiled_ms:6.1%}")


if __name__ == "__main__":
    main()
