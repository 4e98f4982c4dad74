"""How far each lm_head form is from the checkpoint's own lm_head, against llama.cpp's output matrices.

    python benchmarks/head_error.py --model ckpt/m2-slice-4l-fp8 --llama-cpp LLAMA \\
        --gguf g/q8_0.gguf --gguf g/q4_0.gguf

For our int8 (per row) and int6 (groups of 64) forms, and for the `output.weight` of each GGUF file
(dequantised with llama.cpp's own gguf-py, from LLAMA/gguf-py), prints the rms error over a sample of
rows spread across the vocabulary, relative to the weights' rms. A Q4_0 file made by
requantizing a Q8_0 one carries both roundings in its Q6_K matrix: compare it with the Q8_0 file's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from minimax2.model.linear import int6_dequantize, int6_groups, int8_rows


def head_slice(model: Path):
    index = model / "model.safetensors.index.json"
    file = json.loads(index.read_text())["weight_map"]["lm_head.weight"] if index.exists() else "model.safetensors"
    return safe_open(str(model / file), "pt").get_slice("lm_head.weight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="checkpoint with a float lm_head (bf16 or the FP8 release)")
    ap.add_argument("--llama-cpp", type=Path, help="llama.cpp source tree (its gguf-py reads the GGUF files)")
    ap.add_argument("--gguf", type=Path, action="append", default=[], help="a GGUF file of the same model (repeatable)")
    ap.add_argument("--chunks", type=int, default=6, help="chunks of 8,192 rows, spread across the vocabulary")
    a = ap.parse_args()
    if a.gguf and a.llama_cpp is None:
        ap.error("--gguf needs --llama-cpp (for gguf-py)")
    head = head_slice(a.model)
    vocab, hidden = head.get_shape()
    theirs = {}
    if a.gguf:
        sys.path.insert(0, str(a.llama_cpp / "gguf-py"))
        from gguf import GGUFReader  # llama.cpp's own reader, on the path just added
        from gguf.quants import dequantize
    for path in a.gguf:
        t = next(t for t in GGUFReader(str(path)).tensors if t.name == "output.weight")
        theirs[f"{path.name} ({t.tensor_type.name})"] = t
    err = {"int8 (per row)": 0.0, "int6 (groups of 64)": 0.0, **{k: 0.0 for k in theirs}}
    power = 0.0
    for start in range(0, vocab, max(vocab // a.chunks, 8192)):
        stop = min(start + 8192 // 64 * 64, vocab // 64 * 64)
        if stop <= start:
            break
        w = head[start:stop].float()
        power += w.pow(2).sum().item()
        q, s = int8_rows(w, torch.bfloat16)
        err["int8 (per row)"] += (q.float() * s.float()[:, None] - w).pow(2).sum().item()
        err["int6 (groups of 64)"] += (int6_dequantize(*int6_groups(w, torch.bfloat16)) - w).pow(2).sum().item()
        for name, t in theirs.items():
            d = dequantize(t.data[start:stop], t.tensor_type).reshape(stop - start, hidden).astype(np.float32)
            err[name] += (torch.from_numpy(d) - w).pow(2).sum().item()
    print(f"{a.model} lm_head [{vocab}, {hidden}]: rms error / rms weight")
    for name, e in err.items():
        print(f"  {name:32s} {(e / power) ** 0.5:.5f}")


if __name__ == "__main__":
    main()
