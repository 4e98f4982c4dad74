"""Decode throughput on a CUDA GPU: the engine (bf16) against HF transformers on the same GPU and the same
checkpoint, measured in this run, and as a share of the GPU's memory-bandwidth roofline.

    python benchmarks/bench_cuda.py [--model DIR] [--quantization bf16|fp8] [--batches 1 8 16] [--new-tokens 64]
                                    [--runs 3] [--profile]

Without --model it writes a random m2-small checkpoint (563M total, 106M active) to a temp dir first.
The bandwidth is a device-to-device copy (bytes read + written over the median time). A model this
small is launch-bound on a GPU, not bandwidth-bound: read the roofline column as how far from it, and
the step time as what per-step overhead (Python, kernel launches, the host copy of the logits) costs.
An FP8 checkpoint (`make_checkpoints.py --shape m2-slice`) is served as FP8 on a Hopper GPU by default
(model/fp8_cuda.py); `--quantization bf16` dequantizes it at load, the baseline for the FP8 path. The
roofline counts the bytes a step reads in the form served (model/projection.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from minimax2 import LLM
from minimax2.bench.throughput import engine_run, hf_run, median_of, random_prompts
from minimax2.model.fp8_cuda import Fp8CudaExperts
from minimax2.model.projection import step_bytes


def gpu_bandwidth(gib: float = 2.0, repeats: int = 10) -> float:
    x = torch.empty(int(gib * 2**30) // 4, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    times = []
    for i in range(repeats + 2):
        torch.cuda.synchronize()
        t = time.perf_counter()
        y.copy_(x)
        torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return 2 * x.nbytes / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint directory (default: a random m2-small in a temp dir)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16])
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--runs", type=int, default=3, help="medians of this many runs")
    p.add_argument("--quantization", choices=["bf16", "fp8"], help="serving form (default: the checkpoint's own: "
                   "fp8 for an FP8 checkpoint on a Hopper GPU)")
    p.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    p.add_argument("--profile", action="store_true", help="also print the torch profiler's top ops for 32 batch-1 "
                   "decode steps (host time: where a launch-bound step goes)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device")
    model = args.model
    if model is None:
        from minimax2.train.random_init import build_random_checkpoint

        model = str(build_random_checkpoint(tempfile.mkdtemp(prefix="m2-small-"), "m2-small"))
    bw = gpu_bandwidth()
    print(json.dumps({"device": torch.cuda.get_device_name(), "copy_bandwidth_GBps": round(bw / 1e9, 1)}))
    t = time.perf_counter()
    llm = LLM(model, dtype="bfloat16", device="cuda", max_num_seqs=max(args.batches), max_num_batched_tokens=2048,
              max_model_len=args.prompt_len + args.new_tokens + 8, quantization=args.quantization)
    form = "fp8" if isinstance(llm.model.layers[0].moe.experts, Fp8CudaExperts) else "float"
    print(json.dumps({"form": form, "load_s": round(time.perf_counter() - t, 1),
                      "gpu_memory_GB": round(torch.cuda.memory_allocated() / 1e9, 2)}))
    vocab = llm.cfg.vocab_size

    def roofline(b: int, served: str = form) -> float:
        return b * bw / step_bytes(llm.cfg, served, b, context=args.prompt_len + args.new_tokens // 2)

    engine_run(llm.engine, random_prompts(2, 16, vocab), 4)  # warm-up
    rows = {}
    for b in args.batches:
        r = median_of(lambda: engine_run(llm.engine, random_prompts(b, args.prompt_len, vocab), args.new_tokens), args.runs)
        rows[b] = {"engine": "minimax2", "batch": b, **r, "step_ms": 1e3 * b / r["decode_tok_s"],
                   "roofline_share": r["decode_tok_s"] / roofline(b)}
        print(json.dumps(rows[b]))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            engine_run(llm.engine, random_prompts(1, 16, vocab), 32)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40))
    if not args.no_hf:
        from transformers import MiniMaxM2ForCausalLM

        hf = MiniMaxM2ForCausalLM.from_pretrained(model, dtype=torch.bfloat16).to("cuda").eval()
        hf_run(hf, random_prompts(1, 16, vocab), 4)  # warm-up
        for b in [b for b in args.batches if b <= 8]:
            r = median_of(lambda: hf_run(hf, random_prompts(b, args.prompt_len, vocab), args.new_tokens), args.runs)
            print(json.dumps({"engine": "transformers", "batch": b, **r,
                              "roofline_share": r["decode_tok_s"] / roofline(b, "float"),
                              "engine_vs_hf": rows[b]["decode_tok_s"] / r["decode_tok_s"]}))


if __name__ == "__main__":
    main()
