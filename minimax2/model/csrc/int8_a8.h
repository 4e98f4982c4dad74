// int8 weights times activations quantised to 8 bits: the opt-in `int8 activations` of the int8
// matrix-vector products and expert block (gemv_int8_a8, moe_experts_int8_a8), the arithmetic
// llama.cpp uses for Q8_0.
//
// The default int8 products (int8_dot.h) quantise activations to int16, finer than the bf16 they
// come from, and widen each weight to int16 for `vpdpwssd` (32 products an instruction). Here each
// block of 128 activations is quantised to int8 (scale = block max / 127, so a value is off by up to
// 1/254 of its block's largest value), and `vpdpbusd` takes 64 products an instruction straight from
// the weight bytes, with no widening. It multiplies unsigned by signed bytes, so the weights are
// offset to w + 128 by flipping their sign bit, and each block's sum starts at -128 * sum(q) to take
// the offset back out: the integer sum is exactly sum(w * q). Those sums become float32 once a block,
// as in int8_dot.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "int8_dot.h"
#include "simd_bf16.h"

namespace minimax2 {

constexpr int64_t kA8Block = 128;  // activation columns per int8 scale (K % 128 == 0)

// Rows of x (float or bf16, row stride K) to int8 q [rows, K], scales s [rows, K / block] and the offsets
// c [rows, K / block] = mult * sum(q) of each block (-128 for the int8 products, 1 for int4_dot.h's sums);
// x ~= q * s, rounded to nearest even. block a multiple of 16 dividing K.
template <typename T>
inline void quantize_i8(const T* x, int64_t rows, int64_t K, int8_t* q, float* s, int32_t* c,
                        int64_t block = kA8Block, int32_t mult = -128) {
  const int64_t nb = K / block;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t b = 0; b < nb; ++b) {
      const T* xb = x + m * K + b * block;
      __m512 vmax = _mm512_setzero_ps();
      for (int64_t k = 0; k < block; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(load16_as_float(xb + k)));
      const float amax = _mm512_reduce_max_ps(vmax);
      const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
      s[m * nb + b] = amax / 127.0f;
      __m512i sum = _mm512_setzero_si512();
      for (int64_t k = 0; k < block; k += 16) {
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(load16_as_float(xb + k), inv));
        sum = _mm512_add_epi32(sum, v);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + m * K + b * block + k), _mm512_cvtsepi32_epi8(v));
      }
      c[m * nb + b] = mult * _mm512_reduce_add_epi32(sum);
    }
}

// Weight row n against M <= 8 quantised rows of x: y[m, n]. One weight row at a time (one sequential
// stream), all rows of x in one pass: with no widening, eight sums and eight float accumulators fit the
// registers. On a [200064, 3072] int8 matrix from memory this took 18.7-19.0 ms at 1 row, 21 at 4 and
// 31-34 at 8 on Zen 4 (the int16 products: 17.6-18.8, 24-31 and 42-45); two weight rows in lockstep
// against four rows of x, as pair_i8 did then, took 21.3-21.7, 25 and 40-41. Each block's two lines are
// loaded before the rows of x run through them, one integer chain a row of x: with the loop line by line,
// GCC copied the eight sums between registers every line. On Zen 5 (alternating processes) that took 8
// rows from 17.4-22.0 ms to 15.1-15.5 (one slow-bus process: 18.9) and 16 rows from 36.2-38.5 to 34.0-34.3.
template <int M>
inline void row_a8(const int8_t* q, const float* s, const int32_t* c, const int8_t* w, const at::BFloat16* ws,
                   at::BFloat16* y, int64_t K, int64_t N, int64_t n) {
  const int64_t nb = K / kA8Block;
  const int8_t* end = w + N * K;
  const int8_t* row = w + n * K;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[M];
  for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t k = b * kA8Block;
    if (row + k + kI8Prefetch + 64 < end) {
      _mm_prefetch(reinterpret_cast<const char*>(row + k + kI8Prefetch), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(row + k + kI8Prefetch + 64), _MM_HINT_T1);
    }
    const __m512i w0 = _mm512_xor_si512(_mm512_loadu_si512(row + k), flip);  // w + 128 as unsigned bytes
    const __m512i w1 = _mm512_xor_si512(_mm512_loadu_si512(row + k + 64), flip);
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const int8_t* qm = q + m * K + k;
      __m512i isum = _mm512_maskz_set1_epi32(1, c[m * nb + b]);  // -128 sum(q) in lane 0
      isum = _mm512_dpbusd_epi32(isum, w0, _mm512_loadu_si512(qm));
      isum = _mm512_dpbusd_epi32(isum, w1, _mm512_loadu_si512(qm + 64));
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(s[m * nb + b]), acc[m]);
    }
  }
  for (int m = 0; m < M; ++m) y[m * N + n] = at::BFloat16(_mm512_reduce_add_ps(acc[m]) * static_cast<float>(ws[n]));
}

template <int M>
inline void pass_a8(const int8_t* q, const float* s, const int32_t* c, const int8_t* w, const at::BFloat16* ws,
                    at::BFloat16* y, int64_t K, int64_t N, int64_t n, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) row_a8<M>(q, s, c, w, ws, y, K, N, n + r);
}

// Weight rows [n, n + rows) against `cnt` quantised rows of x, in passes of up to eight rows of x, one
// weight row at a time.
inline void block_a8(const int8_t* q, const float* s, const int32_t* c, const int8_t* w, const at::BFloat16* ws,
                     at::BFloat16* y, int64_t K, int64_t N, int64_t n, int64_t rows, int64_t cnt) {
  const int64_t nb = K / kA8Block;
  for (int64_t m = 0; m < cnt; m += 8) {
    const int8_t* qm = q + m * K;
    const float* sm = s + m * nb;
    const int32_t* cm = c + m * nb;
    at::BFloat16* ym = y + m * N;
    switch (std::min<int64_t>(8, cnt - m)) {
      case 1: pass_a8<1>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
      case 2: pass_a8<2>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
      case 3: pass_a8<3>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
      case 4: pass_a8<4>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
      case 5: pass_a8<5>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
      case 6: pass_a8<6>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
      case 7: pass_a8<7>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
      default: pass_a8<8>(qm, sm, cm, w, ws, ym, K, N, n, rows); break;
    }
  }
}

}  // namespace minimax2
