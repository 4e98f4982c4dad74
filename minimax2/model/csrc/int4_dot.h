// Products of int4 (and 6-bit) weights in PyTorch's CPU int4pack layout with a few activation rows, shared
// by the int4 matrix-vector kernel (gemv_int4.cpp, which also serves the 6-bit lm_head) and the int4 expert
// block (experts_int4.cpp).
//
// Layout (what aten._convert_weight_to_int4pack_for_cpu writes, checked by the tests): rows in blocks
// of 64; for each k a block holds 32 bytes, byte j = row j (low nibble) and row 32 + j (high nibble).
// A weight is w = (u - 8) * scale + zero for its nibble u and its row's (scale, zero) in group g,
// stored as sz [K / group, N, 2]. So per row n and group g
//     y_n += scale_gn * sum_k x_k u_kn + (zero_gn - 8 scale_gn) * sum_k x_k.
// 6-bit weights (u in 0..63, w = (u - 32) * scale + zero) keep their low 4 bits in that layout and their
// top 2 bits in a second plane of 32 bytes per pair (k, k + 1) of a block: byte j holds, from bit 0,
// (k, row j), (k, row 32 + j), (k + 1, row j), (k + 1, row 32 + j), 2 bits each; their (scale, zero) pairs
// lie block by block, sz [N / 64, G, 64, 2], so a block's are one contiguous run (linear.int6_groups): in
// torch's [G, N, 2] each group's pairs for a block are N * 4 bytes apart, a different page for each group.
// Activations are quantised to int16 per group (as int8_dot.h does per block), so both sums are exact
// integers: `vpdpwssd` takes pairs (k, k + 1) of 16 rows' nibbles, widened to int16 by one byte
// permutation, against the broadcast activation pair. Each group's sums turn into float32 once.
#pragma once

#include <ATen/core/Tensor.h>
#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "int8_a8.h"
#include "int8_dot.h"

namespace minimax2 {

constexpr int64_t kI4Rows = 64;  // rows per packed block

struct Int4Acts {  // activation rows quantised per weight group, to int16 (q) or, with A8, to int8 (q8)
  const int16_t* q;
  const float* s;      // [M, G]
  const int32_t* sum;  // [M, G] integer sums of q over each group
  int64_t K, G;
  const int8_t* q8 = nullptr;
};

// Owns the quantised activation rows of Int4Acts: int16 or (a8) int8 per group, with their scales and sums.
struct Int4ActRows {
  std::vector<int16_t> q;
  std::vector<int8_t> q8;
  std::vector<float> s;
  std::vector<int32_t> sum;
  int64_t K, G, group;
  bool a8;
  Int4ActRows(int64_t rows, int64_t K_, int64_t group_, bool a8_)
      : q(a8_ ? 0 : rows * K_), q8(a8_ ? rows * K_ : 0), s(rows * (K_ / group_)), sum(rows * (K_ / group_)),
        K(K_), G(K_ / group_), group(group_), a8(a8_) {}
  template <typename T>
  void quantize(const T* x, int64_t row, int64_t rows) {  // rows [row, row + rows) from x (row stride K)
    if (a8)
      quantize_i8(x, rows, K, q8.data() + row * K, s.data() + row * G, sum.data() + row * G, group, 1);
    else
      quantize_i16(x, rows, K, q.data() + row * K, s.data() + row * G, group, sum.data() + row * G);
  }
  Int4Acts acts() const { return {a8 ? nullptr : q.data(), s.data(), sum.data(), K, G, a8 ? q8.data() : nullptr}; }
};

struct I4Consts {  // the unpacking constants, built once a block
  __m512i nib = _mm512_set1_epi8(0x0F), top = _mm512_set1_epi8(0x30);
  __m512i half_shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);  // a pair's k + 1 top bits, upper half
};

// The 64-byte line of pair (k, k + 1) at p as two vectors of values: lo, byte j < 32 = (k, row j) and
// byte 32 + j = (k + 1, row j); hi the same for rows 32 + j. 4-bit values, or with Six 6-bit ones, the
// pair's 32 bytes of top bits at h (bits 0-1 of each byte of t go to lo's byte, bits 2-3 to hi's).
template <bool Six>
inline void unpack_pair(const uint8_t* p, const uint8_t* h, const I4Consts& c, __m512i& lo, __m512i& hi) {
  const __m512i v = _mm512_loadu_si512(p);
  lo = _mm512_and_si512(v, c.nib);
  hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), c.nib);
  if constexpr (Six) {
    const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h));
    const __m512i t = _mm512_srlv_epi64(_mm512_broadcast_i64x4(hv), c.half_shift);
    lo = _mm512_ternarylogic_epi32(lo, _mm512_slli_epi16(t, 4), c.top, 0xF8);  // lo | (t << 4 & 0x30)
    hi = _mm512_ternarylogic_epi32(hi, _mm512_slli_epi16(t, 2), c.top, 0xF8);
  }
}

