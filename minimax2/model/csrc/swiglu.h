// The SwiGLU middle of the expert blocks, h = bf16(bf16(silu(g)) * u) for [g; u] rows of the fused
// gate/up product, vectorised (a scalar std::exp per value was 5-10% of a decode step) and split
// across threads. Rounds where torch's bf16 silu and multiply round; exp is a degree-7 polynomial
// after range reduction (relative error ~1e-8, far below the bf16 rounding that follows).
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstdint>

#include "simd_bf16.h"

namespace minimax2 {

inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln 2, split in two
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// gu [P, 2I] bf16 -> h [P, I] (bf16, or float holding bf16 values); I % 16 == 0.
template <typename Out>
inline void swiglu_rows(const at::BFloat16* gu, int64_t P, int64_t I, Out* h) {
  at::parallel_for(0, P * (I / 16), 64, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t q = c / (I / 16), i = (c % (I / 16)) * 16;
      const at::BFloat16* row = gu + q * 2 * I;
      const __m512 g = load16_as_float(row + i), u = load16_as_float(row + I + i);
      const __m512 silu = round_to_bf16(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g)))));
      store16(h + q * I + i, _mm512_mul_ps(silu, u));
    }
  });
}

}  // namespace minimax2
