"""MiniMax-M2's released FP8 weights on a CUDA GPU with FP8 tensor cores (Hopper, sm_90).

The e4m3 weights and their float32 128x128 block scales go to the GPU as released (one byte per
weight, nothing requantized). Prefill products run through torch's block-scaled matmul (cuBLASLt,
DeepSeek-style scaling): the activations are quantized to e4m3 per token in 1x128 blocks at run time,
the weights keep their 128x128 blocks. This is how FP8 checkpoints are served on Hopper (vLLM's and
SGLang's w8a8 block FP8); the activation rounding makes it close to the dequantized model, not equal
(tests/test_fp8_cuda.py holds the logits to it).

Where that matmul cannot run (no CUDA, a GPU other than sm_90, a torch without blockwise scaling, widths
that are not multiples of 128) `unsupported()` says why and the loader dequantizes to the model dtype.

Expert products do not go through the matmul where Triton runs (checked by the same probe): the kernels
of fp8_triton.py read each expert's weight in place (one byte per weight, float32 sums, no activation
rounding), `gemv` for decode rows and `moe` for prefill, all active experts in two launches. Else the
eager paths below.

* `Fp8CudaLinear`: one projection (q/k/v concatenated along N, with their scales); at most `MAX_ROWS`
  rows through the kernel, more through the block-scaled matmul.
* `Fp8CudaExperts`: expert stacks w13 [E, 2I, H] / w2 [E, H, I] with their scales. Decode-sized batches
  (at most E (token, choice) pairs, as for the float stacks) run each pair through its expert in the
  kernel (eager fallback: the chosen experts dequantized in the model dtype, the scale rounded to it, into
  two batched products, while those copies stay under `EAGER_GATHER_BYTES`), with no host sync; larger
  batches run through the `moe` kernel (fallback: each active expert through the block-scaled matmul,
  about 30 launches an expert).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .experts import combine_pairs, grouped, swiglu, through_pairs
from .fp8 import FP8_DTYPE, FP8_MAX, dequantize, quantize

BLOCK = 128
MAX_ROWS = 16  # rows of a projection that take the decode kernel
EAGER_GATHER_BYTES = 1 << 30  # at most this much of dequantized expert copies in the eager decode path
_probed: dict[str, str | None] = {}
_kernels: dict[str, dict] = {}  # fp8_triton's kernels that passed the probe on each device


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (e4m3 [M', K], decode scales [M', K/128] column-major), M' = M rounded up to 16
    (zero rows): one scale per token and 128 columns, chosen so the block's max maps to 448."""
    m, k = x.shape
    mp = _round_up(max(m, 1), 16)
    xf = (x.float() if mp == m else F.pad(x.float(), (0, 0, 0, mp - m))).contiguous().view(mp, k // BLOCK, BLOCK)
    scale = xf.abs().amax(-1).clamp(min=1e-12) / FP8_MAX
    q = (xf / scale[..., None]).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE).view(mp, k)
    return q, scale.t().contiguous().t()


def weight_scales(scale_inv: torch.Tensor) -> torch.Tensor:
    """A weight's block scales [..., N/128, K/128] in cuBLASLt's layout: [..., L4, N/128] with the K blocks
    innermost (stride 1), L4 = K/128 rounded up to 4 (padded with ones, never read)."""
    *lead, n, k = scale_inv.shape
    padded = torch.ones(*lead, n, _round_up(k, 4), dtype=torch.float32, device=scale_inv.device)
    padded[..., :k] = scale_inv
    return padded.transpose(-1, -2)


def _mm_v2(q, w, sa, sb, dtype):  # torch >= 2.10: the recipes are named
    st = F.ScalingType
    return F.scaled_mm(q, w.t(), sa, st.BlockWise1x128, sb, st.BlockWise128x128, output_dtype=dtype)


