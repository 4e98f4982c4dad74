// Products of int8 weights (one scale per output row) with a few activation rows, shared by the int8
// matrix-vector kernel (gemv_int8.cpp) and the int8 expert block (experts_int8.cpp).
//
// Widening each int8 weight to float32 and using FMAs (what aten._weight_int8pack_mm does) costs six
// instructions per 32 weights and is compute-bound at about half the memory bus. Here activations are
// quantised to int16 per block of 128 columns (scale = block max / 32767, so each value is off by at
// most 2^-16 of its block's largest value: finer than the bf16 they come from), weights are
// sign-extended to int16 and multiplied with AVX512-VNNI `vpdpwssd` (32 exact products summed into
// int32 per instruction), and each block's integer sum is scaled into a float32 sum. The output is
// rounded to bf16 once after the channel scale, as the torch op rounds.
#pragma once

#include <ATen/core/Tensor.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "simd_bf16.h"

namespace minimax2 {

constexpr int64_t kI8Rows = 4;    // weight rows per block
// The int8 products prefetch into L2 (`prefetcht1`), 4 KiB ahead, leaving L1 to the activations and
// the hardware prefetcher: a [200064, 3072] int8 matrix from memory, medians of 3 alternating
// processes, took 18.4-19.6 ms at 1 row (into L1 8 KiB ahead: 21.6-22.6), 24.8-26.9 at 4 rows
// (33.1-35.6) and 45-47 at 8 (49). (Without software prefetch one core read four interleaved 1 KiB
// rows at 16 GB/s, with it 36.) The int4 products (int4_dot.h) prefetch the same way: with int8
// activations that took them from 0.59-0.63 of int8's time to 0.53-0.54 (with int16 ones, no change).
constexpr int64_t kI8Prefetch = 4096;
constexpr int64_t kQBlock = 128;  // activation columns per int16 scale; 128 * 32767 * 128 < 2^31

inline int64_t qblocks(int64_t K, int64_t block = kQBlock) { return (K + block - 1) / block; }

// Rows of x (float or bf16, row stride K) to int16 q [rows, K] and scales s [rows, qblocks(K, block)]:
// x ~= q * s per block, rounded to nearest even. With `sums`, also each block's integer sum of q
// (int4_dot.h needs it). K and block are multiples of 16.
template <typename T>
inline void quantize_i16(const T* x, int64_t rows, int64_t K, int16_t* q, float* s, int64_t block = kQBlock,
                         int32_t* sums = nullptr) {
  const int64_t nb = qblocks(K, block);
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t k0 = b * block, k1 = std::min(K, k0 + block);
      __m512 vmax = _mm512_setzero_ps();
      for (int64_t k = k0; k < k1; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(load16_as_float(x + m * K + k)));
      const float amax = _mm512_reduce_max_ps(vmax);
      const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 32767.0f / amax : 0.0f);
      s[m * nb + b] = amax / 32767.0f;
      __m512i sum = _mm512_setzero_si512();
      for (int64_t k = k0; k < k1; k += 16) {
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(load16_as_float(x + m * K + k), inv));
        sum = _mm512_add_epi32(sum, v);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + m * K + k), _mm512_cvtsepi32_epi16(v));
      }
      if (sums != nullptr) sums[m * nb + b] = _mm512_reduce_add_epi32(sum);
    }
}

