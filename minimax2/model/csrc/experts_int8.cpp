// Decode-sized MoE expert block on int8 weights (weight-only, one scale per output channel), the
// int8 twin of moe_experts_bf16: a few tokens through their top-k SwiGLU experts in one call, each
// chosen expert's weights read once per step. Products as int8_dot.h computes them (int16-quantised
// activations, exact integer sums); each sum times the channel's scale is rounded to bf16 once, and
// silu and the gate * up product round to bf16 as the torch ops do.
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "int8_dot.h"
#include "kernels.h"
#include "parallel.h"
#include "moe_groups.h"
#include "swiglu.h"

namespace minimax2 {

// x [M, H] bf16; w13 [E, 2I, H] int8 with s13 [E, 2I]; w2 [E, H, I] int8 with s2 [E, H]; idx [M, k].
// weights [M, k] float32. Returns [M, H] bf16: sum_j weights[m, j] * (expert idx[m, j] applied to x[m]).
at::Tensor moe_experts_int8(const at::Tensor& x, const at::Tensor& w13, const at::Tensor& s13,
                               const at::Tensor& w2, const at::Tensor& s2, const at::Tensor& idx,
                               const at::Tensor& weights) {
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
  TORCH_CHECK(H % 32 == 0 && I % 32 == 0, "moe_experts_int8: H % 32 == 0 and I % 32 == 0");
  const ExpertGroups grp(idx, E, "moe_experts_int8");
  const int64_t P = grp.pairs, G = grp.groups();
  const int64_t nbH = qblocks(H), nbI = qblocks(I);
  std::vector<int16_t> xq(P * H), hq(P * I);
  std::vector<float> xs(P * nbH), hsc(P * nbI), hs(P * I);
  const auto* xp = x.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q) quantize_i16(xp + grp.token(q) * H, 1, H, xq.data() + q * H, xs.data() + q * nbH);
  auto gu = at::empty({P, I2}, x.options());
  auto ysorted = at::empty({P, H}, x.options());
  auto* gup = gu.data_ptr<at::BFloat16>();
  auto* yp = ysorted.data_ptr<at::BFloat16>();
  const auto* w13p = w13.data_ptr<int8_t>();
  const auto* w2p = w2.data_ptr<int8_t>();
  const auto* s13p = s13.data_ptr<at::BFloat16>();
  const auto* s2p = s2.data_ptr<at::BFloat16>();
  const int64_t up_blocks = I2 / kI8Rows, down_blocks = H / kI8Rows;
  dynamic_for(0, G * up_blocks, chunk_items(kI8Rows * H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / up_blocks, n = (b % up_blocks) * kI8Rows, q0 = grp.start[g], e = grp.gexp[g];
      rows_i8(xq.data() + q0 * H, xs.data() + q0 * nbH, w13p + e * I2 * H, s13p + e * I2, gup + q0 * I2, H, I2, n,
              kI8Rows, grp.start[g + 1] - q0);
    }
  });
  swiglu_rows(gup, P, I, hs.data());
  quantize_i16(hs.data(), P, I, hq.data(), hsc.data());
  dynamic_for(0, G * down_blocks, chunk_items(kI8Rows * I), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / down_blocks, n = (b % down_blocks) * kI8Rows, q0 = grp.start[g], e = grp.gexp[g];
      rows_i8(hq.data() + q0 * I, hsc.data() + q0 * nbI, w2p + e * H * I, s2p + e * H, yp + q0 * H, I, H, n,
              kI8Rows, grp.start[g + 1] - q0);
    }
  });
  return grp.combine(yp, weights, M, H);
}

}  // namespace minimax2
