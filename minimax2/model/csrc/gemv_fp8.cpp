// FP8 (float8_e4m3fn) weights with 128x128 float32 block scales, read in place for decode: the
// official MiniMax-M2 checkpoint layout, W[i, j] = float(W_fp8[i, j]) * scale_inv[i / 128, j / 128].
//
// y[m, n] = sum_k x[m, k] * W[n, k] for a few bf16 rows of x (M <= 64: decode, short prefill chunks).
// Each weight byte becomes its exact bf16 value through two 128-entry byte tables (AVX512-VBMI
// `vpermi2b`: the low and the high byte of every bf16 magnitude, the sign bit OR-ed back in) and two
// in-lane byte interleaves, six instructions per 64 weights. The interleave leaves the 64 bf16 values
// of a chunk in the order [0-7, 16-23, 32-39, 48-55 | 8-15, 24-31, 40-47, 56-63], so the rows of x are
// permuted once per call into that order (zero-padded to a multiple of 64) and the pairs meet without
// any shuffle in the weight loop. Products are exact bf16 pairs accumulated in float32 (`vdpbf16ps`)
// per 128-column block, each block sum times its block scale (float32 FMA) into the row's sum, rounded
// to bf16 once: the dequantized weight is never rounded, so the result is as close to the exact product
// as the bf16 kernel's is to its own. Rows of W are split across PyTorch's intra-op threads. Per weight
// that is the bf16 kernel's arithmetic plus the conversion, at half the bytes: about 2x its weights per
// second where the bus limits (few rows), about even at 16 rows (arithmetic limits both).
//
// With five or more rows of x, two weight rows go in lockstep (pair_span), so each row of x loaded from
// L1 serves both (on an [8192, 3072] matrix here: 1.1x the speed at 8 rows, 1.5x at 16; bit for bit the
// same results). The pairs read whole weight rows, two streams, with the rows of x from L2, rather than
// spans of columns that keep x in L1 but switch between four weight rows every 1 KiB; and a group of
// weight rows meets every pass of x before the next group, so 9-64 rows of x read the weights from memory
// once. On a [200064, 3072] matrix from memory (Zen 5, 2 threads): 8 rows 24-26 ms instead of 30-33,
// 16 rows 44-45 instead of 58-66. The conversion lives in fp8_convert.h. Shared with experts_fp8.cpp
// through `fp8_xstride`, `fp8_permute_rows` and `fp8_rows` (declared in fp8_rows.h).
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "fp8_convert.h"
#include "fp8_rows.h"
#include "kernels.h"
#include "parallel.h"