// 32 int8 weights sign-extended to int16 straight from memory (`vpmovsxbw zmm, m256`). Loading the
// 64-byte line once and widening its halves adds a third shuffle, the upper half's extract. At one row
// of x that mattered: a standalone loop over a row in L1 took 1.20 ns a line against 1.51, and the kernel
// on a [4096, 3072] matrix in L3 0.17 ms against 0.19. From three rows on, the line loaded once was
// faster (4 rows: 0.44 against 0.52 ms), so block_i8 widens from memory at one or two rows only.
inline __m512i widen_i8(const int8_t* p) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// y[m, n + r] for r < rows, m < M, over quantised x rows (q, s) and int8 weights w [N, K] with row
// scales ws. K % 32 == 0. Each weight row is read start to end (one sequential stream, which the
// memory system serves faster than interleaved rows), two integer chains per row of x.
template <int M>
inline void block_i8(const int16_t* q, const float* s, const int8_t* w, const at::BFloat16* ws, at::BFloat16* y,
                     int64_t K, int64_t N, int64_t n, int64_t rows) {
  const int64_t nb = qblocks(K);
  const int8_t* end = w + N * K;
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* row = w + (n + r) * K;
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t k0 = b * kQBlock, k1 = std::min(K, k0 + kQBlock);
      __m512i isum[M][2];
      for (int m = 0; m < M; ++m) isum[m][0] = isum[m][1] = _mm512_setzero_si512();
      int64_t k = k0;
      for (; k + 64 <= k1; k += 64) {  // a whole cache line of the row per step
        if (row + k + kI8Prefetch < end)
          _mm_prefetch(reinterpret_cast<const char*>(row + k + kI8Prefetch), _MM_HINT_T1);
        __m512i wlo, whi;
        if constexpr (M <= 2) {
          wlo = widen_i8(row + k);
          whi = widen_i8(row + k + 32);
        } else {
          const __m512i v = _mm512_loadu_si512(row + k);
          wlo = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(v));
          whi = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(v, 1));
        }
        for (int m = 0; m < M; ++m) {
          isum[m][0] = _mm512_dpwssd_epi32(isum[m][0], _mm512_loadu_si512(q + m * K + k), wlo);
          isum[m][1] = _mm512_dpwssd_epi32(isum[m][1], _mm512_loadu_si512(q + m * K + k + 32), whi);
        }
      }
      for (; k < k1; k += 32) {
        const __m512i wv = widen_i8(row + k);
        for (int m = 0; m < M; ++m) isum[m][0] = _mm512_dpwssd_epi32(isum[m][0], _mm512_loadu_si512(q + m * K + k), wv);
      }
      for (int m = 0; m < M; ++m)
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(isum[m][0], isum[m][1])),
                                 _mm512_set1_ps(s[m * nb + b]), acc[m]);
    }
    for (int m = 0; m < M; ++m) y[m * N + n + r] = at::BFloat16(_mm512_reduce_add_ps(acc[m]) * static_cast<float>(ws[n + r]));
  }
}

// Two weight rows in lockstep against up to eight quantised rows of x: each activation vector loaded
// serves both rows. Each 128-column block of the two rows is loaded and widened once, then every row of x
// runs its chains on it. With eight rows of x in two passes of four, the one-row loop above issues a
// 64-byte activation load per `vpdpwssd` and ran at ~1.3 G products/s a core on Zen 4, a third of the
// instruction's 3.6 G/s there; two rows in lockstep ran at 2.5. Eight rows of x in one pass instead of
// two passes of four: on Zen 5 (one thread, alternating in one process) 29.5 against 33.6 cycles a block
// with the weights in L2, 36 against 43-45 from memory. Integer sums are exact, so the result is bit for
// bit block_i8's.
template <int M>
inline void pair_i8(const int16_t* q, const float* s, const int8_t* w, const at::BFloat16* ws, at::BFloat16* y,
                    int64_t K, int64_t N, int64_t n) {
  const int64_t nb = qblocks(K), full = K / kQBlock;
  const int8_t* end = w + N * K;
  const int8_t* r0 = w + n * K;
  const int8_t* r1 = r0 + K;
  __m512 acc0[M], acc1[M];
  for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < full; ++b) {
    const int64_t k = b * kQBlock;
    if (r1 + k + kI8Prefetch + 64 < end) {
      _mm_prefetch(reinterpret_cast<const char*>(r0 + k + kI8Prefetch), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(r0 + k + kI8Prefetch + 64), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(r1 + k + kI8Prefetch), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(r1 + k + kI8Prefetch + 64), _MM_HINT_T1);
    }
    __m512i u[4], v[4];  // the block of each row, widened: 32 columns a vector
    for (int j = 0; j < 2; ++j) {
      const __m512i x0 = _mm512_loadu_si512(r0 + k + 64 * j), x1 = _mm512_loadu_si512(r1 + k + 64 * j);
      u[2 * j] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(x0));
      u[2 * j + 1] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(x0, 1));
      v[2 * j] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(x1));
      v[2 * j + 1] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(x1, 1));
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const int16_t* qm = q + m * K + k;
      __m512i xv = _mm512_loadu_si512(qm);
      __m512i i0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), xv, u[0]);
      __m512i i1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), xv, v[0]);
