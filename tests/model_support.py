"""Shared helpers for model tests."""

from __future__ import annotations

import torch

from minimax2.model.attention import AttentionMetadata


def teacher_forced_logits(model, tokens: list[int], prompt: int) -> torch.Tensor:
    """Prefill `prompt` tokens, then decode the rest one by one through the paged cache (one block table
    of 256 slots): the logits of both batch kinds over the same fixed tokens, float32 [1 + rest, V]."""
    model.allocate_kv_cache(256)
    out = []
    with torch.inference_mode():
        meta = AttentionMetadata.from_block_tables([prompt], [prompt], [[0]], 256)
        out.append(model(torch.tensor(tokens[:prompt]), torch.arange(prompt), meta)[-1].float())
        for i in range(prompt, len(tokens)):
            meta = AttentionMetadata.from_block_tables([1], [i + 1], [[0]], 256)
            out.append(model(torch.tensor([tokens[i]]), torch.tensor([i]), meta)[0].float())
    model.free_kv_cache()
    return torch.stack(out)


def kernels_or_skip(ext, what: str):
    """`ext` when the native kernels loaded; a failure where this CPU has the instructions but `what` did
    not build (a broken build must not pass as a skip), a skip where the kernels cannot run."""
    import os

    import pytest

    from minimax2.model import cpu_kernels

    if ext is None and cpu_kernels._cpu_has_avx512_bf16() and os.environ.get("MINIMAX2_CPU_KERNELS", "1") != "0":
        pytest.fail(f"this CPU has the instructions but {what} did not build (see the log above)")
    if ext is None:
        pytest.skip("native kernels unavailable here (no AVX512-BF16/VNNI/VBMI, or disabled)")
    return ext


def expert_outputs(x: torch.Tensor, idx: torch.Tensor, expert) -> torch.Tensor:
    """[M, k, H] bf16: expert(e, x[m:m + 1]) ([1, H]) for each token m and each of its chosen experts e."""
    out = torch.empty(idx.shape[0], idx.shape[1], x.shape[1], dtype=torch.bfloat16)
    for m in range(idx.shape[0]):
        for j, e in enumerate(idx[m].tolist()):
            out[m, j] = expert(e, x[m:m + 1])[0]
    return out


def int8_expert_case(seed: int, tokens: int, e: int, h: int, i: int, k: int):
    """A random int8 expert block and a batch routed to it: (w13, s13, w2, s2, x, idx, weights)."""
    from minimax2.model.linear import int8_rows

    g = torch.Generator().manual_seed(seed)
    w13, s13 = int8_rows(torch.randn(e, 2 * i, h, generator=g) / 8, torch.bfloat16)
    w2, s2 = int8_rows(torch.randn(e, h, i, generator=g) / 10, torch.bfloat16)
    x = torch.randn(tokens, h, generator=g).bfloat16()
    idx = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(tokens)])
    return w13, s13, w2, s2, x, idx, torch.rand(tokens, k, generator=g)


def assert_weighted_sum(got: torch.Tensor, ys: torch.Tensor, weights: torch.Tensor) -> None:
    """got [M, H] against (weights[:, :, None] * ys).sum(1) in bf16, as the torch code combines experts."""
    want = (weights[:, :, None] * ys).sum(1).to(torch.bfloat16)
    assert got.shape == want.shape and (got.float() - want.float()).abs().max() <= want.abs().max() * 2 ** -6
    assert (got == want).float().mean() > 0.95  # the rest differ by one bf16 rounding of an expert output


def group_activations(x: torch.Tensor, group: int, levels: int) -> torch.Tensor:
    """x as the kernels quantise it, in float64: per group of columns scale = max / levels (127 for int8,
    32767 for int16) and q = round(x / scale) in float32, half to even."""
    m, k = x.shape
    xb = x.float().view(m, k // group, group)
    amax = xb.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, torch.tensor(float(levels)) / amax, torch.zeros_like(amax))
    return ((xb * inv).round().double() * (amax.double() / levels)).view(m, k)