def _mm_v1(q, w, sa, sb, dtype):  # the recipe is read off the scales' shapes: the K blocks unpadded
    return torch._scaled_mm(q, w.t(), sa, sb[: q.shape[1] // BLOCK], out_dtype=dtype)


_mm = _mm_v2 if hasattr(F, "scaled_mm") and hasattr(F, "ScalingType") else _mm_v1


def fp8_mm(x: torch.Tensor, w: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """x [M, K] @ dequantize(w, scales).T -> [M, N] in x's dtype; w [N, K] e4m3, sb from `weight_scales`."""
    if x.shape[0] == 0:
        return x.new_empty(0, w.shape[0])
    q, sa = quantize_activations(x)
    return _mm(q, w, sa, sb, x.dtype)[: x.shape[0]]


def unsupported(device: torch.device | str, cfg: ModelConfig | None = None) -> str | None:
    """Why the block-scaled FP8 path cannot serve here (None when it can): checked once per device by
    multiplying a small block-quantized matrix against its dequantized product."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return "it needs a CUDA GPU"
    if cfg is not None:
        widths = (cfg.hidden_size, cfg.intermediate_size, cfg.q_size, cfg.kv_size)
        block = tuple((cfg.quantization_config or {}).get("weight_block_size", (BLOCK, BLOCK)))
        if block != (BLOCK, BLOCK) or any(w % BLOCK for w in widths):
            return f"it needs 128x128 blocks and widths that are multiples of 128 (got {block}, {widths})"
    key = str(device)
    if key not in _probed:
        _probed[key] = _probe(device)
    return _probed[key]


def _probe(device: torch.device) -> str | None:
    try:
        cap = torch.cuda.get_device_capability(device)
    except (RuntimeError, AssertionError, ValueError) as e:
        return f"{device} cannot be used ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    if cap != (9, 0):
        return f"cuBLASLt's block-scaled FP8 matmul runs on sm_90 (Hopper); this GPU is sm_{cap[0]}{cap[1]}"
    global _mm
    g = torch.Generator().manual_seed(0)
    w, s = quantize(torch.randn(256, 384, generator=g))  # 3 column blocks: the scales' padding to 4 is used
    x = torch.randn(5, 384, generator=g).to(torch.bfloat16)  # as served
    want = x.float() @ dequantize(w, s).T
    errors = []
    for impl in dict.fromkeys((_mm, _mm_v1)):  # the named-recipe API where torch has it, else the shape-read one
        _mm = impl
        try:
            got = fp8_mm(x.to(device), w.to(device), weight_scales(s.to(device))).cpu()
        except (RuntimeError, NotImplementedError, TypeError, ValueError, AttributeError) as e:
            errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
            continue
        if F.cosine_similarity(got.float().flatten(), want.flatten(), dim=0) > 0.995:
            _kernels[str(device)] = _probe_kernels(device, x, w, s, want)
            return None
        errors.append("its result disagreed with the dequantized product")
    return f"torch {torch.__version__} has no usable block-scaled FP8 matmul here ({'; '.join(errors)})"


def _probe_kernels(device, x, w, s, want) -> dict:
    """{"gemv": fn, "moe": fn} for those of fp8_triton's kernels that compile here and agree with the
    dequantized product; a kernel that fails is left out with a warning, and its eager path serves."""
    from . import fp8_triton  # imports Triton: only where a GPU serves FP8

    if fp8_triton.gemv is None:
        return {}
    g = torch.Generator().manual_seed(1)
    w2, s2 = quantize(torch.randn(384, 128, generator=g))  # one expert of H = 384, I = 128 (w: its w13)
    idx = torch.zeros(x.shape[0], 1, dtype=torch.long)
    h = torch.nn.functional.silu(want[:, :128]) * want[:, 128:]
    checks = {
        "gemv": (lambda: fp8_triton.gemv(x.to(device), w[None].to(device), s[None].to(device),
                                         idx[:, 0].to(device=device, dtype=torch.int32)), want),
        "moe": (lambda: fp8_triton.moe(x.to(device), idx.to(device), w[None].to(device), s[None].to(device),
                                       w2[None].to(device), s2[None].to(device)), h @ dequantize(w2, s2).T),
    }
    found = {}
    for name, (run, expect) in checks.items():
        try:
            got = run().cpu()
        except Exception as e:  # noqa: BLE001 - Triton's compile errors derive from Exception alone
            warnings.warn(f"FP8 {name} kernel unavailable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                          f"using the eager path", RuntimeWarning, stacklevel=2)
            continue
        if ((got - expect).abs().max() <= 1e-2 * expect.abs().max()).item():  # moe rounds h to bf16
            found[name] = getattr(fp8_triton, name)
    return found


def kernel(device: torch.device | str, name: str):
    """fp8_triton's `name` ("gemv" or "moe") where it passed the probe on `device`, else None."""
    if unsupported(device) is not None:
        return None
    return _kernels.get(str(torch.device(device)), {}).get(name)


class Fp8CudaLinear(nn.Module):
    """One projection's FP8 weight [N, K] and its block scales on the GPU (parts of a fused q/k/v are
    concatenated along N: their block rows stay whole)."""

    def __init__(self, parts: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device):
        super().__init__()
        self.register_buffer("weight", torch.cat([w.to(device) for w, _ in parts]))
        self.register_buffer("scale_inv", torch.cat([s.to(device) for _, s in parts]))
        self.register_buffer("sb", weight_scales(self.scale_inv), persistent=False)
        self.register_buffer("rows", torch.zeros(MAX_ROWS, dtype=torch.int32, device=device), persistent=False)
        self.out_features = self.weight.shape[0]
        self.gemv = kernel(device, "gemv")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        if self.gemv is not None and x2.shape[0] <= MAX_ROWS:
            y = self.gemv(x2, self.weight[None], self.scale_inv[None], self.rows[: x2.shape[0]]).to(x.dtype)
        else:
            y = fp8_mm(x2, self.weight, self.sb)
        return y.view(*x.shape[:-1], -1)


class Fp8CudaExperts(nn.Module):
    """The FP8 expert stacks on the GPU: w13 [E, 2I, H] (w1 rows, then w3) with s13 [E, 2I/128, H/128],
    w2 [E, H, I] with s2 [E, H/128, I/128]; filled one expert at a time by `put`."""

    block = None  # no native CPU block

    def __init__(self, num_experts: int, hidden: int, inter: int, device: torch.device):
        super().__init__()
        e, h, i, b = num_experts, hidden, inter, BLOCK
        self.num_experts, self.inter = e, i
        self.eager_pairs = max(1, EAGER_GATHER_BYTES // (3 * h * i * 4))  # a bf16 copy and its product
        self.register_buffer("w13", torch.empty(e, 2 * i, h, dtype=FP8_DTYPE, device=device))
        self.register_buffer("s13", torch.empty(e, 2 * i // b, h // b, device=device))
        self.register_buffer("w2", torch.empty(e, h, i, dtype=FP8_DTYPE, device=device))
        self.register_buffer("s2", torch.empty(e, h // b, i // b, device=device))
        self.gemv, self.moe = kernel(device, "gemv"), kernel(device, "moe")

    def put(self, e: int, w1, w3, w2, s1, s3, s2) -> None:
        i, b = self.inter, self.inter // BLOCK
        self.w13[e, :i].copy_(w1)
        self.w13[e, i:].copy_(w3)
        self.w2[e].copy_(w2)
        self.s13[e, :b].copy_(s1)
        self.s13[e, b:].copy_(s3)
        self.s2[e].copy_(s2)

    def finish(self) -> "Fp8CudaExperts":
        self.register_buffer("sb13", weight_scales(self.s13), persistent=False)
        self.register_buffer("sb2", weight_scales(self.s2), persistent=False)
        return self

    def _dequantized(self, w: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """In `dtype` throughout: a float32 intermediate would move four times the bytes of the weights."""
        p, n, k = w.shape
        blocks = w.to(dtype).view(p, n // BLOCK, BLOCK, k // BLOCK, BLOCK) * s.to(dtype)[:, :, None, :, None]
        return blocks.view(p, n, k)

    def _gathered(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        flat = idx.flatten()
        if self.gemv is not None:  # each (token, choice) pair against its expert's FP8 weight in place
            rows = flat.to(torch.int32)
            h = swiglu(self.gemv(x.repeat_interleave(idx.shape[1], dim=0), self.w13, self.s13, rows).to(x.dtype))
            return combine_pairs(self.gemv(h, self.w2, self.s2, rows), weights, x.dtype)
        return through_pairs(x, weights, self._dequantized(self.w13[flat], self.s13[flat], x.dtype),
                             self._dequantized(self.w2[flat], self.s2[flat], x.dtype))

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        return fp8_mm(swiglu(fp8_mm(x, self.w13[e], self.sb13[e])), self.w2[e], self.sb2[e])

    def expert_weights(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Expert e's dequantized fused gate/up [2I, H] and down [H, I] weights (float32)."""
        return dequantize(self.w13[e], self.s13[e]), dequantize(self.w2[e], self.s2[e])

    def forward(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if idx.numel() <= self.num_experts and (self.gemv is not None or idx.numel() <= self.eager_pairs):
            return self._gathered(x, idx, weights)
        if self.moe is not None:
            return combine_pairs(self.moe(x, idx, self.w13, self.s13, self.w2, self.s2), weights, x.dtype)
        return grouped(x, idx, weights, self.num_experts, self._expert)[0]
