// Decode attention straight from the paged bf16 cache: one query per sequence, keys and values read
// in place through the slot table (no gathered copy), all query heads of a KV head together so each
// cached row is read once. Rounds where the torch code (attention._decode_attention) rounds: the
// score q.k to bf16, times `scale` to bf16, softmax in float32, probabilities to bf16, then a
// float32 sum of p * v rounded to bf16.
//
// Vectorised throughout: q.k with vdpbf16ps, the softmax 16 scores at a time with exp_ps (vec_math.h), and p * v
// accumulated in registers (the scalar exp and the accumulator kept in memory made the previous
// version 12 ns per (query head, key); measured in benchmarks/bench_kernels.py).
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"
#include "simd_bf16.h"
#include "vec_math.h"

namespace minimax2 {
namespace {

// Cached rows are scattered over the pool (one per slot), and in a real step the expert weights have
// evicted them: fetch the key and value rows this many keys ahead (the loop is latency-bound otherwise).
constexpr int64_t kAhead = 8;

inline void prefetch_row(const at::BFloat16* row, int64_t D) {
  for (int64_t i = 0; i < D; i += 32) _mm_prefetch(reinterpret_cast<const char*>(row + i), _MM_HINT_T0);
}

// s[g * ld + t] = bf16(bf16(q_g . k_t) * scale) for the G query heads `q` [G, D] of one KV head.
void scores(const at::BFloat16* q, const at::BFloat16* const* krows, const at::BFloat16* const* vrows, int64_t L,
            int64_t D, int64_t G, float scale, float* s, int64_t ld) {
  for (int64_t t = 0; t < L; ++t) {
    if (t + kAhead < L) {
      prefetch_row(krows[t + kAhead], D);
      prefetch_row(vrows[t + kAhead], D);  // read by weighted_values right after
    }
    const at::BFloat16* k = krows[t];
    for (int64_t g = 0; g < G; ++g) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t i = 0; i < D; i += 32)
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(q + g * D + i), (__m512bh)_mm512_loadu_si512(k + i));
      s[g * ld + t] = _mm512_reduce_add_ps(acc);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t t = 0; t < L; t += 16) {
      const __mmask16 m = lanes_left(L - t);
      const __m512 v = _mm512_maskz_loadu_ps(m, s + g * ld + t);
      _mm512_mask_storeu_ps(s + g * ld + t, m, round_to_bf16(_mm512_mul_ps(round_to_bf16(v), sc)));
    }
}

// In place: p = bf16(softmax(s)) over the L scores of one head, in float32.
void softmax(float* p, int64_t L) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t t = 0; t < L; t += 16)
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes_left(L - t), p + t));
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t t = 0; t < L; t += 16) {
    const __mmask16 m = lanes_left(L - t);
    const __m512 e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + t), top)));
    _mm512_mask_storeu_ps(p + t, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 total = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
  for (int64_t t = 0; t < L; t += 16) {
    const __mmask16 m = lanes_left(L - t);
    _mm512_mask_storeu_ps(p + t, m, round_to_bf16(_mm512_div_ps(_mm512_maskz_loadu_ps(m, p + t), total)));
  }
}

// out[g, d0:d0+32] = bf16(sum_t p[g, t] * v_t[d0:d0+32]) for GC heads, accumulators in registers.
template <int GC>
void weighted_values(const float* p, int64_t ld, const at::BFloat16* const* vrows, int64_t L, int64_t D,
                     at::BFloat16* out) {
  for (int64_t d0 = 0; d0 < D; d0 += 32) {
    __m512 acc[GC][2];
    for (int g = 0; g < GC; ++g) acc[g][0] = acc[g][1] = _mm512_setzero_ps();
    for (int64_t t = 0; t < L; ++t) {
      const __m512 lo = load16_as_float(vrows[t] + d0), hi = load16_as_float(vrows[t] + d0 + 16);
      for (int g = 0; g < GC; ++g) {
        const __m512 pb = _mm512_set1_ps(p[g * ld + t]);
        acc[g][0] = _mm512_fmadd_ps(pb, lo, acc[g][0]);
        acc[g][1] = _mm512_fmadd_ps(pb, hi, acc[g][1]);
      }
    }
    for (int g = 0; g < GC; ++g) {
      store16(out + g * D + d0, acc[g][0]);
      store16(out + g * D + d0 + 16, acc[g][1]);
    }
  }
}

}  // namespace

