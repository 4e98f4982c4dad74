// FP8 (float8_e4m3fn) weights with 128x128 float32 block scales, read in place for decode: the
// official MiniMax-M2 checkpoint layout, W[i, j] = float(W_fp8[i, j]) * scale_inv[i / 128, j / 128].
//
// y[m, n] = sum_k x[m, k] * W[n, k] for a few bf16 rows of x (M <= 16). Each weight byte becomes its
// exact bf16 value through two 128-entry byte tables (AVX512-VBMI `vpermi2b`: the low and the high
// byte of every bf16 magnitude, the sign bit OR-ed back in) and two in-lane byte interleaves, six
// instructions per 64 weights. The interleave leaves the 64 bf16 values of a chunk in the order
// [0-7, 16-23, 32-39, 48-55 | 8-15, 24-31, 40-47, 56-63], so the rows of x are permuted once per call
// into that order (zero-padded to a multiple of 64) and the pairs meet without any shuffle in the
// weight loop. Products are exact bf16 pairs accumulated in float32 (`vdpbf16ps`) per 128-column
// block, each block sum times its block scale (float32 FMA) into the row's sum, rounded to bf16
// once: the dequantized weight is never rounded, so the result is as close to the exact product as
// the bf16 kernel's is to its own. Rows of W are split across PyTorch's intra-op threads.
// Per weight that is the bf16 kernel's arithmetic plus the conversion, at half the bytes: about 2x its
// weights per second where the bus limits (few rows), about even at 16 rows (arithmetic limits both).
//
// Also here: `fp8_dequantize_bf16`, bf16 tiles of W for the prefill GEMM (fp8_kernels.py), and
// `fp8_e4m3_to_bf16`, the conversion alone (for tests). Shared with experts_fp8.cpp through
// `fp8_xstride`, `fp8_permute_rows` and `fp8_rows` (declared in fp8_rows.h).
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "fp8_rows.h"
#include "kernels.h"
#include "parallel.h"

