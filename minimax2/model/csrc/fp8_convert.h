// The exact e4m3 -> bf16 conversion of the FP8 kernels (gemv_fp8.cpp's header comment says how it
// works), shared by the row products (gemv_fp8.cpp) and the whole-matrix conversions (fp8_dequant.cpp).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace minimax2 {

constexpr int64_t kFp8Block = 128;  // weight_scale_inv block, both dimensions

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
inline const Tables kTables;

struct Lut {
  __m512i lo0, lo1, hi0, hi1, sign;
  Lut()
      : lo0(_mm512_load_si512(kTables.lo)), lo1(_mm512_load_si512(kTables.lo + 64)),
        hi0(_mm512_load_si512(kTables.hi)), hi1(_mm512_load_si512(kTables.hi + 64)), sign(_mm512_set1_epi8(char(0x80))) {}
};

// 64 e4m3 bytes -> 64 bf16 values in two vectors, in the chunk order gemv_fp8.cpp's header describes.
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

}  // namespace minimax2