// y[m, n0 + j] for j < 64, m < M: pb is the packed block of rows [n0, n0 + 64) ([K][32] bytes), hb its
// plane of top bits ([K / 2][32] bytes) when Six, sz the matrix's scales and zeros ([G, N, 2]; when Six
// [N / 64, G, 64, 2]), group a multiple of 32 (quantize_i16 works 16 at a time). y has row stride N.
// With A8 the activations are int8 (a.q8) and `vpdpbusd` takes four k of 16 rows a lane, the unsigned
// weight bytes straight from a two-line byte permutation: 64 products an instruction against 32.
template <int M, bool Six, bool A8>
inline void block_i4(const Int4Acts& a, const uint8_t* pb, const uint8_t* hb, const at::BFloat16* sz,
                     at::BFloat16* y, int64_t N, int64_t n0, int64_t group) {
  alignas(64) float acc[M][kI4Rows] = {};
  // A16: byte 4r of an output word pair takes the k byte of row r, byte 4r + 2 the k + 1 byte; odd bytes 0
  alignas(64) static const uint8_t lo_rows[64] = {0, 0, 32, 0, 1, 0, 33, 0, 2, 0, 34, 0, 3, 0, 35, 0, 4, 0, 36, 0,
      5, 0, 37, 0, 6, 0, 38, 0, 7, 0, 39, 0, 8, 0, 40, 0, 9, 0, 41, 0, 10, 0, 42, 0, 11, 0, 43, 0, 12, 0, 44, 0,
      13, 0, 45, 0, 14, 0, 46, 0, 15, 0, 47, 0};
  // A8: bytes 4r..4r + 3 take row r at k, k + 1 (first line), k + 2, k + 3 (second line, indices 64 on)
  alignas(64) static const uint8_t quad_rows[64] = {0, 32, 64, 96, 1, 33, 65, 97, 2, 34, 66, 98, 3, 35, 67, 99,
      4, 36, 68, 100, 5, 37, 69, 101, 6, 38, 70, 102, 7, 39, 71, 103, 8, 40, 72, 104, 9, 41, 73, 105,
      10, 42, 74, 106, 11, 43, 75, 107, 12, 44, 76, 108, 13, 45, 77, 109, 14, 46, 78, 110, 15, 47, 79, 111};
  const __m512i idx0 = _mm512_load_si512(A8 ? quad_rows : lo_rows);
  const __m512i idx1 = _mm512_add_epi8(idx0, _mm512_set1_epi8(16));  // rows 16..31 (A16: odd bytes are masked)
  const __mmask64 even = 0x5555555555555555ULL;
  const I4Consts c;
  const uint8_t* end = pb + a.K * 32;
  const at::BFloat16* szb = Six ? sz + (n0 / kI4Rows) * a.G * kI4Rows * 2 : sz + n0 * 2;
  const int64_t gstride = Six ? kI4Rows * 2 : N * 2;  // from one group's 64 pairs to the next's
  for (int64_t g = 0; g < a.G; ++g)  // fetch every group's 64 (scale, zero) pairs now, not one cache
    for (int j = 0; j < 4; ++j)      // miss per group at its end
      _mm_prefetch(reinterpret_cast<const char*>(szb + g * gstride + 32 * j), _MM_HINT_T0);
  for (int64_t g = 0; g < a.G; ++g) {
    __m512i isum[M][4];
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < 4; ++j) isum[m][j] = _mm512_setzero_si512();
    for (int64_t k = g * group; k < (g + 1) * group; k += A8 ? 4 : 2) {
      const uint8_t* p = pb + k * 32;  // k and k + 1: one cache line (A8: k + 2 and k + 3 the next)
      if (p + kI8Prefetch < end) {
        _mm_prefetch(reinterpret_cast<const char*>(p + kI8Prefetch), _MM_HINT_T1);
        if constexpr (A8) _mm_prefetch(reinterpret_cast<const char*>(p + 64 + kI8Prefetch), _MM_HINT_T1);
        if constexpr (Six) _mm_prefetch(reinterpret_cast<const char*>(hb + k * 16 + kI8Prefetch / 2), _MM_HINT_T1);
      }
      __m512i lo, hi;
      unpack_pair<Six>(p, Six ? hb + k * 16 : nullptr, c, lo, hi);
      if constexpr (A8) {
        __m512i lo2, hi2;
        unpack_pair<Six>(p + 64, Six ? hb + k * 16 + 32 : nullptr, c, lo2, hi2);
        const __m512i w[4] = {_mm512_permutex2var_epi8(lo, idx0, lo2), _mm512_permutex2var_epi8(lo, idx1, lo2),
                              _mm512_permutex2var_epi8(hi, idx0, hi2), _mm512_permutex2var_epi8(hi, idx1, hi2)};
        for (int m = 0; m < M; ++m) {
          const __m512i xv = _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(a.q8 + m * a.K + k));
          for (int j = 0; j < 4; ++j) isum[m][j] = _mm512_dpbusd_epi32(isum[m][j], w[j], xv);
        }
      } else {
        const __m512i w[4] = {_mm512_maskz_permutexvar_epi8(even, idx0, lo), _mm512_maskz_permutexvar_epi8(even, idx1, lo),
                              _mm512_maskz_permutexvar_epi8(even, idx0, hi), _mm512_maskz_permutexvar_epi8(even, idx1, hi)};
        for (int m = 0; m < M; ++m) {
          const __m512i xv = _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(a.q + m * a.K + k));
          for (int j = 0; j < 4; ++j) isum[m][j] = _mm512_dpwssd_epi32(isum[m][j], xv, w[j]);
        }
      }
    }
    for (int j = 0; j < 4; ++j) {  // rows n0 + 16 j ...: 16 (scale, zero) bf16 pairs
      const __m512i raw = _mm512_loadu_si512(szb + g * gstride + 32 * j);
      const __m512 sc = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
      const __m512 ze = _mm512_castsi512_ps(_mm512_and_si512(raw, _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u))));
      const __m512 off = _mm512_fnmadd_ps(_mm512_set1_ps(Six ? 32.0f : 8.0f), sc, ze);
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

