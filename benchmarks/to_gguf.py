"""Write a GGUF of one of our checkpoints with llama.cpp's own converter, for the llama.cpp baseline.

    python benchmarks/to_gguf.py --llama-cpp DIR --model CKPT --out X.gguf --type q8_0|bf16
    python benchmarks/to_gguf.py --llama-cpp DIR --requantize X-q8_0.gguf --out X-q4_0.gguf --type q4_0
        [--output-type q8_0]

DIR is a llama.cpp source tree built outside this repository (the llama-cpp-python sdist's
`vendor/llama.cpp`, `cmake -B build && cmake --build build --target llama-bench llama-quantize
llama-batched-bench`). Its `convert_hf_to_gguf.py` reads the official MiniMax-M2 layout, FP8 block
scales included, so the GGUF holds the same weights our engine serves.

One thing is adjusted: the converter recognises a BPE pre-tokenizer by hashing how the tokenizer
splits a probe text, and our benchmark checkpoints carry a small tokenizer of their own that it does
not know. The benchmarks time random-token decode and prefill (llama-bench), where the pre-tokenizer
plays no part, so it is declared "gpt-2". Text generated from such a GGUF is not comparable with ours.

Q4_0 is made from the Q8_0 file (`llama-quantize --allow-requantize`), which costs accuracy but not
speed: llama.cpp reads the same bytes per weight either way, and random weights have no accuracy.
llama-quantize keeps the output matrix (lm_head) at Q6_K in a Q4_0 file; `--output-type q8_0` keeps
it at Q8_0 instead, the bits of our int4 form's int8 lm_head, for a comparison at equal bytes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

CONVERT = r"""
import runpy, sys
root = sys.argv[1]
sys.path.insert(0, root)
sys.argv = [root + "/convert_hf_to_gguf.py"] + sys.argv[2:]
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
runpy.run_path(root + "/convert_hf_to_gguf.py", run_name="__main__")
"""


def convert(llama_cpp: Path, model: Path, out: Path, outtype: str) -> None:
    cmd = [sys.executable, "-c", CONVERT, str(llama_cpp), str(model), "--outtype", outtype, "--outfile", str(out)]
    subprocess.run(cmd, check=True)


def requantize(llama_cpp: Path, src: Path, out: Path, qtype: str, output_type: str | None = None) -> None:
    exe = llama_cpp / "build" / "bin" / "llama-quantize"
    if not exe.exists():
        sys.exit(f"{exe} not found: build llama.cpp first (see --help)")
    head = ["--output-tensor-type", output_type] if output_type else []
    subprocess.run([str(exe), "--allow-requantize", *head, str(src), str(out), qtype.upper()], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source tree with a build/ folder")
    ap.add_argument("--model", type=Path, help="our checkpoint folder (official M2 layout)")
    ap.add_argument("--requantize", type=Path, help="an existing GGUF to requantize instead")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--type", default="q8_0", help="bf16, f16 or q8_0 from a checkpoint; q4_0 etc. with --requantize")
    ap.add_argument("--output-type", help="with --requantize: the output matrix's type (llama.cpp's default for "
                                          "Q4_0 is q6_k)")
    a = ap.parse_args()
    if (a.model is None) == (a.requantize is None):
        ap.error("give exactly one of --model and --requantize")
    if a.output_type and a.requantize is None:
        ap.error("--output-type goes with --requantize")
    if a.out.exists():
        print(f"{a.out} exists, skipping")
        return
    t = time.perf_counter()
    tmp = a.out.with_name(a.out.name + ".partial")
    if a.model is not None:
        convert(a.llama_cpp, a.model, tmp, a.type)
    else:
        requantize(a.llama_cpp, a.requantize, tmp, a.type, a.output_type)
    tmp.rename(a.out)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
