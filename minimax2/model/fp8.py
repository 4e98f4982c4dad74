"""FP8 (float8_e4m3fn) block quantisation in the layout of MiniMax's official checkpoints.

A 2-D weight W [R, C] is stored as W_fp8 [R, C] plus `weight_scale_inv` [ceil(R/br), ceil(C/bc)]
(float32), with W[i, j] = float(W_fp8[i, j]) * weight_scale_inv[i // br, j // bc]. Edge blocks may
be partial. The scale is "inv" because it undoes the division applied when quantising.
"""

from __future__ import annotations

import torch

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_DTYPE).max)  # 448
DEFAULT_BLOCK = (128, 128)


def scale_shape(shape: tuple[int, int], block: tuple[int, int] = DEFAULT_BLOCK) -> tuple[int, int]:
    return (-(-shape[0] // block[0]), -(-shape[1] // block[1]))


def _expand(scale: torch.Tensor, shape: tuple[int, int], block: tuple[int, int]) -> torch.Tensor:
    """Blow a per-block scale up to one value per element, cropping partial edge blocks."""
    return scale.repeat_interleave(block[0], 0)[: shape[0]].repeat_interleave(block[1], 1)[:, : shape[1]]


def dequantize(w_fp8: torch.Tensor, scale_inv: torch.Tensor, block: tuple[int, int] = DEFAULT_BLOCK,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    if w_fp8.dim() != 2:
        raise ValueError(f"FP8 block weights must be 2-D, got shape {tuple(w_fp8.shape)}")
    want = scale_shape(tuple(w_fp8.shape), block)
    if tuple(scale_inv.shape) != want:
        raise ValueError(f"weight_scale_inv has shape {tuple(scale_inv.shape)}, expected {want} for a "
                         f"{tuple(w_fp8.shape)} weight in {block[0]}x{block[1]} blocks")
    out = w_fp8.to(torch.float32)
    out.mul_(_expand(scale_inv.to(torch.float32), tuple(w_fp8.shape), block))
    return out.to(dtype)


def quantize(w: torch.Tensor, block: tuple[int, int] = DEFAULT_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (W_fp8, weight_scale_inv) with one scale per block, chosen so the block's max maps to 448."""
    if w.dim() != 2:
        raise ValueError(f"only 2-D weights are block-quantised, got shape {tuple(w.shape)}")
    r, c = w.shape
    sr, sc = scale_shape((r, c), block)
    wf = w.to(torch.float32)
    padded = torch.zeros(sr * block[0], sc * block[1])
    padded[:r, :c] = wf.abs()
    amax = padded.view(sr, block[0], sc, block[1]).amax(dim=(1, 3))
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    q = (wf / _expand(scale, (r, c), block)).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale
