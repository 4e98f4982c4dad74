// Decode-sized MoE expert block on int8 weights (weight-only, one scale per output channel), the
// int8 twin of moe_experts_bf16: a few tokens through their top-k SwiGLU experts in one call, each
// chosen expert's weights read once per step. Products follow aten._weight_int8pack_mm: bf16
// activations and int8 weights multiplied in float32, the sum times the channel's scale rounded to
// bf16 once; silu and the gate * up product round to bf16 as the torch ops do.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "moe_groups.h"

namespace minimax2 {
namespace {

constexpr int64_t kRows = 4;  // weight rows per block

template <int M>
inline void block_i8(const float* x, const int8_t* w, const at::BFloat16* s, at::BFloat16* y, int64_t K, int64_t N,
                     int64_t n) {
  __m512 acc[M][kRows];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < kRows; ++r) acc[m][r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    __m512 wv[kRows];
    for (int r = 0; r < kRows; ++r)
      wv[r] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + (n + r) * K + k))));
    for (int m = 0; m < M; ++m) {
      const __m512 xv = _mm512_loadu_ps(x + m * K + k);
      for (int r = 0; r < kRows; ++r) acc[m][r] = _mm512_fmadd_ps(wv[r], xv, acc[m][r]);
    }
  }
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < kRows; ++r)
      y[m * N + n + r] = at::BFloat16(_mm512_reduce_add_ps(acc[m][r]) * static_cast<float>(s[n + r]));
}

// Rows [n, n + kRows) of y (row stride N) for `cnt` rows of x (float32, row stride K), four at a time.
inline void rows_i8(const float* x, const int8_t* w, const at::BFloat16* s, at::BFloat16* y, int64_t K, int64_t N,
                    int64_t n, int64_t cnt) {
  for (int64_t m = 0; m < cnt; m += 4) {
    switch (std::min<int64_t>(4, cnt - m)) {
      case 1: block_i8<1>(x + m * K, w, s, y + m * N, K, N, n); break;
      case 2: block_i8<2>(x + m * K, w, s, y + m * N, K, N, n); break;
      case 3: block_i8<3>(x + m * K, w, s, y + m * N, K, N, n); break;
      default: block_i8<4>(x + m * K, w, s, y + m * N, K, N, n); break;
    }
  }
}

}  // namespace

// x [M, H] bf16; w13 [E, 2I, H] int8 with s13 [E, 2I]; w2 [E, H, I] int8 with s2 [E, H]; idx [M, k].
// weights [M, k] float32. Returns [M, H] bf16: sum_j weights[m, j] * (expert idx[m, j] applied to x[m]).
torch::Tensor moe_experts_int8(const torch::Tensor& x, const torch::Tensor& w13, const torch::Tensor& s13,
                               const torch::Tensor& w2, const torch::Tensor& s2, const torch::Tensor& idx,
                               const torch::Tensor& weights) {
  TORCH_CHECK(x.dim() == 2 && w13.dim() == 3 && w2.dim() == 3 && s13.dim() == 2 && s2.dim() == 2 && idx.dim() == 2 &&
              idx.size(0) == x.size(0), "moe_experts_int8: x [M, H], w13 [E, 2I, H], s13 [E, 2I], w2 [E, H, I], s2 [E, H], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w13.scalar_type() == at::kChar && w2.scalar_type() == at::kChar &&
              s13.scalar_type() == at::kBFloat16 && s2.scalar_type() == at::kBFloat16,
              "moe_experts_int8: bf16 activations and scales, int8 weights");
  TORCH_CHECK(x.is_contiguous() && w13.is_contiguous() && w2.is_contiguous() && s13.is_contiguous() && s2.is_contiguous(),
              "moe_experts_int8: contiguous only");
  const int64_t M = x.size(0), E = w13.size(0), H = w13.size(2), I2 = w13.size(1), I = w2.size(2);
  TORCH_CHECK(x.size(1) == H && w2.size(0) == E && w2.size(1) == H && I2 == 2 * I && s13.size(0) == E &&
              s13.size(1) == I2 && s2.size(0) == E && s2.size(1) == H, "moe_experts_int8: shapes disagree");
  TORCH_CHECK(H % 16 == 0 && I % 16 == 0 && H % kRows == 0, "moe_experts_int8: H % 16 == 0 and I % 16 == 0");
  const ExpertGroups grp(idx, E, "moe_experts_int8");
  const int64_t P = grp.pairs, G = grp.groups();
  std::vector<float> xs(P * H), hs(P * I);
  const auto* xp = x.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q)
    for (int64_t c = 0; c < H; ++c) xs[q * H + c] = static_cast<float>(xp[grp.token(q) * H + c]);
  auto gu = torch::empty({P, I2}, x.options());
  auto ysorted = torch::empty({P, H}, x.options());
  auto* gup = gu.data_ptr<at::BFloat16>();
  auto* yp = ysorted.data_ptr<at::BFloat16>();
  const auto* w13p = w13.data_ptr<int8_t>();
  const auto* w2p = w2.data_ptr<int8_t>();
  const auto* s13p = s13.data_ptr<at::BFloat16>();
  const auto* s2p = s2.data_ptr<at::BFloat16>();
  const int64_t up_blocks = I2 / kRows, down_blocks = H / kRows;
  at::parallel_for(0, G * up_blocks, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / up_blocks, n = (b % up_blocks) * kRows, q0 = grp.start[g], e = grp.gexp[g];
      rows_i8(xs.data() + q0 * H, w13p + e * I2 * H, s13p + e * I2, gup + q0 * I2, H, I2, n, grp.start[g + 1] - q0);
    }
  });
  for (int64_t q = 0; q < P; ++q)
    for (int64_t i = 0; i < I; ++i) {
      const float g = static_cast<float>(gup[q * I2 + i]);
      const float silu = static_cast<float>(at::BFloat16(g / (1.0f + std::exp(-g))));
      hs[q * I + i] = static_cast<float>(at::BFloat16(silu * static_cast<float>(gup[q * I2 + I + i])));
    }
  at::parallel_for(0, G * down_blocks, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / down_blocks, n = (b % down_blocks) * kRows, q0 = grp.start[g], e = grp.gexp[g];
      rows_i8(hs.data() + q0 * I, w2p + e * H * I, s2p + e * H, yp + q0 * H, I, H, n, grp.start[g + 1] - q0);
    }
  });
  return grp.combine(yp, weights, M, H);
}

}  // namespace minimax2
