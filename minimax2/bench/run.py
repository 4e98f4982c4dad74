"""`minimax2 bench engine`: decode / prefill throughput per precision, against HF transformers measured
in the same run, as a share of the memory-bandwidth roofline; int8/int4 quality against bf16 (on the
benchmark checkpoint and on a trained one, the bundled demo model by default); and a shared-prefix
agent scenario, in one JSON report and a table. Also `python benchmarks/bench_engine.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..engine.llm import LLM
from ..model.config import ModelConfig
from ..model.info import spec_from_config
from ..model.loader import load_model
from .quality import quality, trained_text_quality
from .roofline import read_bandwidth, roofline_tok_s
from .throughput import engine_run, hf_run, median_of, prefix_scenario, random_prompts


def run_benchmark(model: str, precisions=("bf16", "int8", "int4"), batches=(1, 8, 16), prompt_len: int = 128,
                  new_tokens: int = 128, runs: int = 3, hf: bool = True, prefix: bool = True,
                  threads: int = 2, out: str | None = None, quality_model: str | Path | None = None) -> dict:
    torch.set_num_threads(threads)
    bw = read_bandwidth()
    report: dict = {"model": model, "threads": threads, "bandwidth_GBps": bw / 1e9, "rows": [], "quality": {}}
    ref_llm = None
    for prec in precisions:
        llm = LLM(model, dtype="bfloat16", quantization=None if prec == "bf16" else prec, max_num_seqs=max(batches),
                  max_num_batched_tokens=512, max_model_len=max(4096, prompt_len + new_tokens + 8))
        spec = spec_from_config(llm.cfg)
        # the machine's bandwidth drifts within minutes: probe it again right before each precision
        bw_prec = read_bandwidth()
        report.setdefault("bandwidth_GBps_per_precision", {})[prec] = bw_prec / 1e9
        engine_run(llm.engine, random_prompts(1, 16, llm.cfg.vocab_size), 4)  # warm-up
        for b in batches:
            r = median_of(lambda: engine_run(llm.engine, random_prompts(b, prompt_len, llm.cfg.vocab_size), new_tokens), runs)
            roof = roofline_tok_s(spec, prec, b, bw_prec)
            row = {"engine": "minimax2", "precision": prec, "batch": b, **r,
                   "roofline_tok_s": roof, "roofline_share": r["decode_tok_s"] / roof}
            report["rows"].append(row)
            print(json.dumps(row))
        text = random_prompts(1, 256, llm.cfg.vocab_size, seed=5)
        if prec == "bf16":
            ref_llm = llm
            if prefix:
                report["prefix"] = prefix_scenario(llm)
                print(json.dumps(report["prefix"]))
            # the noise floor: how often bf16 itself disagrees with float32 on this checkpoint (if fp32 fits easily)
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            if spec.params()["total"] * 4 < ram / 4:
                report["quality"]["bf16 vs float32"] = quality(llm.model, load_model(model, torch.float32), text)
        else:
            report["quality"][prec] = quality(llm.model, ref_llm.model, text)
            del llm
        print(prec, json.dumps(report["quality"]))
    if quality_model:
        report["trained_quality"] = trained_text_quality(quality_model, precisions)
        print(json.dumps(report["trained_quality"]))
    if hf:
        bw_hf, spec = read_bandwidth(), spec_from_config(ModelConfig.from_file(model))
        for row in _hf_rows(model, batches, prompt_len, new_tokens, runs):
            row["roofline_tok_s"] = roofline_tok_s(spec, "bf16", row["batch"], bw_hf)
            row["roofline_share"] = row["decode_tok_s"] / row["roofline_tok_s"]
            report["rows"].append(row)
        report.setdefault("bandwidth_GBps_per_precision", {})["HF bf16"] = bw_hf / 1e9
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
    print_table(report)
    return report


def _hf_rows(model: str, batches, prompt_len: int, new_tokens: int, runs: int) -> list[dict]:
    try:
        from transformers import MiniMaxM2ForCausalLM
    except ImportError:
        print("transformers is not installed: no HF baseline (pip install transformers)")
        return []
    hf = MiniMaxM2ForCausalLM.from_pretrained(model, dtype=torch.bfloat16).eval()
    rows = []
    for b in [b for b in batches if b <= 8]:
        r = median_of(lambda: hf_run(hf, random_prompts(b, prompt_len, hf.config.vocab_size), new_tokens), runs)
        rows.append({"engine": "transformers", "precision": "bf16", "batch": b, **r})
        print(json.dumps(rows[-1]))
    return rows


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    hf = {r["batch"]: r for r in report["rows"] if r["engine"] == "transformers"}
    t = Table(title=f"{report['model']} — {report['threads']} threads, medians; read bandwidth "
                    f"{report['bandwidth_GBps']:.1f} GB/s at the start (each roofline uses the probe below)")
    for col in ("engine", "precision", "batch", "decode tok/s", "vs HF bf16", "roofline", "prefill tok/s"):
        t.add_column(col, justify="right")
    for r in report["rows"]:
        base = hf.get(r["batch"])
        ratio = f"{r['decode_tok_s'] / base['decode_tok_s']:.1f}x" if base and r["engine"] != "transformers" else ""
        roof = f"{r['roofline_share']:.0%} of {r['roofline_tok_s']:.0f}" if r.get("roofline_share") else ""
        t.add_row(r["engine"], r["precision"], str(r["batch"]), f"{r['decode_tok_s']:.1f}", ratio, roof,
                  f"{r['prefill_tok_s']:.0f}")
    Console(width=120).print(t)
    if report.get("bandwidth_GBps_per_precision"):
        per = ", ".join(f"{p} {v:.1f}" for p, v in report["bandwidth_GBps_per_precision"].items())
        print(f"read bandwidth probed before each precision's runs (GB/s, the roofline's): {per}")
    for prec, q in report["quality"].items():
        label = prec if " vs " in prec else f"{prec} vs bf16"
        print(f"{label}: top-1 agreement {q['top1_agreement']:.1%}, KL {q['kl']:.2e}")
    if "trained_quality" in report:
        tq = report["trained_quality"]
        print(f"on the trained model {tq['model']} ({tq['conversations']} held-out conversations, {tq['tokens']} tokens, "
              "each from position 0):")
        for prec, q in tq.items():
            if isinstance(q, dict):
                label = prec if " vs " in prec else f"{prec} vs bf16"
                print(f"  {label}: top-1 agreement {q['top1_agreement']:.1%}, KL {q['kl']:.2e}")
    if "prefix" in report:
        p = report["prefix"]
        print(f"shared 2,000-token prefix: TTFT cold {p['ttft_cold_s'] * 1e3:.0f} ms, hit {p['ttft_prefix_hit_s'] * 1e3:.0f} ms "
              f"({p['hit_over_cold']:.2f}x); 8 conversations x 4 turns: {p['turns_output_tok_s']:.1f} output tok/s, "
              f"prefix hit rate {p['prefix_hit_rate']:.0%}")
