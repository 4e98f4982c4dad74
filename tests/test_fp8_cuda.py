"""The official FP8 layout on a Hopper GPU (model/fp8_cuda.py): weights and block scales kept as released,
products through torch's block-scaled FP8 matmul with activations quantized per token in 1x128 blocks.

The layout helpers run everywhere; the rest needs a GPU where that matmul runs (sm_90) and is skipped
elsewhere (our CI machines). On a GPU machine: `python -m pytest -q tests/test_fp8_cuda.py
tests/test_fp8_triton.py` (the Triton kernels themselves are in the second).
"""

from __future__ import annotations

import pytest
import torch

from minimax2.model import fp8_cuda
from minimax2.model.fp8 import FP8_MAX, dequantize, quantize

# widths that are multiples of 128, as the block-scaled matmul needs (M2's own all are)
SHAPE = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
             rotary_dim=32, num_local_experts=16, num_experts_per_tok=4, intermediate_size=128, vocab_size=1024)


def test_activations_are_quantized_per_token_and_128_columns():
    x = torch.randn(5, 384, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 30.0, 1e-3]).repeat_interleave(128)
    q, s = fp8_cuda.quantize_activations(x)
    assert q.shape == (16, 384) and s.shape == (16, 3) and s.stride() == (1, 16)  # rows padded, scales column-major
    assert q[5:].float().abs().max() == 0
    back = q[:5].float().view(5, 3, 128) * s[:5, :, None]
    assert torch.allclose(back.view(5, 384), x, rtol=2**-4, atol=0)  # e4m3: 3 mantissa bits, no block underflows
    assert torch.allclose(q[:5].float().view(5, 3, 128).abs().amax(-1), torch.full((5, 3), FP8_MAX))
    q, s = fp8_cuda.quantize_activations(torch.randn(256, 16).t())  # a transposed input, no padding needed
    assert q.is_contiguous() and s.stride() == (1, 16)  # the row-major layout the matmul takes


def test_weight_scales_take_cublas_layout():
    s = torch.arange(12, dtype=torch.float32).view(2, 6) + 1  # N/128 = 2, K/128 = 6 -> padded to 8
    sb = fp8_cuda.weight_scales(s)
    assert sb.shape == (8, 2) and sb.stride() == (1, 8)
    assert torch.equal(sb[:6], s.t()) and torch.equal(sb[6:], torch.ones(2, 2))
    stack = fp8_cuda.weight_scales(torch.stack([s, 2 * s]))
    assert stack.shape == (2, 8, 2) and torch.equal(stack[1][:6], 2 * s.t()) and stack[1].stride() == (1, 8)


def test_fp8_on_a_machine_without_the_matmul_says_why():
    if fp8_cuda.unsupported("cuda") is None:
        pytest.skip("this machine has the block-scaled FP8 matmul")
    from minimax2.model.forms import check_form, default_form

    with pytest.raises(ValueError, match="--quantization fp8 cannot serve on cuda"):
        check_form("fp8", "cuda", 128)
    assert default_form(True, torch.bfloat16, "cuda") == "float"  # dequantized to bf16 at load instead


def test_fp8_on_a_gpu_is_the_default_only_in_bf16():
    from minimax2.model.forms import default_form

    assert default_form(True, torch.float32, "cuda") == "float"  # float32 asked for: no FP8 activation rounding


hopper = pytest.mark.skipif(fp8_cuda.unsupported("cuda") is not None,
                            reason=f"no block-scaled FP8 matmul: {fp8_cuda.unsupported('cuda')}")


@pytest.fixture(scope="module")
def fp8_ckpt(tmp_path_factory):
    from minimax2.model.writer import convert_to_fp8
    from minimax2.train.random_init import build_random_checkpoint

    src = build_random_checkpoint(tmp_path_factory.mktemp("src"), SHAPE, seed=3, dtype=torch.float32)
    return convert_to_fp8(src, tmp_path_factory.mktemp("fp8") / "m")


@hopper
@pytest.mark.parametrize("m", [1, 3, 17, 200])
def test_block_scaled_product_is_the_product_of_the_quantized_operands(m):
    g = torch.Generator().manual_seed(m)
    w, s = quantize(torch.randn(1536, 3072, generator=g) * 0.02)
    x = torch.randn(m, 3072, generator=g).to(torch.bfloat16)
    got = fp8_cuda.fp8_mm(x.cuda(), w.cuda(), fp8_cuda.weight_scales(s.cuda())).float().cpu()
    q, sa = fp8_cuda.quantize_activations(x.float())
    exact = (q[:m].float().view(m, 24, 128) * sa[:m, :, None]).view(m, 3072) @ dequantize(w, s).T
    assert got.shape == (m, 1536)
    assert ((got - exact).abs().max() / exact.abs().max()).item() < 1e-2  # fp32 accumulate, bf16 out
    ref = x.float() @ dequantize(w, s).T  # and the activation rounding stays small
    assert torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0) > 0.995


