// 16-lane bf16 <-> float32 moves shared by the kernels (AVX-512 / AVX512-BF16).
#pragma once

#include <ATen/core/Tensor.h>
#include <immintrin.h>

namespace minimax2 {

inline __m512 bf16x16_to_float(__m256i h) {  // exact: a bf16 is the top half of a float32
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 load16_as_float(const at::BFloat16* p) {
  return bf16x16_to_float(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 load16_as_float(const float* p) { return _mm512_loadu_ps(p); }

// Round to bf16 (nearest even, as at::BFloat16 does) and keep the value as float32.
inline __m512 round_to_bf16(__m512 v) { return bf16x16_to_float((__m256i)_mm512_cvtneps_pbh(v)); }

// The first min(left, 16) of 16 lanes: masks the tail of a row whose length is not a multiple of 16.
inline __mmask16 lanes_left(int64_t left) { return left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1); }

inline void store16(at::BFloat16* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v));
}
inline void store16(float* p, __m512 v) { _mm512_storeu_ps(p, round_to_bf16(v)); }  // bf16 values as float

// Masked forms for the tail of a row (m from lanes_left): lanes outside m read as 0 and are not written.
inline __m512 load16_as_float(const at::BFloat16* p, __mmask16 m) {
  return bf16x16_to_float(_mm256_maskz_loadu_epi16(m, p));
}
inline void store16(at::BFloat16* p, __mmask16 m, __m512 v) {
  _mm256_mask_storeu_epi16(p, m, (__m256i)_mm512_cvtneps_pbh(v));
}
inline void store16(float* p, __mmask16 m, __m512 v) { _mm512_mask_storeu_ps(p, m, round_to_bf16(v)); }

}  // namespace minimax2
