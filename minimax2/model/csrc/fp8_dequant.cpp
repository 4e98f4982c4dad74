// Whole FP8 matrices converted in one go: `fp8_dequantize_bf16`, bf16 tiles of W for the prefill GEMM
// (fp8_kernels.py), and `fp8_e4m3_to_bf16`, the conversion alone (for tests). Both undo the chunk order
// that the conversion leaves (fp8_convert.h).
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstdint>

#include "fp8_convert.h"
#include "kernels.h"

namespace minimax2 {

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
  const int64_t N = w.size(0), K = w.size(1), nkb = (K + kFp8Block - 1) / kFp8Block;
  TORCH_CHECK(scale_inv.dim() == 2 && scale_inv.size(0) == (N + kFp8Block - 1) / kFp8Block &&
              scale_inv.size(1) == nkb, "fp8_dequantize_bf16: scale_inv must be [ceil(N/128), ceil(K/128)]");
  TORCH_CHECK(0 <= r0 && r0 <= r1 && r1 <= N && r0 % kFp8Block == 0,
              "fp8_dequantize_bf16: 0 <= r0 <= r1 <= N, r0 % 128 == 0");
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
      const float* srow = sp + (r / kFp8Block) * nkb;
      at::BFloat16* dst = op + (r - r0) * K;
      for (int64_t k = 0; k < K; k += 64) {
        __m512bh va, vb;
        to_bf16(_mm512_maskz_loadu_epi8(bytes_left(K - k), row + k), t, va, vb);
        const __m512i n0 = _mm512_permutex2var_epi16((__m512i)va, u0, (__m512i)vb);
        const __m512i n1 = _mm512_permutex2var_epi16((__m512i)va, u1, (__m512i)vb);
        const __m512 s = _mm512_set1_ps(srow[k / kFp8Block]);
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

}  // namespace minimax2
