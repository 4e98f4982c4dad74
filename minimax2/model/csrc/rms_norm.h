// One RMSNorm row, shared by the norm kernels (norms.cpp) and the QK-norm of the attention prologue
// (attention_prep.cpp). Rounds where the torch code (`weight * F.rms_norm(x.float()).to(bf16)`)
// rounds: normalise in float32, round to bf16, multiply by the bf16 weight, round again. The sum of
// squares is float32 in 16 lanes (torch sums float32 too, in its own order), vectorised: the scalar
// loop this replaced took 3 us per 1024-wide row.
#pragma once

#include <ATen/core/Tensor.h>
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "simd_bf16.h"

namespace minimax2 {

// y = bf16(w * bf16(x * rsqrt(mean(x^2) + eps))) for one row of H values; Out is bf16, or float holding
// the bf16 values (for a caller that keeps working on them, as the RoPE after the QK-norm does).
template <typename Out>
inline void norm_row(const at::BFloat16* x, const at::BFloat16* w, Out* y, int64_t H, float eps) {
  __m512 ss = _mm512_setzero_ps();
  for (int64_t i = 0; i < H; i += 16) {
    const __m512 v = load16_as_float(x + i, lanes_left(H - i));
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  const __m512 r = _mm512_set1_ps(1.0f / std::sqrt(_mm512_reduce_add_ps(ss) / H + eps));
  for (int64_t i = 0; i < H; i += 16) {
    const __mmask16 m = lanes_left(H - i);
    const __m512 normed = round_to_bf16(_mm512_mul_ps(load16_as_float(x + i, m), r));
    store16(y + i, m, _mm512_mul_ps(load16_as_float(w + i, m), normed));
  }
}

}  // namespace minimax2
