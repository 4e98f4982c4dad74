// MoE expert block of decode steps and prefill chunks (SparseMoE: up to cpu_kernels.MAX_BLOCK_TOKENS
// tokens) on int4 weights (group-wise scale and zero, PyTorch's int4pack layout), the int4 twin of
// moe_experts_bf16: a few tokens through their top-k SwiGLU experts in one call, each chosen expert's
// weights read once per step, with the products of int4_dot.h (activations quantised to int16 per
// group, or with a8 to int8: int4's default, `--int8-activations`). Each product is rounded to bf16
// once, and silu and the gate * up product round to bf16 as the torch ops do.
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "int4_dot.h"
#include "kernels.h"
#include "parallel.h"
#include "moe_groups.h"
#include "swiglu.h"

namespace minimax2 {

// x [M, H] bf16; p13 [E, 2I, H / 2] and p2 [E, H, I / 2] packed by _convert_weight_to_int4pack_for_cpu;
// sz13 [E, H / group, 2I, 2] and sz2 [E, I / group, H, 2] scales and zeros; idx [M, k]; weights [M, k].
at::Tensor moe_experts_int4(const at::Tensor& x, const at::Tensor& p13, const at::Tensor& sz13,
                               const at::Tensor& p2, const at::Tensor& sz2, int64_t group,
                               const at::Tensor& idx, const at::Tensor& weights, bool a8) {
  TORCH_CHECK(x.dim() == 2 && p13.dim() == 3 && p2.dim() == 3 && sz13.dim() == 4 && sz2.dim() == 4 && idx.dim() == 2 &&
              idx.size(0) == x.size(0), "moe_experts_int4: x [M, H], p13 [E, 2I, H / 2], p2 [E, H, I / 2], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && p13.scalar_type() == at::kByte && p2.scalar_type() == at::kByte &&
              sz13.scalar_type() == at::kBFloat16 && sz2.scalar_type() == at::kBFloat16,
              "moe_experts_int4: bf16 activations, scales and zeros; uint8 packed weights");
  TORCH_CHECK(x.is_contiguous() && p13.is_contiguous() && p2.is_contiguous() && sz13.is_contiguous() && sz2.is_contiguous(),
              "moe_experts_int4: contiguous only");
  const int64_t M = x.size(0), E = p13.size(0), H = x.size(1), I = p2.size(2) * 2, I2 = 2 * I;
  TORCH_CHECK(p13.size(1) == I2 && p13.size(2) * 2 == H && p2.size(0) == E && p2.size(1) == H, "moe_experts_int4: shapes disagree");
  TORCH_CHECK(group % 32 == 0 && H % group == 0 && I % group == 0 && H % kI4Rows == 0 && I2 % kI4Rows == 0,
              "moe_experts_int4: H and 2I multiples of 64, group % 32 == 0, H and I multiples of the group");
  const int64_t G1 = H / group, G2 = I / group;
  TORCH_CHECK(sz13.size(0) == E && sz13.size(1) == G1 && sz13.size(2) == I2 && sz13.size(3) == 2 && sz2.size(0) == E &&
              sz2.size(1) == G2 && sz2.size(2) == H && sz2.size(3) == 2, "moe_experts_int4: scales and zeros disagree");
  const ExpertGroups grp(idx, E, "moe_experts_int4");
  const int64_t P = grp.pairs, NG = grp.groups();
  Int4ActRows xq(P, H, group, a8), hq(P, I, group, a8);
  std::vector<float> hs(P * I);
  const auto* xp = x.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q) xq.quantize(xp + grp.token(q) * H, q, 1);
  auto gu = at::empty({P, I2}, x.options());
  auto ysorted = at::empty({P, H}, x.options());
  auto* gup = gu.data_ptr<at::BFloat16>();
  auto* yp = ysorted.data_ptr<at::BFloat16>();
  const auto* p13p = p13.data_ptr<uint8_t>();
  const auto* p2p = p2.data_ptr<uint8_t>();
  const auto* sz13p = sz13.data_ptr<at::BFloat16>();
  const auto* sz2p = sz2.data_ptr<at::BFloat16>();
  const Int4Acts ax = xq.acts();
  const int64_t up_blocks = I2 / kI4Rows, down_blocks = H / kI4Rows;
  dynamic_for(0, NG * up_blocks, chunk_items(kI4Rows * H / 2), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / up_blocks, n0 = (b % up_blocks) * kI4Rows, q0 = grp.start[g], e = grp.gexp[g];
      rows_i4(ax, q0, grp.start[g + 1] - q0, p13p + e * I2 * H / 2, sz13p + e * G1 * I2 * 2, gup, I2, n0, group);
    }
  });
  swiglu_rows(gup, P, I, hs.data());
  hq.quantize(hs.data(), 0, P);
  const Int4Acts ah = hq.acts();
  dynamic_for(0, NG * down_blocks, chunk_items(kI4Rows * I / 2), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / down_blocks, n0 = (b % down_blocks) * kI4Rows, q0 = grp.start[g], e = grp.gexp[g];
      rows_i4(ah, q0, grp.start[g + 1] - q0, p2p + e * H * I / 2, sz2p + e * G2 * H * 2, yp, H, n0, group);
    }
  });
  return grp.combine(yp, weights, M, H);
}

}  // namespace minimax2
