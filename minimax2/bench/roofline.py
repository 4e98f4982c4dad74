"""The machine's read bandwidth and the decode roofline it implies: tok/s if a step took only the time
to read its weights once."""

from __future__ import annotations

import statistics
import time

import torch

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


def bracketed(run, repeats: int = 5):
    """`run()` between two read-bandwidth probes: (its result, the mean of the two probes in bytes/s). The
    bus here drifts by tens of percent within minutes, so a probe taken once before several runs can
    land in a faster or slower spell than the runs it is compared with; bracketing each run and
    taking the median of per-run shares keeps the probe and the run in the same spell."""
    before = read_bandwidth(repeats=repeats)
    result = run()
    return result, (before + read_bandwidth(repeats=repeats)) / 2


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
