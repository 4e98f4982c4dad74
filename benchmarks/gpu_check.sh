#!/usr/bin/env bash
# The GPU checks in one short run, for a borrowed CUDA machine (a few minutes on an H100/H200):
#   1. the CUDA tests (the model, engine and trainer against the CPU; the FP8 path; the Triton kernels
#      compiled, where our CPU machines run them in Triton's interpreter);
#   2. a 1-layer slice of M2 at its full widths in the official FP8 layout, served as released (fp8)
#      and dequantized at load (bf16) in the same run: load, GPU memory, decode at batch 1 / 8 / 32 and
#      a cold prefill of 32 x 128 tokens (README, "FP8 on Hopper").
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (PYTHON=... to pick the interpreter, default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
"$PY" -m pytest -q -p no:cacheprovider tests/test_fp8_triton.py tests/test_fp8_cuda.py tests/test_cuda.py 2>&1 \
    | tee "$OUT/tests.txt" | tail -15
test -f /tmp/ckpt/m2-slice-1l-fp8/config.json || "$PY" benchmarks/make_checkpoints.py --out /tmp/ckpt --shape m2-slice --layers 1
for form in fp8 bf16; do
    "$PY" benchmarks/bench_cuda.py --model /tmp/ckpt/m2-slice-1l-fp8 --quantization "$form" --no-hf \
        --batches 1 8 32 --new-tokens 32 2>&1 | tee "$OUT/slice-$form.txt" | grep -v Warning
done