#pragma GCC unroll 4
      for (int j = 1; j < 4; ++j) {
        xv = _mm512_loadu_si512(qm + 32 * j);
        i0 = _mm512_dpwssd_epi32(i0, xv, u[j]);
        i1 = _mm512_dpwssd_epi32(i1, xv, v[j]);
      }
      const __m512 sc = _mm512_set1_ps(s[m * nb + b]);
      acc0[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), sc, acc0[m]);
      acc1[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), sc, acc1[m]);
    }
  }
  if (full < nb) {  // the last, partial block (K % 128 columns, a multiple of 32)
    __m512i i0[M], i1[M];
    for (int m = 0; m < M; ++m) i0[m] = i1[m] = _mm512_setzero_si512();
    for (int64_t k = full * kQBlock; k < K; k += 32) {
      const __m512i w0 = widen_i8(r0 + k), w1 = widen_i8(r1 + k);
      for (int m = 0; m < M; ++m) {
        const __m512i x = _mm512_loadu_si512(q + m * K + k);
        i0[m] = _mm512_dpwssd_epi32(i0[m], x, w0);
        i1[m] = _mm512_dpwssd_epi32(i1[m], x, w1);
      }
    }
    for (int m = 0; m < M; ++m) {
      const __m512 sc = _mm512_set1_ps(s[m * nb + full]);
      acc0[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[m]), sc, acc0[m]);
      acc1[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[m]), sc, acc1[m]);
    }
  }
  for (int m = 0; m < M; ++m) {
    y[m * N + n] = at::BFloat16(_mm512_reduce_add_ps(acc0[m]) * static_cast<float>(ws[n]));
    y[m * N + n + 1] = at::BFloat16(_mm512_reduce_add_ps(acc1[m]) * static_cast<float>(ws[n + 1]));
  }
}

// Weight rows [n, n + rows) against M quantised rows of x: with `pairs`, two weight rows at a time, and a
// last odd one alone.
template <int M>
inline void group_i8(const int16_t* q, const float* s, const int8_t* w, const at::BFloat16* ws, at::BFloat16* y,
                     int64_t K, int64_t N, int64_t n, int64_t rows, bool pairs) {
  int64_t r = 0;
  if (pairs)
    for (; r + 2 <= rows; r += 2) pair_i8<M>(q, s, w, ws, y, K, N, n + r);
  if (r < rows) block_i8<M>(q, s, w, ws, y, K, N, n + r, rows - r);
}

// Weight rows [n, n + rows) against `cnt` quantised rows of x. Up to four rows of x, one weight row at a
// time: the bus is the limit there, and one sequential stream reads it fastest. Five or more, two weight
// rows at a time (pair_i8) against up to eight rows of x a pass (the weight rows come from L1 after the
// first pass): the activation loads and the products are the limit.
inline void rows_i8(const int16_t* q, const float* s, const int8_t* w, const at::BFloat16* ws, at::BFloat16* y,
                    int64_t K, int64_t N, int64_t n, int64_t rows, int64_t cnt) {
  const int64_t nb = qblocks(K);
  const bool pairs = cnt >= 5;
  const int64_t pass = pairs ? 8 : 4;
  for (int64_t m = 0; m < cnt; m += pass) {
    const int16_t* qm = q + m * K;
    const float* sm = s + m * nb;
    at::BFloat16* ym = y + m * N;
    switch (std::min<int64_t>(pass, cnt - m)) {
      case 1: group_i8<1>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
      case 2: group_i8<2>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
      case 3: group_i8<3>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
      case 4: group_i8<4>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
      case 5: group_i8<5>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
      case 6: group_i8<6>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
      case 7: group_i8<7>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
      default: group_i8<8>(qm, sm, w, ws, ym, K, N, n, rows, pairs); break;
    }
  }
}

}  // namespace minimax2