namespace minimax2 {

namespace {

constexpr int64_t kRows = 4;         // weight rows per task unit
constexpr int64_t kPrefetch = 8192;  // software prefetch distance along the weights, bytes
constexpr int kGroup = 16;           // rows of x per pass over the weights (1.3x the speed of two passes of 8)
constexpr int kPairGroup = 8;        // rows of x per pass when weight rows go in pairs (5 or more rows of x)
// Bytes of x per span of columns for up to four rows of x: the rows of x for a span stay in L1 while
// kRows weight rows pass over it (x is read once per weight row). Pairs take whole rows (header).
constexpr int64_t kSpanBytes = 16384;

// Column blocks [b0, b1) of one weight row (K bytes, its block scales srow) against M permuted rows
// of x (stride Kp), added into acc[m] (float32 lanes, reduced by the caller).
template <int M>
void row_span(const at::BFloat16* x, int64_t Kp, const uint8_t* row, const float* srow, int64_t K, int64_t b0,
              int64_t b1, const uint8_t* end, const Lut& t, __m512* acc) {
  __m512 a[M];
  for (int m = 0; m < M; ++m) a[m] = acc[m];
  const int64_t full = std::min(b1, K / kFp8Block);
  for (int64_t b = b0; b < full; ++b) {
    const int64_t k = b * kFp8Block;
    const uint8_t* ahead = row + k + kPrefetch;
    if (ahead + 64 < end) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(ahead + 64), _MM_HINT_T0);
    }
    __m512bh w[4];
    to_bf16(_mm512_loadu_si512(row + k), t, w[0], w[1]);
    to_bf16(_mm512_loadu_si512(row + k + 64), t, w[2], w[3]);
    const __m512 s = _mm512_set1_ps(srow[b]);
    for (int m = 0; m < M; ++m) {
      const at::BFloat16* xm = x + m * Kp + k;
      __m512 ps = _mm512_dpbf16_ps(_mm512_setzero_ps(), w[0], (__m512bh)_mm512_loadu_si512(xm));
      ps = _mm512_dpbf16_ps(ps, w[1], (__m512bh)_mm512_loadu_si512(xm + 32));
      ps = _mm512_dpbf16_ps(ps, w[2], (__m512bh)_mm512_loadu_si512(xm + 64));
      ps = _mm512_dpbf16_ps(ps, w[3], (__m512bh)_mm512_loadu_si512(xm + 96));
      a[m] = _mm512_fmadd_ps(ps, s, a[m]);
    }
  }
  if (b1 > full) {  // the partial edge block (K % 128 columns): masked loads read zeros beyond K
    const int64_t k = full * kFp8Block, rem = K - k;
    __m512bh w[4];
    to_bf16(_mm512_maskz_loadu_epi8(bytes_left(rem), row + k), t, w[0], w[1]);
    if (rem > 64) to_bf16(_mm512_maskz_loadu_epi8(bytes_left(rem - 64), row + k + 64), t, w[2], w[3]);
    const __m512 s = _mm512_set1_ps(srow[full]);
    for (int m = 0; m < M; ++m) {
      const at::BFloat16* xm = x + m * Kp + k;
      __m512 ps = _mm512_dpbf16_ps(_mm512_setzero_ps(), w[0], (__m512bh)_mm512_loadu_si512(xm));
      ps = _mm512_dpbf16_ps(ps, w[1], (__m512bh)_mm512_loadu_si512(xm + 32));
      if (rem > 64) {
        ps = _mm512_dpbf16_ps(ps, w[2], (__m512bh)_mm512_loadu_si512(xm + 64));
        ps = _mm512_dpbf16_ps(ps, w[3], (__m512bh)_mm512_loadu_si512(xm + 96));
      }
      a[m] = _mm512_fmadd_ps(ps, s, a[m]);
    }
  }
  for (int m = 0; m < M; ++m) acc[m] = a[m];
}

// Full column blocks [b0, b1) of two weight rows (row0, row1, block scales srow0, srow1) in lockstep
// against M permuted rows of x: each row of x loaded from L1 serves both weight rows (with one row, the
// loads of x bound the loop at 5 or more rows of x). Per (row, x row) the products and sums run in the
// same order as row_span's, so the result is bit for bit the same.
template <int M>
void pair_span(const at::BFloat16* x, int64_t Kp, const uint8_t* row0, const uint8_t* row1, const float* srow0,
               const float* srow1, int64_t b0, int64_t b1, const uint8_t* end, const Lut& t, __m512* acc0,
               __m512* acc1) {
  __m512 a0[M], a1[M];
  for (int m = 0; m < M; ++m) a0[m] = acc0[m], a1[m] = acc1[m];
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t k = b * kFp8Block;
    if (row1 + k + kPrefetch + 64 < end) {
      _mm_prefetch(reinterpret_cast<const char*>(row0 + k + kPrefetch), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(row0 + k + kPrefetch + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(row1 + k + kPrefetch), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(row1 + k + kPrefetch + 64), _MM_HINT_T0);
    }
    __m512bh u[4], v[4];
    to_bf16(_mm512_loadu_si512(row0 + k), t, u[0], u[1]);
    to_bf16(_mm512_loadu_si512(row0 + k + 64), t, u[2], u[3]);
    to_bf16(_mm512_loadu_si512(row1 + k), t, v[0], v[1]);
    to_bf16(_mm512_loadu_si512(row1 + k + 64), t, v[2], v[3]);
    const __m512 s0 = _mm512_set1_ps(srow0[b]), s1 = _mm512_set1_ps(srow1[b]);
    for (int m = 0; m < M; ++m) {
      const at::BFloat16* xm = x + m * Kp + k;
      __m512bh xv = (__m512bh)_mm512_loadu_si512(xm);
      __m512 p0 = _mm512_dpbf16_ps(_mm512_setzero_ps(), u[0], xv), p1 = _mm512_dpbf16_ps(_mm512_setzero_ps(), v[0], xv);
      xv = (__m512bh)_mm512_loadu_si512(xm + 32);
      p0 = _mm512_dpbf16_ps(p0, u[1], xv), p1 = _mm512_dpbf16_ps(p1, v[1], xv);
      xv = (__m512bh)_mm512_loadu_si512(xm + 64);
      p0 = _mm512_dpbf16_ps(p0, u[2], xv), p1 = _mm512_dpbf16_ps(p1, v[2], xv);
      xv = (__m512bh)_mm512_loadu_si512(xm + 96);
      p0 = _mm512_dpbf16_ps(p0, u[3], xv), p1 = _mm512_dpbf16_ps(p1, v[3], xv);
      a0[m] = _mm512_fmadd_ps(p0, s0, a0[m]);
      a1[m] = _mm512_fmadd_ps(p1, s1, a1[m]);
    }
  }
  for (int m = 0; m < M; ++m) acc0[m] = a0[m], acc1[m] = a1[m];
}

