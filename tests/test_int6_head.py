"""The 6-bit lm_head (`--lm-head int6`, linear.int6_groups, csrc/int4_dot.h): the layout is the one the
kernel documents, the kernel equals its arithmetic on the dequantised weights (int16 or int8
activations), prefill and decode agree, and a model loaded with it stays close to the float32 model."""

from __future__ import annotations

import pytest
import torch

from minimax2.model import cpu_kernels
from minimax2.model.forms import check_form, lm_head_form, make_linear
from minimax2.model.linear import Int6Linear, int6_dequantize, int6_groups, int8_activations
from minimax2.model.loader import load_model
from minimax2.model.memory import serving_bytes
from model_support import group_activations, kernels_or_skip, teacher_forced_logits


@pytest.fixture(scope="module")
def ext():
    return kernels_or_skip(cpu_kernels.load(), "the native kernels")


def test_int6_layout_holds_every_weight_where_the_kernel_reads_it():
    """Low 4 bits in torch's int4pack layout, top 2 bits in bytes of 32 per pair (k, k + 1) of a 64-row
    block, (scale, zero) block by block: each weight's u rebuilt by hand from those rules."""
    g = torch.Generator().manual_seed(0)
    n, k = 128, 128
    w = torch.randn(n, k, generator=g)
    packed, top, sz = int6_groups(w, torch.bfloat16)
    assert packed.shape == (n, k // 2) and top.shape == (n, k // 4) and sz.shape == (n // 64, k // 64, 64, 2)
    r, c = torch.arange(n)[:, None].expand(n, k), torch.arange(k)[None, :].expand(n, k)
    byte = packed.flatten()[((r // 64) * k * 32 + c * 32 + r % 32).flatten()].view(n, k).int()
    low = torch.where(r % 64 < 32, byte & 15, byte >> 4)
    tb = top.flatten()[((r // 64) * k * 16 + (c // 2) * 32 + r % 32).flatten()].view(n, k).int()
    high = (tb >> (2 * (r % 64 // 32) + 4 * (c % 2))) & 3
    u = (low + 16 * high).double()
    pairs = sz.double()[r // 64, c // 64, r % 64]  # [n, k, 2]
    rebuilt = (u - 32) * pairs[..., 0] + pairs[..., 1]
    assert torch.equal(rebuilt, int6_dequantize(packed, top, sz).double())
    # and it is w to within half a step (plus the bf16 rounding of the zero point)
    step = pairs[..., 0]
    assert ((rebuilt - w.double()).abs() <= 0.5 * step + w.double().abs().amax() * 2 ** -8).all()
    assert (u == 0).any() and (u == 63).any()  # the whole 6-bit range is used


@pytest.mark.parametrize("a8", [False, True])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("n, k", [(64, 64), (192, 256), (1536, 1024)])
def test_int6_gemv_does_its_arithmetic(ext, a8, m, n, k):
    g = torch.Generator().manual_seed(m * 100 + n + a8)
    packed, top, sz = int6_groups(torch.randn(n, k, generator=g), torch.bfloat16)
    x = torch.randn(m, k, generator=g).bfloat16()
    if m > 1:
        x[1, k // 3] = 40.0  # an outlier sets its group's scale
    got = ext.gemv_int6(x, packed, top, 64, sz, a8).double()
    deq = int6_dequantize(packed, top, sz).double()
    want = group_activations(x, 64, 127 if a8 else 32767) @ deq.T
    slack = (group_activations(x, 64, 32767).abs() @ deq.abs().T) * 2 ** -18  # float32 steps per group
    assert ((got - want).abs() <= want.abs() * 2 ** -8 + slack).all()


def test_int6_rows_do_not_depend_on_the_batch(ext):
    g = torch.Generator().manual_seed(4)
    packed, top, sz = int6_groups(torch.randn(192, 256, generator=g), torch.bfloat16)
    x = torch.randn(16, 256, generator=g).bfloat16()
    for a8 in (False, True):
        alone = torch.cat([ext.gemv_int6(x[i:i + 1], packed, top, 64, sz, a8) for i in range(16)])
        for m in (2, 3, 5, 8, 16):
            assert torch.equal(ext.gemv_int6(x[:m], packed, top, 64, sz, a8), alone[:m]), (a8, m)


def test_int6_gemv_rejects_what_it_cannot_do(ext):
    packed, top, sz = int6_groups(torch.randn(64, 128), torch.bfloat16)
    x = torch.randn(1, 128).bfloat16()
    with pytest.raises(RuntimeError, match="top bits"):
        ext.gemv_int6(x, packed, top[:, :16].contiguous(), 64, sz)
    with pytest.raises(RuntimeError, match=r"\[N / 64, K / group, 64, 2\]"):
        ext.gemv_int6(x, packed, top, 64, sz.view(2, 64, 2))
    with pytest.raises(ValueError, match="multiple of 64 rows"):
        int6_groups(torch.randn(100, 128), torch.bfloat16, name="lm_head")


def test_int6_linear_prefill_and_decode_agree(ext):
    """Every batch takes the kernel, 16 rows of x at a time: a prefill batch's rows are bit for bit its
    decode rows'. Built from chunks of rows (forms.make_linear), the buffers equal the whole matrix's. A
    float32 model (no kernel for it) is refused, not served by dequantising the matrix each call."""
    g = torch.Generator().manual_seed(5)
    w = torch.randn(8192 + 128, 128, generator=g)
    lin = make_linear(None, "int6", torch.bfloat16, rows=lambda a, b: w[a:b], shape=w.shape)
    whole = int6_groups(w, torch.bfloat16)
    assert isinstance(lin, Int6Linear)
    assert all(torch.equal(a, b) for a, b in zip((lin.packed, lin.top, lin.scale_zeros), whole))
    x = torch.randn(40, 128, generator=g).bfloat16()
    assert torch.equal(lin(x), torch.cat([lin(x[i:i + 1]) for i in range(40)]))
    assert lin(x[:0]).shape == (0, 8192 + 128)
    with int8_activations(True):
        fast = Int6Linear(None, torch.bfloat16, quantized=whole)
    assert fast.a8 and not lin.a8
    assert torch.equal(fast(x[:3]), ext.gemv_int6(x[:3], *whole[:2], 64, whole[2], True))
    with pytest.raises(ValueError, match="runs on the native CPU kernels in a bf16 model"):
        make_linear(w[:128], "int6", torch.float32, name="lm_head")


def test_load_model_with_a_6bit_head(ext, tmp_path):
    """A model loaded with `lm_head="int6"` holds the head in its 6-bit form, with the bytes the memory
    guard counts, and stays close to the float32 model (teacher-forced through the cache; measured here:
    rms error 0.0053 against 0.0042 with the int8 head and 0.0041 in bf16, top-1 agreement 83% against
    94% for both: this random model's logits lie close together)."""
    from minimax2.train.random_init import build_random_checkpoint

    ckpt = build_random_checkpoint(tmp_path / "tiny", "tiny", seed=2, dtype=torch.float32)
    tokens = list(range(3, 40))
    ref = teacher_forced_logits(load_model(ckpt, torch.float32), tokens, 20)
    heads = {h: load_model(ckpt, torch.bfloat16, lm_head=h) for h in ("int6", "int8")}
    six = heads["int6"]
    assert isinstance(six.lm_head, Int6Linear) and six.lm_head.gemv is not None
    head_bytes = sum(t.numel() * t.element_size() for t in (six.lm_head.packed, six.lm_head.top,
                                                             six.lm_head.scale_zeros))
    cfg = six.cfg
    assert head_bytes == cfg.vocab_size * cfg.hidden_size * 13 // 16  # 6.5 bits a weight
    assert (serving_bytes(cfg, "float", lm_head="int6") - serving_bytes(cfg, "float", lm_head="int8")
            == head_bytes - cfg.vocab_size * (cfg.hidden_size + 2))
    errs = {}
    for h, model in heads.items():
        got = teacher_forced_logits(model, tokens, 20)
        errs[h] = (got - ref).pow(2).mean().sqrt()
        assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.75, h
    assert errs["int6"] <= 1.5 * errs["int8"]


def test_6bit_head_is_asked_for_where_it_can_run():
    assert lm_head_form("int4", "int6") == "int6" and lm_head_form("fp8", "int6") == "int6"
    with pytest.raises(ValueError, match="choose bf16, int8 or int6"):
        lm_head_form("int4", "int5")
    with pytest.raises(ValueError, match="an int6 lm_head uses the CPU kernels"):
        check_form("float", "cuda", 128, "int6")


def test_6bit_head_is_refused_up_front_without_the_kernels(tmp_path):
    """With the native kernels turned off (`MINIMAX2_CPU_KERNELS=0`, as on a CPU without them) a 6-bit head
    is refused before anything is quantised, with the way out named."""
    import os
    import subprocess
    import sys

    from minimax2.train.random_init import build_random_checkpoint

    ckpt = build_random_checkpoint(tmp_path / "tiny", "tiny", seed=3)
    code = ("import sys, torch\nfrom minimax2.model.loader import load_model\n"
            "try:\n    load_model(sys.argv[1], torch.bfloat16, lm_head='int6')\n"
            "except ValueError as e:\n    print('refused:', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "MINIMAX2_CPU_KERNELS": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "refused: a 6-bit lm_head runs on the native CPU kernels" in r.stdout and "--lm-head int8" in r.stdout
