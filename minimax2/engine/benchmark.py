"""Engine benchmark: decode / prefill throughput per precision, against HF transformers measured in the
same run, as a share of the memory-bandwidth roofline; int8/int4 quality against bf16 (on the
benchmark checkpoint and on a trained one, the bundled demo model by default); and a shared-prefix
agent scenario. Run as `minimax2 bench engine` or `python benchmarks/bench_engine.py`.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import torch

from ..model.attention import AttentionMetadata
from ..model.config import ModelConfig
from ..model.info import spec_from_config
from ..model.loader import load_model
from .llm import LLM
from .llm_engine import LLMEngine
from .sampling_params import SamplingParams

BYTES_PER_PARAM = {"bf16": 2.0, "int8": 1.0, "int4": 0.5 + 4 / 128}  # int4: + bf16 scale and zero per 128


def read_bandwidth(gib: float = 0.5, repeats: int = 7) -> float:
    """Read bandwidth in bytes/s: the faster of two streaming reads of `gib` GiB, each the median of
    `repeats`: torch's int32 max and, where the native kernels are built, the bf16 matrix-vector kernel
    over the same bytes viewed as a [rows, 4096] matrix. The bus delivers at least what either reader
    gets, and the kernel read 75 GB/s where the max read 63 (same process), so taking the max keeps
    roofline shares from flattering the kernels. (A float32 sum, used at first, is compute-limited at
    2 threads and read 40 GB/s where the max read 58.)"""
    from ..model import cpu_kernels

    x = torch.ones(int(gib * 2**30 / 4), dtype=torch.int32)
    readers = [lambda: x.max()]
    ext = cpu_kernels.load(verbose=False)
    if ext is not None:
        w, v = x.view(torch.bfloat16).view(-1, 4096), torch.ones(1, 4096, dtype=torch.bfloat16)
        readers.append(lambda: ext.gemv_bf16(v, w))
    best = 0.0
    for read in readers:
        read()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            read()
            times.append(time.perf_counter() - t)
        best = max(best, x.numel() * 4 / statistics.median(times))
    return best


def roofline_tok_s(spec, precision: str, batch: int, bandwidth: float) -> float:
    """Decode tok/s if a step took only the time to read its weights once at `bandwidth` bytes/s: every
    active weight at the precision's size, with the experts a batch of `batch` tokens touches, in
    expectation, under uniform independent routing (E (1 - (1 - k/E)^batch) per layer; at batch 1, k)."""
    p = spec.params()
    moe_layers = spec.layers - spec.dense_layers
    expert = 3 * spec.hidden * spec.expert_width
    distinct = spec.experts * (1 - (1 - spec.top_k / spec.experts) ** batch)
    params = p["active"] + moe_layers * (distinct - spec.top_k) * expert
    return batch * bandwidth / (params * BYTES_PER_PARAM[precision])


def random_prompts(batch: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, vocab - 10, (batch, length), generator=g).tolist()


def engine_run(engine: LLMEngine, prompts: list[list[int]], new_tokens: int) -> dict:
    """Prefill all prompts, then decode; returns prefill tok/s, decode tok/s (after every first token)."""
    sp = SamplingParams(max_tokens=new_tokens, temperature=0, ignore_eos=True)
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


def quality(model_q, model_ref, texts: list[list[int]]) -> dict:
    """KL(ref || q) per token and top-1 agreement of next-token distributions over `texts`, each text
    run as its own sequence from position 0 (as a server sees it): concatenated, the later texts would
    sit at positions the model never saw, some past its context length, where it is least confident."""
    ref, got = [], []
    with torch.inference_mode():
        for ids in texts:
            n = len(ids)
            meta, t, pos = AttentionMetadata.for_batch(1, n), torch.tensor(ids), torch.arange(n)
            ref.append(model_ref(t, pos, meta).float().log_softmax(-1))
            got.append(model_q(t, pos, meta).float().log_softmax(-1))
    ref, got = torch.cat(ref), torch.cat(got)
    kl = torch.nn.functional.kl_div(got, ref, log_target=True, reduction="batchmean").item()
    return {"kl": kl, "top1_agreement": (got.argmax(-1) == ref.argmax(-1)).float().mean().item()}


def trained_text_quality(model_dir: str | Path, precisions, conversations: int = 12) -> dict:
    """int8/int4 against bf16 on a trained checkpoint (the bundled demo model by default), over the
    text of held-out synthetic conversations. On the random-weight benchmark checkpoints next-token
    distributions are nearly flat, so their top-1 agreement mostly measures noise (bf16 itself agrees
    with float32 on ~88% there); a trained model's confident predictions are what quantisation must keep."""
    from ..chat.tokenizer import Tokenizer
    from ..model.quant import quantize_model
    from ..train.data import assistant_spans
    from ..train.synthetic import heldout_examples

    tok = Tokenizer(model_dir)
    families = ("arithmetic", "tool", "parallel")
    exs = [ex for f in families for ex in heldout_examples(f, conversations // len(families), seed=77)]
    texts = [tok.encode(assistant_spans(ex.messages, ex.tools)[0]) for ex in exs]
    ref = load_model(model_dir, torch.bfloat16)
    out = {"model": str(model_dir), "conversations": len(texts), "tokens": sum(map(len, texts))}
    for prec in precisions:
        if prec != "bf16":
            out[prec] = quality(quantize_model(load_model(model_dir, torch.bfloat16), prec), ref, texts)
    out["bf16 vs float32"] = quality(ref, load_model(model_dir, torch.float32), texts)
    return out


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
    t = Table(title=f"{report['model']} — {report['threads']} threads, read bandwidth {report['bandwidth_GBps']:.1f} GB/s (medians)")
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