using RowSpan = void (*)(const at::BFloat16*, int64_t, const uint8_t*, const float*, int64_t, int64_t, int64_t,
                         const uint8_t*, const Lut&, __m512*);
template <size_t... I>
constexpr std::array<RowSpan, sizeof...(I)> row_spans(std::index_sequence<I...>) {
  return {&row_span<static_cast<int>(I) + 1>...};
}
constexpr auto kRowSpan = row_spans(std::make_index_sequence<kGroup>());

using PairSpan = void (*)(const at::BFloat16*, int64_t, const uint8_t*, const uint8_t*, const float*, const float*,
                          int64_t, int64_t, const uint8_t*, const Lut&, __m512*, __m512*);
template <size_t... I>
constexpr std::array<PairSpan, sizeof...(I)> pair_spans(std::index_sequence<I...>) {
  return {&pair_span<static_cast<int>(I) + 1>...};
}
constexpr auto kPairSpan = pair_spans(std::make_index_sequence<kPairGroup>());

}  // namespace

// Row stride of the permuted rows of x: K rounded up to 64 values, plus 64 bytes so that rows at a
// power-of-two distance (K = 3072: 6 KiB) do not all fall into the same L1 sets.
int64_t fp8_xstride(int64_t K) { return (K + 63) / 64 * 64 + 32; }

// rows of src (bf16, row stride sstride, K values) -> dst (row stride fp8_xstride(K)) in the chunk
// order of the weight conversion, zero-padded to a multiple of 64 values.
void fp8_permute_rows(const at::BFloat16* src, int64_t rows, int64_t K, int64_t sstride, at::BFloat16* dst) {
  alignas(64) int16_t i0[32], i1[32];
  for (int j = 0; j < 32; ++j) {
    i0[j] = static_cast<int16_t>(16 * (j / 8) + j % 8);
    i1[j] = static_cast<int16_t>(16 * (j / 8) + 8 + j % 8);
  }
  const __m512i idx0 = _mm512_load_si512(i0), idx1 = _mm512_load_si512(i1);
  const int64_t Kp = (K + 63) / 64 * 64, ds = fp8_xstride(K);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < Kp; k += 64) {
      const at::BFloat16* s = src + r * sstride + k;
      const __m512i a = _mm512_maskz_loadu_epi16(words_left(K - k), s);
      const __m512i b = _mm512_maskz_loadu_epi16(words_left(K - k - 32), s + 32);
      _mm512_storeu_si512(dst + r * ds + k, _mm512_permutex2var_epi16(a, idx0, b));
      _mm512_storeu_si512(dst + r * ds + k + 32, _mm512_permutex2var_epi16(a, idx1, b));
    }
}

