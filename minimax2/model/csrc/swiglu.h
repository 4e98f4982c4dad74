// The SwiGLU middle of the expert blocks, h = bf16(bf16(silu(g)) * u) for [g; u] rows of the fused
// gate/up product, vectorised (a scalar std::exp per value was 5-10% of a decode step) and split
// across threads. Rounds where torch's bf16 silu and multiply round (exp from vec_math.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstdint>

#include "simd_bf16.h"
#include "vec_math.h"

namespace minimax2 {

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