template <bool Six, bool A8>
inline void pass_i4(const Int4Acts& am, int64_t c, const uint8_t* pb, const uint8_t* hb, const at::BFloat16* sz,
                    at::BFloat16* ym, int64_t N, int64_t n0, int64_t group) {
  switch (c) {
    case 1: block_i4<1, Six, A8>(am, pb, hb, sz, ym, N, n0, group); break;
    case 2: block_i4<2, Six, A8>(am, pb, hb, sz, ym, N, n0, group); break;
    default: block_i4<3, Six, A8>(am, pb, hb, sz, ym, N, n0, group); break;
  }
}

constexpr int64_t kI4Group = 3;  // rows of x per pass over a packed block

// The packed block of rows [n0, n0 + 64) against `cnt` rows of a (from row m0), in passes of at most
// kI4Group rows of x, split evenly (4 -> 2 + 2, 8 -> 3 + 3 + 2). Four rows of x in one pass ran 3-4x
// slower than two passes of two (a [2048, 3072] matrix in L3: 0.32 ms at 4 rows against 0.08 at 2 and
// 0.10 at 3): their 16 integer sums beside the unpacked weights likely outgrow the 32 vector registers.
// Each row's result is the same whatever the pass, so it is bit for bit the same as before. `top` is the
// plane of 6-bit weights' top bits ([N / 64][K / 2][32] bytes), nullptr for int4.
inline void rows_i4(const Int4Acts& a, int64_t m0, int64_t cnt, const uint8_t* packed, const at::BFloat16* sz,
                    at::BFloat16* y, int64_t N, int64_t n0, int64_t group, const uint8_t* top = nullptr) {
  const uint8_t* pb = packed + (n0 / kI4Rows) * a.K * 32;
  const uint8_t* hb = top == nullptr ? nullptr : top + (n0 / kI4Rows) * a.K * 16;
  const int64_t passes = (cnt + kI4Group - 1) / kI4Group;
  for (int64_t m = m0, p = 0; m < m0 + cnt; ++p) {
    const int64_t c = (m0 + cnt - m + passes - p - 1) / (passes - p);
    const Int4Acts am{a.q == nullptr ? nullptr : a.q + m * a.K, a.s + m * a.G, a.sum + m * a.G, a.K, a.G,
                      a.q8 == nullptr ? nullptr : a.q8 + m * a.K};
    at::BFloat16* ym = y + m * N;
    if (a.q8 != nullptr) {
      if (hb != nullptr) pass_i4<true, true>(am, c, pb, hb, sz, ym, N, n0, group);
      else pass_i4<false, true>(am, c, pb, hb, sz, ym, N, n0, group);
    } else {
      if (hb != nullptr) pass_i4<true, false>(am, c, pb, hb, sz, ym, N, n0, group);
      else pass_i4<false, false>(am, c, pb, hb, sz, ym, N, n0, group);
    }
    m += c;
  }
}

}  // namespace minimax2