// y[m * ystride + r] for weight rows r in [n, n + rows) of w [N, K] (scales [ceil(N/128), ceil(K/128)])
// and cnt permuted rows of x (stride fp8_xstride(K)), rounded to bf16. kRows weight rows at a time
// against up to 4 rows of x, each weight row read start to end for one row of x (one sequential
// stream) and in spans of columns whose rows of x fit L1 for more. With 5 or more rows of x, weight
// rows go in pairs, whole rows, against up to 8 rows of x per pass (passes split the rows evenly); each
// kRows group of weight rows takes every pass before the next group.
void fp8_rows(const at::BFloat16* x, int64_t cnt, const uint8_t* w, const float* scale, int64_t N, int64_t K,
              int64_t n, int64_t rows, at::BFloat16* y, int64_t ystride) {
  const Lut t;
  const int64_t Kp = fp8_xstride(K), nkb = (K + kFp8Block - 1) / kFp8Block;
  const uint8_t* end = w + N * K;
  __m512 acc[kRows][kGroup];
  const bool pairs = cnt >= 5;
  const int64_t passes = pairs ? (cnt + kPairGroup - 1) / kPairGroup : (cnt + kGroup - 1) / kGroup;
  for (int64_t r0 = n; r0 < n + rows; r0 += kRows) {
    const int64_t rr = std::min(kRows, n + rows - r0);
    for (int64_t m0 = 0, pass = 0; m0 < cnt; ++pass) {  // later passes find these weight rows in L1
      const int64_t c = (cnt - m0 + passes - pass - 1) / (passes - pass);  // rows of x split evenly over passes
      const int64_t span = pairs ? nkb : std::max<int64_t>(1, kSpanBytes / (c * 2 * kFp8Block));
      const RowSpan fn = kRowSpan[c - 1];
      const at::BFloat16* xm = x + m0 * Kp;
      for (int64_t r = 0; r < rr; ++r)
        for (int64_t m = 0; m < c; ++m) acc[r][m] = _mm512_setzero_ps();
      for (int64_t b0 = 0; b0 < nkb; b0 += span) {
        const int64_t b1 = std::min(nkb, b0 + span), full = std::min(b1, K / kFp8Block);
        int64_t r = 0;
        for (; pairs && r + 2 <= rr; r += 2) {
          const uint8_t* w0 = w + (r0 + r) * K;
          const float *s0 = scale + ((r0 + r) / kFp8Block) * nkb, *s1 = scale + ((r0 + r + 1) / kFp8Block) * nkb;
          if (full > b0) kPairSpan[c - 1](xm, Kp, w0, w0 + K, s0, s1, b0, full, end, t, acc[r], acc[r + 1]);
          if (b1 > full) {  // the partial edge block, one row at a time
            fn(xm, Kp, w0, s0, K, std::max(b0, full), b1, end, t, acc[r]);
            fn(xm, Kp, w0 + K, s1, K, std::max(b0, full), b1, end, t, acc[r + 1]);
          }
        }
        for (; r < rr; ++r)
          fn(xm, Kp, w + (r0 + r) * K, scale + ((r0 + r) / kFp8Block) * nkb, K, b0, b1, end, t, acc[r]);
      }
      for (int64_t r = 0; r < rr; ++r)
        for (int64_t m = 0; m < c; ++m) y[(m0 + m) * ystride + r0 + r] = at::BFloat16(_mm512_reduce_add_ps(acc[r][m]));
      m0 += c;
    }
  }
}

at::Tensor gemv_fp8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale_inv) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && scale_inv.dim() == 2 && x.size(1) == w.size(1),
              "gemv_fp8: x [M, K], w [N, K], scale_inv [ceil(N/128), ceil(K/128)]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kFloat8_e4m3fn &&
              scale_inv.scalar_type() == at::kFloat, "gemv_fp8: bf16 x, float8_e4m3fn w, float32 scale_inv");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && scale_inv.is_contiguous(), "gemv_fp8: contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(M >= 1 && M <= 64 && K >= 1, "gemv_fp8: 1 <= M <= 64");
  TORCH_CHECK(scale_inv.size(0) == (N + kFp8Block - 1) / kFp8Block &&
                  scale_inv.size(1) == (K + kFp8Block - 1) / kFp8Block,
              "gemv_fp8: scale_inv must be [ceil(N/128), ceil(K/128)]");
  auto xp = at::empty({M, fp8_xstride(K)}, x.options());
  fp8_permute_rows(x.data_ptr<at::BFloat16>(), M, K, K, xp.data_ptr<at::BFloat16>());
  auto y = at::empty({M, N}, x.options());
  const auto* xpp = xp.data_ptr<at::BFloat16>();
  const auto* wp = reinterpret_cast<const uint8_t*>(w.data_ptr());
  const float* sp = scale_inv.data_ptr<float>();
  auto* yp = y.data_ptr<at::BFloat16>();
  dynamic_for(0, (N + kRows - 1) / kRows, chunk_items(kRows * K), [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * kRows, n1 = std::min(N, b1 * kRows);
    fp8_rows(xpp, M, wp, sp, N, K, n0, n1 - n0, yp, N);
  });
  return y;
}

}  // namespace minimax2
