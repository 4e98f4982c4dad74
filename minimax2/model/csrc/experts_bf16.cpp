// Decode-sized MoE expert block on bf16 weights: a few tokens through their top-k SwiGLU experts in one
// call instead of ~25 small ops per expert, with the products of bf16_dot.h.
//
// y[m] = sum_j weights[m, j] * w2[e] @ (silu(g) * u), [g; u] = w13[e] @ x[m], e = idx[m, j]. (token,
// expert) pairs are grouped by expert (moe_groups.h) so each chosen expert's weights are read once for
// all its tokens. Rounds where PyTorch's bf16 ops round (after each product, after silu, after the
// multiply, the weighted sum in float32), so it agrees with the per-expert torch code to bf16 rounding.
#include <ATen/Parallel.h>

#include <algorithm>

#include "bf16_dot.h"
#include "kernels.h"
#include "moe_groups.h"
#include "swiglu.h"

namespace minimax2 {

// x [M, H]; w13 [E, 2I, H] (rows [0, I) gate, [I, 2I) up); w2 [E, H, I]; idx [M, k]; weights [M, k] float32.
at::Tensor moe_experts_bf16(const at::Tensor& x, const at::Tensor& w13, const at::Tensor& w2,
                               const at::Tensor& idx, const at::Tensor& weights) {
  TORCH_CHECK(x.dim() == 2 && w13.dim() == 3 && w2.dim() == 3 && idx.dim() == 2 && idx.size(0) == x.size(0),
              "moe_experts_bf16: x [M, H], w13 [E, 2I, H], w2 [E, H, I], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w13.scalar_type() == at::kBFloat16 &&
              w2.scalar_type() == at::kBFloat16, "moe_experts_bf16: bf16 only");
  TORCH_CHECK(x.is_contiguous() && w13.is_contiguous() && w2.is_contiguous(), "moe_experts_bf16: contiguous only");
  const int64_t M = x.size(0), E = w13.size(0), H = w13.size(2), I2 = w13.size(1), I = w2.size(2);
  TORCH_CHECK(x.size(1) == H && w2.size(1) == H && I2 == 2 * I && H % 32 == 0 && I % 32 == 0,
              "moe_experts_bf16: H % 32 == 0 and I % 32 == 0");
  const ExpertGroups grp(idx, E, "moe_experts_bf16");
  const int64_t P = grp.pairs, G = grp.groups();
  const auto& start = grp.start;
  const auto& gexp = grp.gexp;
  auto xs = at::empty({P, H}, x.options());
  auto gu = at::empty({P, I2}, x.options());
  auto h = at::empty({P, I}, x.options());
  auto ysorted = at::empty({P, H}, x.options());
  const auto* xp = x.data_ptr<at::BFloat16>();
  auto* xsp = xs.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q) std::copy(xp + grp.token(q) * H, xp + (grp.token(q) + 1) * H, xsp + q * H);
  const auto* w13p = w13.data_ptr<at::BFloat16>();
  const auto* w2p = w2.data_ptr<at::BFloat16>();
  auto* gup = gu.data_ptr<at::BFloat16>();
  auto* hp = h.data_ptr<at::BFloat16>();
  auto* yp = ysorted.data_ptr<at::BFloat16>();
  constexpr int64_t R = kBf16Rows;
  const int64_t up_blocks = I2 / R, down_blocks = H / R;
  at::parallel_for(0, G * up_blocks, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / up_blocks, n = (b % up_blocks) * R, q0 = start[g];
      rows_bf16(xsp + q0 * H, start[g + 1] - q0, w13p + gexp[g] * I2 * H, gup + q0 * I2, H, I2, n, R);
    }
  });
  swiglu_rows(gup, P, I, hp);
  at::parallel_for(0, G * down_blocks, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / down_blocks, n = (b % down_blocks) * R, q0 = start[g];
      rows_bf16(hp + q0 * I, start[g + 1] - q0, w2p + gexp[g] * H * I, yp + q0 * H, I, H, n, R);
    }
  });
  return grp.combine(yp, weights, M, H);
}

}  // namespace minimax2
