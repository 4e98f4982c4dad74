// Products of int4 weights in PyTorch's CPU int4pack layout with a few activation rows, shared by the
// int4 matrix-vector kernel (gemv_int4.cpp) and the int4 expert block (experts_int4.cpp).
//
// Layout (what aten._convert_weight_to_int4pack_for_cpu writes, checked by the tests): rows in blocks
// of 64; for each k a block holds 32 bytes, byte j = row j (low nibble) and row 32 + j (high nibble).
// A weight is w = (u - 8) * scale + zero for its nibble u and its row's (scale, zero) in group g,
// stored as sz [K / group, N, 2]. So per row n and group g
//     y_n += scale_gn * sum_k x_k u_kn + (zero_gn - 8 scale_gn) * sum_k x_k.
// Activations are quantised to int16 per group (as int8_dot.h does per block), so both sums are exact
// integers: `vpdpwssd` takes pairs (k, k + 1) of 16 rows' nibbles, widened to int16 by one byte
// permutation, against the broadcast activation pair. Each group's sums turn into float32 once.
#pragma once

#include <ATen/core/Tensor.h>
#include <immintrin.h>

#include <cstdint>

#include "int8_dot.h"

namespace minimax2 {

constexpr int64_t kI4Rows = 64;  // rows per packed block

struct Int4Acts {  // activation rows quantised per weight group
  const int16_t* q;
  const float* s;      // [M, G]
  const int32_t* sum;  // [M, G] integer sums of q over each group
  int64_t K, G;
};

// y[m, n0 + j] for j < 64, m < M: pb is the packed block of rows [n0, n0 + 64) ([K][32] bytes), sz the
// matrix's scales and zeros [G, N, 2], group a multiple of 32 (quantize_i16 works 16 at a time). y has row stride N.
template <int M>
inline void block_i4(const Int4Acts& a, const uint8_t* pb, const at::BFloat16* sz, at::BFloat16* y, int64_t N,
                     int64_t n0, int64_t group) {
  alignas(64) float acc[M][kI4Rows] = {};
  // byte 4r of an output word pair takes the k byte of row r, byte 4r + 2 the k + 1 byte; odd bytes 0
  alignas(64) static const uint8_t lo_rows[64] = {0, 0, 32, 0, 1, 0, 33, 0, 2, 0, 34, 0, 3, 0, 35, 0, 4, 0, 36, 0,
      5, 0, 37, 0, 6, 0, 38, 0, 7, 0, 39, 0, 8, 0, 40, 0, 9, 0, 41, 0, 10, 0, 42, 0, 11, 0, 43, 0, 12, 0, 44, 0,
      13, 0, 45, 0, 14, 0, 46, 0, 15, 0, 47, 0};
  const __m512i idx0 = _mm512_load_si512(lo_rows);
  const __m512i idx1 = _mm512_add_epi8(idx0, _mm512_set1_epi8(16));  // rows 16..31 (odd bytes are masked)
  const __mmask64 even = 0x5555555555555555ULL;
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const uint8_t* end = pb + a.K * 32;
  for (int64_t g = 0; g < a.G; ++g)  // each group's 64 (scale, zero) pairs lie N * 4 bytes apart: fetch
    for (int j = 0; j < 4; ++j)      // them all now, not one cache miss per group at its end
      _mm_prefetch(reinterpret_cast<const char*>(sz + (g * N + n0 + 16 * j) * 2), _MM_HINT_T0);
  for (int64_t g = 0; g < a.G; ++g) {
    __m512i isum[M][4];
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < 4; ++j) isum[m][j] = _mm512_setzero_si512();
    for (int64_t k = g * group; k < (g + 1) * group; k += 2) {
      const uint8_t* p = pb + k * 32;  // k and k + 1: one cache line
      if (p + kPrefetch < end) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetch), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(p);
      const __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
      const __m512i w[4] = {_mm512_maskz_permutexvar_epi8(even, idx0, lo), _mm512_maskz_permutexvar_epi8(even, idx1, lo),
                            _mm512_maskz_permutexvar_epi8(even, idx0, hi), _mm512_maskz_permutexvar_epi8(even, idx1, hi)};
      for (int m = 0; m < M; ++m) {
        const __m512i xv = _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(a.q + m * a.K + k));
        for (int j = 0; j < 4; ++j) isum[m][j] = _mm512_dpwssd_epi32(isum[m][j], xv, w[j]);
      }
    }
    for (int j = 0; j < 4; ++j) {  // rows n0 + 16 j ...: 16 (scale, zero) bf16 pairs
      const __m512i raw = _mm512_loadu_si512(sz + (g * N + n0 + 16 * j) * 2);
      const __m512 sc = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
      const __m512 ze = _mm512_castsi512_ps(_mm512_and_si512(raw, _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u))));
      const __m512 off = _mm512_fnmadd_ps(_mm512_set1_ps(8.0f), sc, ze);
      for (int m = 0; m < M; ++m) {
        const float xs = a.s[m * a.G + g];
        __m512 t = _mm512_load_ps(acc[m] + 16 * j);
        t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m][j]), _mm512_mul_ps(sc, _mm512_set1_ps(xs)), t);
        t = _mm512_fmadd_ps(off, _mm512_set1_ps(xs * static_cast<float>(a.sum[m * a.G + g])), t);
        _mm512_store_ps(acc[m] + 16 * j, t);
      }
    }
  }
  for (int m = 0; m < M; ++m)
    for (int64_t j = 0; j < kI4Rows; ++j) y[m * N + n0 + j] = at::BFloat16(acc[m][j]);
}

constexpr int64_t kI4Group = 3;  // rows of x per pass over a packed block

// The packed block of rows [n0, n0 + 64) against `cnt` rows of a (from row m0), in passes of at most
// kI4Group rows of x, split evenly (4 -> 2 + 2, 8 -> 3 + 3 + 2). Four rows of x in one pass ran 3-4x
// slower than two passes of two (a [2048, 3072] matrix in L3: 0.32 ms at 4 rows against 0.08 at 2 and
// 0.10 at 3): their 16 integer sums beside the unpacked weights likely outgrow the 32 vector registers.
// Each row's result is the same whatever the pass, so it is bit for bit the same as before.
inline void rows_i4(const Int4Acts& a, int64_t m0, int64_t cnt, const uint8_t* packed, const at::BFloat16* sz,
                    at::BFloat16* y, int64_t N, int64_t n0, int64_t group) {
  const uint8_t* pb = packed + (n0 / kI4Rows) * a.K * 32;
  const int64_t passes = (cnt + kI4Group - 1) / kI4Group;
  for (int64_t m = m0, p = 0; m < m0 + cnt; ++p) {
    const int64_t c = (m0 + cnt - m + passes - p - 1) / (passes - p);
    const Int4Acts am{a.q + m * a.K, a.s + m * a.G, a.sum + m * a.G, a.K, a.G};
    at::BFloat16* ym = y + m * N;
    switch (c) {
      case 1: block_i4<1>(am, pb, sz, ym, N, n0, group); break;
      case 2: block_i4<2>(am, pb, sz, ym, N, n0, group); break;
      default: block_i4<3>(am, pb, sz, ym, N, n0, group); break;
    }
    m += c;
  }
}

}  // namespace minimax2
