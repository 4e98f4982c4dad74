"""The released model's exact widths on this machine: load time, peak anonymous memory, decode and
prefill speed with their share of the memory-bandwidth roofline, per serving form.

    python benchmarks/make_checkpoints.py --out checkpoints --shape m2-slice --layers 4
    python benchmarks/bench_slice.py --model checkpoints/m2-slice-4l-fp8 [--forms fp8 int8 int4 int4-pre bf16]

Each form runs in its own process (the peak is that process's RssAnon, sampled every 5 ms): "fp8"
serves the FP8 checkpoint as released (mapped), "int8" / "int4" quantise while loading, "int8-pre" /
"int4-pre" convert once (`minimax2 convert --to int8|int4` into MODEL-int8 / MODEL-int4, timed apart)
and map the result, "bf16" dequantizes (31 GB for 4 layers: the memory guard's refusal is the
expected result on a 24 GB machine). `--lm-head int8|int6|bf16` chooses the output matrix's form.

The roofline counts the bytes a step reads as the forms store them (model/projection.py). The read
bandwidth is probed in the same process right before and right after each decode run (the bus drifts
by tens of percent within minutes); each run's share uses the mean of its two probes, and the table
gives the median of 5 runs' tok/s and of their shares.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from minimax2.bench.throughput import release_page_cache

PROBE = r"""
import json, statistics, sys, threading, time, torch
from minimax2.model.mapped import rss_anon
form, model, threads, head = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if sys.argv[4] != "-" else None
base, peak, done = rss_anon(), [0], [False]
def watch():
    while not done[0]:
        peak[0] = max(peak[0], rss_anon()); time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()
from minimax2 import LLM
from minimax2.model.memory import InsufficientMemoryError
t = time.perf_counter()
try:
    llm = LLM(model, quantization=None if form in ("fp8", "int8-pre", "int4-pre") else form, kv_cache_gb=0.25,
              max_num_seqs=8, threads=threads, max_model_len=4096, lm_head=head)
except InsufficientMemoryError as e:
    print(json.dumps({"form": form, "refused": str(e)})); sys.exit(0)
load_s = time.perf_counter() - t
done[0] = True
out = {"form": form, "load_s": load_s, "peak_anon": max(peak[0], rss_anon()) - base, "after_anon": rss_anon() - base}
from minimax2.bench.roofline import bracketed
from minimax2.bench.throughput import engine_run, random_prompts, warm_page_cache
from minimax2.model.projection import step_bytes
cfg, kind = llm.cfg, form.removesuffix("-pre")
if form in ("fp8", "int8-pre", "int4-pre"):
    warm_page_cache(model)  # mapped forms: every expert in memory before the timed runs
engine_run(llm.engine, random_prompts(1, 16, 1000), 4)
for batch in (1, 8):
    step = step_bytes(cfg, kind, batch, context=72, lm_head=head)
    runs = [bracketed(lambda: engine_run(llm.engine, random_prompts(batch, 64, 1000, seed=s), 16)["decode_tok_s"])
            for s in range(5)]
    out[f"decode_b{batch}"] = statistics.median(t for t, _ in runs)
    out[f"share_b{batch}"] = statistics.median(t * step / (batch * bw) for t, bw in runs)
    out[f"bw_b{batch}"] = statistics.median(bw for _, bw in runs) / 1e9
out["prefill"] = statistics.median(engine_run(llm.engine, random_prompts(1, 512, 1000, seed=9), 1)["prefill_tok_s"]
                                   for _ in range(2))
print(json.dumps(out))
"""


def run_form(form: str, model: str, threads: int, lm_head: str | None) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, form, model, str(threads), lm_head or "-"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return {"form": form, "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="an FP8 m2-slice checkpoint (benchmarks/make_checkpoints.py)")
    ap.add_argument("--forms", nargs="+", default=["fp8", "int8", "int4", "int4-pre", "bf16"],
                    choices=["fp8", "int8", "int4", "int8-pre", "int4-pre", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lm-head", choices=["int8", "int6", "bf16"], help="the output matrix's form (default: the form's own)")
    ap.add_argument("--json", help="also write the rows to this file")
    a = ap.parse_args()
    head_tag = f"-{a.lm_head}head" if a.lm_head else ""  # a pre-quantised checkpoint holds its head
    pre = {f: str(Path(a.model).with_name(Path(a.model).name + "-" + f.removesuffix("-pre") + head_tag))
           for f in a.forms if f.endswith("-pre")}
    rows = []
    for form in a.forms:
        model = pre.get(form, a.model)
        if form in pre and not (Path(model) / "config.json").exists():
            to, t = form.removesuffix("-pre"), time.perf_counter()
            subprocess.run([sys.executable, "-m", "minimax2.cli", "convert", "--model", a.model, "--out", model,
                            "--to", to] + (["--lm-head", a.lm_head] if a.lm_head else []), check=True)
            print(f"convert --to {to}: {time.perf_counter() - t:.0f} s", flush=True)
        for other in {a.model, *pre.values()} - {model}:
            if Path(other).exists():
                release_page_cache(other)  # so that this form's mapped files stay in memory (throughput.py)
        rows.append(run_form(form, model, a.threads, a.lm_head))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{a.model}, {a.threads} threads, lm_head {a.lm_head or 'as the form has it'} (decode: medians of 5 runs "
          "of 16 tokens after a 64-token prompt, each run's share at the mean of probes right before and after it)")
    print(f"{'form':9} {'load s':>7} {'peak anon GB':>12} {'after GB':>9} {'b1 tok/s':>9} {'b1 roof':>8} "
          f"{'b8 tok/s':>9} {'b8 roof':>8} {'prefill tok/s':>13}")
    for r in rows:
        if "refused" in r or "error" in r:
            print(f"{r['form']:9} {r.get('refused') or r.get('error')}")
            continue
        print(f"{r['form']:9} {r['load_s']:7.1f} {r['peak_anon'] / 1e9:12.2f} {r['after_anon'] / 1e9:9.2f} "
              f"{r['decode_b1']:9.2f} {r['share_b1']:8.0%} {r['decode_b8']:9.2f} {r['share_b8']:8.0%} {r['prefill']:13.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