at::Tensor decode_attention_bf16(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                    const at::Tensor& slots, const at::Tensor& lens, double scale) {
  TORCH_CHECK(q.dim() == 3 && k_cache.dim() == 3 && v_cache.sizes() == k_cache.sizes() && slots.dim() == 2,
              "decode_attention_bf16: q [B, Hq, D], caches [S, KV, D], slots [B, N]");
  TORCH_CHECK(q.scalar_type() == at::kBFloat16 && k_cache.scalar_type() == at::kBFloat16 &&
              v_cache.scalar_type() == at::kBFloat16, "decode_attention_bf16: bf16 only");
  TORCH_CHECK(q.is_contiguous() && k_cache.is_contiguous() && v_cache.is_contiguous(),
              "decode_attention_bf16: contiguous only");
  const int64_t B = q.size(0), Hq = q.size(1), D = q.size(2), S = k_cache.size(0), KV = k_cache.size(1);
  TORCH_CHECK(k_cache.size(2) == D && D % 32 == 0 && Hq % KV == 0 && slots.size(0) == B && lens.numel() == B,
              "decode_attention_bf16: D % 32 == 0, Hq a multiple of KV, one slot row and length per sequence");
  const int64_t G = Hq / KV, N = slots.size(1);
  const auto sl = slots.to(at::kLong).contiguous();
  const auto ln = lens.to(at::kLong).contiguous();
  const int64_t* sp = sl.data_ptr<int64_t>();
  const int64_t* lp = ln.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(lp[b] >= 1 && lp[b] <= N, "decode_attention_bf16: lengths must be in [1, slots per row]");
    for (int64_t t = 0; t < lp[b]; ++t) TORCH_CHECK(sp[b * N + t] >= 0 && sp[b * N + t] < S, "decode_attention_bf16: slot");
  }
  auto out = at::empty_like(q);
  const auto* qp = q.data_ptr<at::BFloat16>();
  const auto* kp = k_cache.data_ptr<at::BFloat16>();
  const auto* vp = v_cache.data_ptr<at::BFloat16>();
  auto* op = out.data_ptr<at::BFloat16>();
  const int64_t ld = (N + 15) / 16 * 16;
  at::parallel_for(0, B * KV, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> p(G * ld);
    std::vector<const at::BFloat16*> krows(N), vrows(N);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / KV, h = i % KV, L = lp[b];
      for (int64_t t = 0; t < L; ++t) {
        krows[t] = kp + (sp[b * N + t] * KV + h) * D;
        vrows[t] = vp + (sp[b * N + t] * KV + h) * D;
      }
      scores(qp + (b * Hq + h * G) * D, krows.data(), vrows.data(), L, D, G, static_cast<float>(scale), p.data(), ld);
      for (int64_t g = 0; g < G; ++g) softmax(p.data() + g * ld, L);
      at::BFloat16* o = op + (b * Hq + h * G) * D;
      for (int64_t g = 0; g < G; g += 4) {
        const float* pg = p.data() + g * ld;
        switch (std::min<int64_t>(4, G - g)) {
          case 1: weighted_values<1>(pg, ld, vrows.data(), L, D, o + g * D); break;
          case 2: weighted_values<2>(pg, ld, vrows.data(), L, D, o + g * D); break;
          case 3: weighted_values<3>(pg, ld, vrows.data(), L, D, o + g * D); break;
          default: weighted_values<4>(pg, ld, vrows.data(), L, D, o + g * D); break;
        }
      }
    }
  });
  return out;
}

}  // namespace minimax2
