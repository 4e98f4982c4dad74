"""Decode kernels alone: the native CPU kernels against the torch ops they replace, on m2-small's
shapes, in GB/s of weights read and as a share of the machine's read bandwidth measured in the same run.

    python benchmarks/bench_kernels.py [--threads 2] [--runs 7] [--only attention]

Medians of --runs timings, each the mean of enough calls to take ~50 ms. Each row cycles through
512 MiB or more of distinct weights (the expert rows through 8 layers' experts with a fresh random
choice per call), so every call streams its weights from memory, as a decode step does. Rows can still read faster than the bandwidth probe (an int32 max): the
host's last-level cache may be far larger than the 32 MiB this VM reports, so treat the share
column as approximate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from minimax2.bench.roofline import read_bandwidth
from minimax2.model import cpu_kernels
from minimax2.model.experts import Bf16Experts
from minimax2.model.linear import Int4Linear, int8_rows


POOL = 512 << 20  # bytes of distinct weights each row cycles through: 16x the 32 MiB L3 this VM reports


def copies_for(nbytes: int) -> int:
    return max(2, -(-POOL // nbytes))


def timed(fn, runs: int) -> float:
    fn()
    n = max(1, int(0.05 / max(1e-6, _once(fn))))
    return statistics.median(_once(fn, n) for _ in range(runs))


def _once(fn, n: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def attention_rows(ext, runs: int, g: torch.Generator) -> list[tuple]:
    """Paged decode attention, native against the torch path it replaces (attention._decode_attention),
    256 keys per sequence at random slots of a 256 MiB K/V pool, fresh slots every call."""
    from minimax2.model.attention import _decode_attention

    slots_total, kv, d, hq, ctx = 1 << 18, 4, 64, 16, 256
    k_cache = torch.randn(slots_total, kv, d, generator=g).bfloat16()
    v_cache = torch.randn(slots_total, kv, d, generator=g).bfloat16()
    rows = []
    for b in (1, 8):
        q = torch.randn(b, hq, d, generator=g).bfloat16()
        slots = [torch.randint(0, slots_total, (b, ctx), generator=g) for _ in range(64)]
        lens = torch.full((b,), ctx)
        it = iter(range(10 ** 9))
        nat = timed(lambda: ext.decode_attention_bf16(q, k_cache, v_cache, slots[next(it) % 64], lens, d ** -0.5), runs)
        ref = timed(lambda: _decode_attention(q, k_cache, v_cache, slots[next(it) % 64], None, d ** -0.5), runs)
        rows.append((f"decode attention b{b} x {ctx} keys", b * ctx * kv * d * 2 * 2, nat, ref))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--only", choices=["attention"], help="run only these rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ext = cpu_kernels.load()
    if ext is None:
        raise SystemExit("native kernels unavailable on this machine (see the log line above)")
    bw = read_bandwidth()
    print(f"read bandwidth {bw / 1e9:.1f} GB/s, {args.threads} threads")
    g = torch.Generator().manual_seed(0)
    rows = attention_rows(ext, args.runs, g)
    if args.only == "attention":
        return report(rows, bw)
    for name, n, k in (("qkv 1536x1024", 1536, 1024), ("o 1024x1024", 1024, 1024), ("lm_head 16384x1024", 16384, 1024)):
        copies = copies_for(n * k * 2)
        ws = [(torch.randn(n, k, generator=g) / 32).bfloat16() for _ in range(copies)]
        x = torch.randn(1, k, generator=g).bfloat16()
        it = iter(range(10 ** 9))
        nat = timed(lambda: ext.gemv_bf16(x, ws[next(it) % copies]), args.runs)
        ref = timed(lambda: F.linear(x, ws[next(it) % copies]), args.runs)
        rows.append((name, n * k * 2, nat, ref))
    n, k = 1536, 1024
    c8 = copies_for(n * k)
    int8_weights = [int8_rows(torch.randn(n, k, generator=g), torch.bfloat16) for _ in range(c8)]  # (w, scale)
    x = torch.randn(1, k, generator=g).bfloat16()
    it = iter(range(10 ** 9))
    nat = timed(lambda: ext.gemv_int8(x, *int8_weights[next(it) % c8]), args.runs)
    ref = timed(lambda: torch.ops.aten._weight_int8pack_mm(x, *int8_weights[next(it) % c8]), args.runs)
    rows.append(("qkv int8 1536x1024", n * k, nat, ref))
    del int8_weights
    c4 = copies_for(n * k // 2)
    int4_linears = [Int4Linear(torch.randn(n, k, generator=g), torch.bfloat16, 128) for _ in range(c4)]
    nat = timed(lambda: ext.gemv_int4(x, (lin := int4_linears[next(it) % c4]).packed, 128, lin.scale_zeros), args.runs)
    ref = timed(lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(x, (lin := int4_linears[next(it) % c4]).packed, 128,
                                                                    lin.scale_zeros), args.runs)
    del int4_linears
    rows.append(("qkv int4 g128 1536x1024", n * k // 2, nat, ref))
    e, h, i, top = 32, 1024, 512, 4
    layers = 8  # 8 layers' experts (800 MiB in bf16) and a fresh random choice of 4 per call
    w13 = [(torch.randn(e, 2 * i, h, generator=g) / 32).bfloat16() for _ in range(layers)]
    w2 = [(torch.randn(e, h, i, generator=g) / 22).bfloat16() for _ in range(layers)]
    x = torch.randn(1, h, generator=g).bfloat16()
    choices = [torch.randperm(e, generator=g)[:top][None] for _ in range(97)]
    wts = torch.full((1, top), 1 / top)
    it = iter(range(10 ** 9))
    pick = iter(range(10 ** 9))

    def route():  # a different choice of experts every call
        return choices[next(pick) % len(choices)]

    def torch_experts(j):
        ys = []
        for ex in route()[0].tolist():
            gate, up = F.linear(x, w13[j][ex]).chunk(2, dim=-1)
            ys.append(F.linear(F.silu(gate) * up, w2[j][ex]))
        return (wts[0, :, None] * torch.cat(ys)).sum(0)

    blocks = [Bf16Experts.from_stacks(w13[j], w2[j]) for j in range(layers)]
    nat = timed(lambda: blocks[next(it) % layers].block(x, route(), wts), args.runs)
    ref = timed(lambda: torch_experts(next(it) % layers), args.runs)
    rows.append(("experts bf16 (4 of 32)", top * 3 * h * i * 2, nat, ref))
    # per layer (w13 int8, s13, w2 int8, s2): the int8 expert stacks and their per-row scales
    int8_experts = [int8_rows(w13[j].float(), torch.bfloat16) + int8_rows(w2[j].float(), torch.bfloat16)
                    for j in range(layers)]

    def torch_int8(j):
        w13_int8, s13, w2_int8, s2 = int8_experts[j]
        ys = []
        for ex in route()[0].tolist():
            gate, up = torch.ops.aten._weight_int8pack_mm(x, w13_int8[ex], s13[ex]).chunk(2, dim=-1)
            ys.append(torch.ops.aten._weight_int8pack_mm(F.silu(gate) * up, w2_int8[ex], s2[ex]))
        return (wts[0, :, None] * torch.cat(ys)).sum(0)

    nat = timed(lambda: ext.moe_experts_int8(x, *int8_experts[next(it) % layers], route(), wts), args.runs)
    ref = timed(lambda: torch_int8(next(it) % layers), args.runs)
    rows.append(("experts int8 (4 of 32)", top * 3 * h * i, nat, ref))
    del int8_experts
    int4_experts = []  # per layer (w13 packed, its scales and zeros, w2 packed, its scales and zeros, group)
    for j in range(layers):
        up = [Int4Linear(w13[j][ex].float(), torch.bfloat16, 128) for ex in range(e)]
        down = [Int4Linear(w2[j][ex].float(), torch.bfloat16, 128) for ex in range(e)]
        int4_experts.append((torch.stack([m.packed for m in up]), torch.stack([m.scale_zeros for m in up]),
                             torch.stack([m.packed for m in down]), torch.stack([m.scale_zeros for m in down]), 128))

    def torch_int4(j):
        p13, sz13, p2, sz2, grp = int4_experts[j]
        ys = []
        for ex in route()[0].tolist():
            gate, up = torch.ops.aten._weight_int4pack_mm_for_cpu(x, p13[ex], grp, sz13[ex]).chunk(2, dim=-1)
            ys.append(torch.ops.aten._weight_int4pack_mm_for_cpu(F.silu(gate) * up, p2[ex], grp, sz2[ex]))
        return (wts[0, :, None] * torch.cat(ys)).sum(0)

    nat = timed(lambda: ext.moe_experts_int4(x, *int4_experts[next(it) % layers], route(), wts), args.runs)
    ref = timed(lambda: torch_int4(next(it) % layers), args.runs)
    rows.append(("experts int4 g128 (4 of 32)", top * 3 * h * i // 2, nat, ref))
    report(rows, bw)


def report(rows: list[tuple], bw: float) -> None:
    print(f"{'kernel':32} {'native GB/s':>12} {'share of bw':>12} {'torch GB/s':>11} {'speed-up':>9}")
    for name, nbytes, nat, ref in rows:
        ref_s = f"{nbytes / ref / 1e9:11.1f} {ref / nat:8.2f}x" if ref else f"{'':>11} {'':>9}"
        print(f"{name:32} {nbytes / nat / 1e9:12.1f} {nbytes / nat / bw:11.0%} {ref_s}")


if __name__ == "__main__":
    main()