@hopper
def test_fp8_checkpoint_is_served_as_fp8_on_hopper(fp8_ckpt):
    from minimax2.model.attention import AttentionMetadata
    from minimax2.model.loader import load_model

    gpu, cpu = load_model(fp8_ckpt, torch.bfloat16, "cuda"), load_model(fp8_ckpt, torch.float32, quantization="bf16")
    layer = gpu.layers[0]
    assert isinstance(layer.attn.qkv_proj, fp8_cuda.Fp8CudaLinear) and isinstance(layer.moe.experts, fp8_cuda.Fp8CudaExperts)
    assert layer.moe.experts.w13.dtype == torch.float8_e4m3fn and layer.moe.experts.w13.device.type == "cuda"
    ids = torch.randint(0, gpu.cfg.vocab_size, (2, 60), generator=torch.Generator().manual_seed(0))
    pos, meta = torch.arange(60).repeat(2), AttentionMetadata.for_batch(2, 60)
    with torch.no_grad():  # 120 tokens x top-4: the prefill path (fp8_triton.moe where Triton runs)
        want = cpu(ids.flatten(), pos, meta)
        got = gpu(ids.flatten().cuda(), pos.cuda(), meta).float().cpu()
    assert torch.nn.functional.cosine_similarity(got, want, dim=-1).min() > 0.99
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.8
    ids, pos, meta = ids[0, :3], pos[:3], AttentionMetadata.for_batch(1, 3)
    with torch.no_grad():  # decode-sized: the FP8 decode kernel where Triton runs, no activation rounding
        want, got = cpu(ids, pos, meta), gpu(ids.cuda(), pos.cuda(), meta).float().cpu()
    assert torch.nn.functional.cosine_similarity(got, want, dim=-1).min() > (0.998 if layer.moe.experts.gemv else 0.99)
    moe, x = layer.moe, torch.randn(3, 256, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16).cuda()
    idx, w = moe.route(x)
    with torch.no_grad():  # decode-sized expert batches (no host sync) against the grouped block-scaled matmuls
        a = moe.experts._gathered(x, idx, w)
        b = fp8_cuda.grouped(x, idx, w, moe.experts.num_experts, moe.experts._expert)[0]
        kernel, moe.experts.gemv = moe.experts.gemv, None
        c = moe.experts._gathered(x, idx, w)  # the eager fallback: chosen experts dequantized
        moe.experts.gemv = kernel
    for other in (b, c):
        assert torch.nn.functional.cosine_similarity(a.float(), other.float(), dim=-1).min() > 0.995
    x = torch.randn(40, 256, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16).cuda()
    idx, w = moe.route(x)
    with torch.no_grad():  # prefill-sized (160 pairs > 16 experts): the moe kernel where it passed the probe
        a = moe.experts(x, idx, w)
        b = fp8_cuda.grouped(x, idx, w, moe.experts.num_experts, moe.experts._expert)[0]
    assert torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min() > 0.995


@hopper
def test_paged_engine_and_llm_on_fp8_cuda(fp8_ckpt):
    from test_engine import greedy, reference, run

    from minimax2 import LLM, SamplingParams
    from minimax2.chat.tokenizer import Tokenizer
    from minimax2.engine.llm_engine import EngineConfig, LLMEngine
    from minimax2.model.loader import load_model

    tok = Tokenizer(fp8_ckpt)
    gpu = load_model(fp8_ckpt, torch.bfloat16, "cuda")
    prompts = [tok.encode(t) for t in ("Once upon a time", "def add(a, b):\n    return", "The quick brown fox jumps")]
    want = [reference(gpu, tok, p, greedy(8)) for p in prompts]
    engine = LLMEngine(gpu, tok, [], EngineConfig(block_size=4, max_num_batched_tokens=7, num_kv_blocks=200))
    got = run(engine, {0: [(str(i), p, greedy(8)) for i, p in enumerate(prompts)]})
    # chunked prefill changes the products' row counts, so cuBLAS may sum in another order: near-ties can flip
    assert sum(got[str(i)][0] == want[i] for i in range(len(prompts))) >= 2
    llm = LLM(fp8_ckpt, device="cuda", quantization="fp8")
    outs = llm.generate(["Hello there", "1 + 1 ="], SamplingParams(max_tokens=8, temperature=0))
    assert all(o.outputs[0].token_ids for o in outs)


@hopper
def test_gpu_memory_guard_names_the_gpu(fp8_ckpt):
    from minimax2.model.loader import load_model
    from minimax2.model.memory import InsufficientMemoryError

    with pytest.raises(InsufficientMemoryError, match="free memory on cuda"):
        load_model(fp8_ckpt, torch.bfloat16, "cuda", kv_bytes=10**15)
