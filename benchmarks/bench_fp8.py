"""The FP8 decode kernels alone on M2's shapes: gemv_fp8 (e4m3 weights with 128x128 block scales,
read in place) against the bf16 kernel on the same matrix, in GB/s of weights read and as a share of
the machine's read bandwidth measured in the same run; the fp8 expert block (top 8, M2's expert shape);
and the tiled prefill GEMM against dequantize-then-F.linear.

    python benchmarks/bench_fp8.py [--threads 2] [--runs 7] [--rows 1 8 16]

Timing as in bench_kernels.py (medians of --runs, each the mean of ~50 ms of calls; fp8 and bf16
interleaved three times, median of the three), and every row cycles through 512 MiB or more of
distinct weights, so the weights stream from memory as in a decode step. A GB/s figure counts the weight bytes only (fp8: 1 byte per weight; scales add 1/4096).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench_kernels import copies_for, timed
from minimax2.bench.roofline import read_bandwidth
from minimax2.model import cpu_kernels, fp8, fp8_kernels

SHAPES = (("expert w1 1536x3072", 1536, 3072), ("q_proj 6144x3072", 6144, 3072))


def random_fp8(n: int, k: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random e4m3 codes (no NaN) and block scales: the kernels' speed does not depend on the values."""
    b = torch.randint(0, 256, (n, k), dtype=torch.uint8, generator=g)
    b[(b & 0x7F) == 0x7F] = 0x7E
    return b.view(fp8.FP8_DTYPE), torch.rand(fp8.scale_shape((n, k)), generator=g) * 1e-3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 8, 16])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ext = cpu_kernels.load()
    if ext is None or fp8_kernels.kernels() is None:
        raise SystemExit("native kernels unavailable on this machine (see the log line above)")
    bw = read_bandwidth()
    print(f"read bandwidth {bw / 1e9:.1f} GB/s, {args.threads} threads")
    print(f"{'matrix':22} {'rows':>4} {'fp8 GB/s':>9} {'share':>6} {'bf16 GB/s':>10} {'share':>6} "
          f"{'fp8 Gweights/s':>15} {'bf16 Gweights/s':>16} {'fp8 speed-up':>13}")
    g = torch.Generator().manual_seed(0)
    for name, n, k in SHAPES:
        c8, c16 = copies_for(n * k), copies_for(n * k * 2)
        ws8 = [random_fp8(n, k, g) for _ in range(c8)]
        ws16 = [(torch.randn(n, k, generator=g) / 64).bfloat16() for _ in range(c16)]
        for m in args.rows:
            x = torch.randn(m, k, generator=g).bfloat16()
            it = iter(range(10 ** 9))
            t8s, t16s = [], []
            for _ in range(3):  # interleaved, so a busy spell on a shared machine hits both kernels
                t8s.append(timed(lambda: fp8_kernels.gemv_fp8(x, *ws8[next(it) % c8]), args.runs))
                t16s.append(timed(lambda: ext.gemv_bf16(x, ws16[next(it) % c16]), args.runs))
            t8, t16 = statistics.median(t8s), statistics.median(t16s)
            g8, g16 = n * k / t8 / 1e9, n * k * 2 / t16 / 1e9
            print(f"{name:22} {m:4d} {g8:9.1f} {g8 * 1e9 / bw:6.0%} {g16:10.1f} {g16 * 1e9 / bw:6.0%} "
                  f"{n * k / t8 / 1e9:15.1f} {n * k / t16 / 1e9:16.1f} {t16 / t8:12.2f}x")
        del ws8, ws16
    experts_row(args, bw, g)
    prefill_rows(args, g)


def experts_row(args, bw: float, g: torch.Generator) -> None:
    """The fp8 expert block, M2's expert shape (H 3072, I 1536), top 8 of 16 experts per layer, three
    layers (680 MiB of fp8), a fresh random choice per call."""
    e, h, i, top, layers = 16, 3072, 1536, 8, 3
    tables = []
    for _ in range(layers):
        w1, w3, w2 = ([random_fp8(*shape, g) for _ in range(e)] for shape in ((i, h), (i, h), (h, i)))
        tables.append(fp8_kernels.Fp8ExpertTables([w for w, _ in w1], [w for w, _ in w3], [w for w, _ in w2],
                                             [s for _, s in w1], [s for _, s in w3], [s for _, s in w2]))
    choices = [torch.stack([torch.randperm(e, generator=g)[:top] for _ in range(16)]) for _ in range(97)]
    print(f"\n{'expert block (fp8)':27} {'tokens':>6} {'GB/s':>7} {'share':>6} {'ms':>7}")
    for m in args.rows:
        x = torch.randn(m, h, generator=g).bfloat16()
        wts = torch.full((m, top), 1 / top)
        it = iter(range(10 ** 9))
        t = timed(lambda: fp8_kernels.moe_experts_fp8(x, choices[(j := next(it)) % 97][:m], wts, tables[j % layers]),
                  args.runs)
        touched = sum(len(torch.unique(choices[j][:m])) for j in range(97)) / 97  # experts read per call
        nbytes = touched * 3 * h * i
        print(f"{f'M2 expert, top {top} of {e}':27} {m:6d} {nbytes / t / 1e9:7.1f} {nbytes / t / bw:6.0%} {t * 1e3:7.2f}")


def prefill_rows(args, g: torch.Generator) -> None:
    """fp8_linear_prefill against dequantizing the whole weight and one F.linear, 512 tokens."""
    print(f"\n{'prefill 512 tokens':22} {'tiled fp8 ms':>13} {'dequant+F.linear ms':>20}")
    for name, n, k in SHAPES:
        w, s = random_fp8(n, k, g)
        x = torch.randn(512, k, generator=g).bfloat16()
        tiled = timed(lambda: fp8_kernels.fp8_linear_prefill(x, w, s), 3)
        whole = timed(lambda: F.linear(x, fp8.dequantize(w, s, dtype=torch.bfloat16)), 3)
        print(f"{name:22} {tiled * 1e3:13.1f} {whole * 1e3:20.1f}")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"\n({time.time() - t0:.0f} s)")
