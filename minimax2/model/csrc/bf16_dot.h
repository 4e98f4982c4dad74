// Products of bf16 weights with a few bf16 activation rows, shared by the bf16 matrix-vector kernel
// (gemv_bf16.cpp) and the bf16 expert block (experts_bf16.cpp).
//
// Each weight row is read start to end with `vdpbf16ps` (bf16 pairs multiplied exactly, accumulated in
// float32, four chains per row of x) and each sum rounded to bf16 once, as PyTorch's kernels round.
#pragma once

#include <ATen/core/Tensor.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace minimax2 {

constexpr int64_t kBf16Rows = 4;  // weight rows per task unit
// Software prefetch this many bytes ahead along the weights (rows are contiguous), into L2
// (`prefetcht1`), leaving L1 to the hardware prefetcher. Streaming ~1 GB of mapped bf16 weights at one
// row of x, as a share of torch's max over the same bytes in the same process (medians of 6 processes
// each, two runs): into L1 8 KiB ahead 0.90 / 0.91, into L2 4 KiB ahead 0.97 / 0.97. (The int8 products
// gained from the same change at 1-8 rows and take it too; the fp8 and int4 ones did not.)
constexpr int64_t kBf16Prefetch = 4096;

// Rows [n, n + rows) of y for the M rows of x starting at x (row stride K) against w [N, K]; y's row
// stride is ldy (N for a plain product; 2I where gate and up rows land side by side).
// Each weight row is read start to end (one sequential stream: 57 GB/s on two cores where four
// interleaved rows read 41, measured), with four float32 chains per row of x.
template <int M>
inline void block_bf16(const at::BFloat16* x, const at::BFloat16* w, at::BFloat16* y, int64_t K, int64_t N,
                       int64_t ldy, int64_t n, int64_t rows) {
  const char* end = reinterpret_cast<const char*>(w + N * K);
  for (int64_t r = 0; r < rows; ++r) {
    const at::BFloat16* row = w + (n + r) * K;
    __m512 acc[M][4];
    for (int m = 0; m < M; ++m)
      for (int u = 0; u < 4; ++u) acc[m][u] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 128 <= K; k += 128) {  // four cache lines of the row
      const char* ahead = reinterpret_cast<const char*>(row + k) + kBf16Prefetch;
      if (ahead + 192 < end)
        for (int u = 0; u < 4; ++u) _mm_prefetch(ahead + 64 * u, _MM_HINT_T1);
      __m512bh wv[4];
      for (int u = 0; u < 4; ++u) wv[u] = (__m512bh)_mm512_loadu_si512(row + k + 32 * u);
      for (int m = 0; m < M; ++m)
        for (int u = 0; u < 4; ++u)
          acc[m][u] = _mm512_dpbf16_ps(acc[m][u], wv[u], (__m512bh)_mm512_loadu_si512(x + m * K + k + 32 * u));
    }
    for (; k < K; k += 32) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(row + k);
      for (int m = 0; m < M; ++m)
        acc[m][0] = _mm512_dpbf16_ps(acc[m][0], wv, (__m512bh)_mm512_loadu_si512(x + m * K + k));
    }
    for (int m = 0; m < M; ++m)
      y[m * ldy + n + r] = at::BFloat16(_mm512_reduce_add_ps(
          _mm512_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]), _mm512_add_ps(acc[m][2], acc[m][3]))));
  }
}

// Weight rows [n, n + rows) against `cnt` rows of x (row stride K; y row stride ldy), four rows of x at a
// time: a block of weight rows (8 KiB at K = 1024 and four rows) is read from memory once and from L1
// for the later rows of x.
inline void rows_bf16(const at::BFloat16* x, int64_t cnt, const at::BFloat16* w, at::BFloat16* y, int64_t K,
                      int64_t N, int64_t ldy, int64_t n, int64_t rows) {
  for (int64_t m = 0; m < cnt; m += 4) {
    const at::BFloat16* xm = x + m * K;
    at::BFloat16* ym = y + m * ldy;
    switch (std::min<int64_t>(4, cnt - m)) {
      case 1: block_bf16<1>(xm, w, ym, K, N, ldy, n, rows); break;
      case 2: block_bf16<2>(xm, w, ym, K, N, ldy, n, rows); break;
      case 3: block_bf16<3>(xm, w, ym, K, N, ldy, n, rows); break;
      default: block_bf16<4>(xm, w, ym, K, N, ldy, n, rows); break;
    }
  }
}

}  // namespace minimax2
