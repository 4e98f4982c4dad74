"""What quantisation costs in the model's predictions: KL divergence and top-1 agreement of next-token
distributions against bf16, on the benchmark checkpoint's tokens or a trained model's text."""

from __future__ import annotations

from pathlib import Path

import torch

from ..model.attention import AttentionMetadata
from ..model.loader import load_model


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
            out[prec] = quality(load_model(model_dir, torch.bfloat16, quantization=prec), ref, texts)
    out["bf16 vs float32"] = quality(ref, load_model(model_dir, torch.float32), texts)
    return out