namespace minimax2 {

namespace {

constexpr int64_t kBlock = 128;      // scale block, both dimensions
constexpr int64_t kRows = 4;         // weight rows per task unit
constexpr int64_t kPrefetch = 8192;  // software prefetch distance along the weights, bytes
constexpr int kGroup = 16;           // rows of x per pass over the weights (1.3x the speed of two passes of 8)
// Bytes of x per span of columns: the rows of x for a span stay in L1 while kRows weight rows pass over
// it (x is read once per weight row; 16 whole rows at K = 3072 are 96 KiB, served from L2).
constexpr int64_t kSpanBytes = 16384;

// bf16 bits of the e4m3fn code c with its sign cleared (c < 128). Normal numbers rebias the 4-bit
// exponent (7 -> 127); subnormals m * 2^-9 are normal in bf16; 0x7f is NaN.
constexpr uint16_t magnitude_bits(int c) {
  const int e = c >> 3, m = c & 7;
  if (c == 0x7f) return 0x7fc0;
  if (e > 0) return static_cast<uint16_t>(((e + 120) << 7) | (m << 4));
  if (m == 0) return 0;
  const int p = m >= 4 ? 2 : m >= 2 ? 1 : 0;  // m * 2^-9 = (m / 2^p) * 2^(p - 9)
  return static_cast<uint16_t>(((118 + p) << 7) | ((m - (1 << p)) << (7 - p)));
}

struct Tables {
  alignas(64) uint8_t lo[128];
  alignas(64) uint8_t hi[128];
  Tables() {
    for (int c = 0; c < 128; ++c) {
      lo[c] = static_cast<uint8_t>(magnitude_bits(c) & 0xff);
      hi[c] = static_cast<uint8_t>(magnitude_bits(c) >> 8);
    }
  }
};
const Tables kTables;

struct Lut {
  __m512i lo0, lo1, hi0, hi1, sign;
  Lut()
      : lo0(_mm512_load_si512(kTables.lo)), lo1(_mm512_load_si512(kTables.lo + 64)),
        hi0(_mm512_load_si512(kTables.hi)), hi1(_mm512_load_si512(kTables.hi + 64)), sign(_mm512_set1_epi8(char(0x80))) {}
};

// 64 e4m3 bytes -> 64 bf16 values in two vectors, in the chunk order described above.
inline void to_bf16(__m512i b, const Lut& t, __m512bh& a, __m512bh& c) {
  const __m512i lo = _mm512_permutex2var_epi8(t.lo0, b, t.lo1);  // index bits 0-6: bit 7 (sign) ignored
  const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(t.hi0, b, t.hi1), b, t.sign, 0xF8);  // | sign
  a = (__m512bh)_mm512_unpacklo_epi8(lo, hi);
  c = (__m512bh)_mm512_unpackhi_epi8(lo, hi);
}

inline __mmask64 bytes_left(int64_t left) { return left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1; }
inline __mmask32 words_left(int64_t left) {
  return left >= 32 ? ~__mmask32(0) : left <= 0 ? 0 : (__mmask32(1) << left) - 1;
}

// Column blocks [b0, b1) of one weight row (K bytes, its block scales srow) against M permuted rows
// of x (stride Kp), added into acc[m] (float32 lanes, reduced by the caller).
template <int M>
void row_span(const at::BFloat16* x, int64_t Kp, const uint8_t* row, const float* srow, int64_t K, int64_t b0,
              int64_t b1, const uint8_t* end, const Lut& t, __m512* acc) {
  __m512 a[M];
  for (int m = 0; m < M; ++m) a[m] = acc[m];
  const int64_t full = std::min(b1, K / kBlock);
  for (int64_t b = b0; b < full; ++b) {
    const int64_t k = b * kBlock;
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
    const int64_t k = full * kBlock, rem = K - k;
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

using RowSpan = void (*)(const at::BFloat16*, int64_t, const uint8_t*, const float*, int64_t, int64_t, int64_t,
                         const uint8_t*, const Lut&, __m512*);
template <size_t... I>
constexpr std::array<RowSpan, sizeof...(I)> row_spans(std::index_sequence<I...>) {
  return {&row_span<static_cast<int>(I) + 1>...};
}
constexpr auto kRowSpan = row_spans(std::make_index_sequence<kGroup>());

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
// against up to 16 rows of x, each weight row read start to end for one row of x (one sequential
// stream) and in spans of columns whose rows of x fit L1 for more.
void fp8_rows(const at::BFloat16* x, int64_t cnt, const uint8_t* w, const float* scale, int64_t N, int64_t K,
              int64_t n, int64_t rows, at::BFloat16* y, int64_t ystride) {
  const Lut t;
  const int64_t Kp = fp8_xstride(K), nkb = (K + kBlock - 1) / kBlock;
  const uint8_t* end = w + N * K;
  __m512 acc[kRows][kGroup];
  for (int64_t m0 = 0; m0 < cnt; m0 += kGroup) {
    const int64_t c = std::min<int64_t>(kGroup, cnt - m0);
    const int64_t span = std::max<int64_t>(1, kSpanBytes / (c * 2 * kBlock));
    const RowSpan fn = kRowSpan[c - 1];
    const at::BFloat16* xm = x + m0 * Kp;
    for (int64_t r0 = n; r0 < n + rows; r0 += kRows) {
      const int64_t rr = std::min(kRows, n + rows - r0);
      for (int64_t r = 0; r < rr; ++r)
        for (int64_t m = 0; m < c; ++m) acc[r][m] = _mm512_setzero_ps();
      for (int64_t b0 = 0; b0 < nkb; b0 += span)
        for (int64_t r = 0; r < rr; ++r)
          fn(xm, Kp, w + (r0 + r) * K, scale + ((r0 + r) / kBlock) * nkb, K, b0, std::min(nkb, b0 + span), end, t,
             acc[r]);
      for (int64_t r = 0; r < rr; ++r)
        for (int64_t m = 0; m < c; ++m) y[(m0 + m) * ystride + r0 + r] = at::BFloat16(_mm512_reduce_add_ps(acc[r][m]));
    }
  }
}

at::Tensor fp8_e4m3_to_bf16(const at::Tensor& codes) {
  TORCH_CHECK(codes.scalar_type() == at::kFloat8_e4m3fn || codes.scalar_type() == at::kByte,
              "fp8_e4m3_to_bf16: float8_e4m3fn or uint8 codes");
  const auto c = codes.contiguous();
  auto out = at::empty(c.sizes(), c.options().dtype(at::kBFloat16));
  const auto* src = reinterpret_cast<const uint8_t*>(c.data_ptr());
  auto* dst = reinterpret_cast<uint16_t*>(out.data_ptr());
  const Lut t;
  alignas(64) uint16_t a[32], b[32];
  for (int64_t k = 0; k < c.numel(); k += 64) {
    __m512bh va, vb;
    to_bf16(_mm512_maskz_loadu_epi8(bytes_left(c.numel() - k), src + k), t, va, vb);
    _mm512_store_si512(a, (__m512i)va);
    _mm512_store_si512(b, (__m512i)vb);
    for (int j = 0; j < 32; ++j) {  // undo the chunk order
      const int64_t p = k + 16 * (j / 8) + j % 8;
      if (p < c.numel()) dst[p] = a[j];
      if (p + 8 < c.numel()) dst[p + 8] = b[j];
    }
  }
  return out;
}

// Rows [r0, r1) of W dequantized to bf16 (prefill tiles): float(code) * block scale in float32, rounded
// to nearest even once, exactly as fp8.dequantize(..., dtype=bfloat16) rounds. r0 % 128 == 0.
at::Tensor fp8_dequantize_bf16(const at::Tensor& w, const at::Tensor& scale_inv, int64_t r0, int64_t r1) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat8_e4m3fn && w.is_contiguous() &&
              scale_inv.scalar_type() == at::kFloat && scale_inv.is_contiguous(),
              "fp8_dequantize_bf16: contiguous float8_e4m3fn w [N, K] and float32 scale_inv");
  const int64_t N = w.size(0), K = w.size(1), nkb = (K + kBlock - 1) / kBlock;
  TORCH_CHECK(scale_inv.dim() == 2 && scale_inv.size(0) == (N + kBlock - 1) / kBlock && scale_inv.size(1) == nkb,
              "fp8_dequantize_bf16: scale_inv must be [ceil(N/128), ceil(K/128)]");
  TORCH_CHECK(0 <= r0 && r0 <= r1 && r1 <= N && r0 % kBlock == 0, "fp8_dequantize_bf16: 0 <= r0 <= r1 <= N, r0 % 128 == 0");
  auto out = at::empty({r1 - r0, K}, at::dtype(at::kBFloat16));
  alignas(64) int16_t i0[32], i1[32];  // natural position -> chunk order (the inverse of fp8_permute_rows)
  for (int p = 0; p < 64; ++p) {
    const int lane = p / 16, within = p % 16;
    const int j = within < 8 ? 8 * lane + within : 32 + 8 * lane + within - 8;
    (p < 32 ? i0[p] : i1[p - 32]) = static_cast<int16_t>(j);
  }
  const __m512i u0 = _mm512_load_si512(i0), u1 = _mm512_load_si512(i1);
  const auto* wp = reinterpret_cast<const uint8_t*>(w.data_ptr());
  const float* sp = scale_inv.data_ptr<float>();
  auto* op = out.data_ptr<at::BFloat16>();
  auto widen = [](__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); };
  at::parallel_for(r0, r1, 16, [&](int64_t a, int64_t b) {
    const Lut t;
    for (int64_t r = a; r < b; ++r) {
      const uint8_t* row = wp + r * K;
      const float* srow = sp + (r / kBlock) * nkb;
      at::BFloat16* dst = op + (r - r0) * K;
      for (int64_t k = 0; k < K; k += 64) {
        __m512bh va, vb;
        to_bf16(_mm512_maskz_loadu_epi8(bytes_left(K - k), row + k), t, va, vb);
        const __m512i n0 = _mm512_permutex2var_epi16((__m512i)va, u0, (__m512i)vb);
        const __m512i n1 = _mm512_permutex2var_epi16((__m512i)va, u1, (__m512i)vb);
        const __m512 s = _mm512_set1_ps(srow[k / kBlock]);
        const __m512i lo = (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(widen(_mm512_extracti64x4_epi64(n0, 1)), s),
                                                        _mm512_mul_ps(widen(_mm512_castsi512_si256(n0)), s));
        const __m512i hi = (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(widen(_mm512_extracti64x4_epi64(n1, 1)), s),
                                                        _mm512_mul_ps(widen(_mm512_castsi512_si256(n1)), s));
        _mm512_mask_storeu_epi16(dst + k, words_left(K - k), lo);
        _mm512_mask_storeu_epi16(dst + k + 32, words_left(K - k - 32), hi);
      }
    }
  });
  return out;
}

at::Tensor gemv_fp8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale_inv) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && scale_inv.dim() == 2 && x.size(1) == w.size(1),
              "gemv_fp8: x [M, K], w [N, K], scale_inv [ceil(N/128), ceil(K/128)]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kFloat8_e4m3fn &&
              scale_inv.scalar_type() == at::kFloat, "gemv_fp8: bf16 x, float8_e4m3fn w, float32 scale_inv");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && scale_inv.is_contiguous(), "gemv_fp8: contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(M >= 1 && M <= 16 && K >= 1, "gemv_fp8: 1 <= M <= 16");
  TORCH_CHECK(scale_inv.size(0) == (N + kBlock - 1) / kBlock && scale_inv.size(1) == (K + kBlock - 1) / kBlock,
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
