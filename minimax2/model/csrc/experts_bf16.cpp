// MoE expert block of decode steps and prefill chunks (SparseMoE: up to cpu_kernels.MAX_BLOCK_TOKENS
// tokens) on bf16 weights: a few tokens through their top-k SwiGLU experts in one call instead of ~25
// small ops per expert, with the products of bf16_dot.h.
//
// y[m] = sum_j weights[m, j] * w2[e] @ (silu(w1[e] @ x[m]) * (w3[e] @ x[m])), e = idx[m, j]. Each
// expert's w1 / w3 [I, H] and w2 [H, I] are separate tensors reached through tables of data pointers
// built once at load, so the weights are read where they are: views of a mapped bf16 checkpoint
// (zero-copy) or rows of stacks built in memory. (token, expert) pairs are grouped by expert
// (moe_groups.h) so each chosen expert's weights are read once for all its tokens. Rounds where
// PyTorch's bf16 ops round (after each product, after silu, after the multiply, the weighted sum in
// float32), so it agrees with the per-expert torch code to bf16 rounding.
#include <ATen/Parallel.h>

#include <algorithm>

#include "bf16_dot.h"
#include "kernels.h"
#include "parallel.h"
#include "moe_groups.h"
#include "swiglu.h"

namespace minimax2 {

// x [M, H] bf16; idx [M, k]; weights [M, k] float32; w*_ptrs int64 [E]: addresses of expert e's w1 / w3
// [I, H] and w2 [H, I] (bf16, contiguous). Returns [M, H] bf16.
at::Tensor moe_experts_bf16(const at::Tensor& x, const at::Tensor& idx, const at::Tensor& weights,
                            const at::Tensor& w1_ptrs, const at::Tensor& w3_ptrs, const at::Tensor& w2_ptrs,
                            int64_t I, int64_t H) {
  const char* who = "moe_experts_bf16";
  TORCH_CHECK(x.dim() == 2 && idx.dim() == 2 && idx.size(0) == x.size(0) && x.size(1) == H,
              "moe_experts_bf16: x [M, H], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && x.is_contiguous() && x.device().is_cpu(),
              "moe_experts_bf16: contiguous bf16 x");
  TORCH_CHECK(H % 32 == 0 && I % 32 == 0 && I > 0, "moe_experts_bf16: H % 32 == 0 and I % 32 == 0");
  const int64_t E = w1_ptrs.size(0), M = x.size(0);
  const int64_t *w1 = pointer_table(w1_ptrs, E, who, "w1_ptrs"), *w3 = pointer_table(w3_ptrs, E, who, "w3_ptrs");
  const int64_t* w2 = pointer_table(w2_ptrs, E, who, "w2_ptrs");
  const ExpertGroups grp(idx, E, who);
  const int64_t P = grp.pairs, G = grp.groups();
  for (int64_t g = 0; g < G; ++g) {
    const int64_t e = grp.gexp[g];
    TORCH_CHECK(w1[e] && w3[e] && w2[e], "moe_experts_bf16: null pointer for expert ", e);
  }
  auto xs = at::empty({P, H}, x.options());
  auto gu = at::empty({P, 2 * I}, x.options());
  auto h = at::empty({P, I}, x.options());
  auto ysorted = at::empty({P, H}, x.options());
  const auto* xp = x.data_ptr<at::BFloat16>();
  auto* xsp = xs.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q) std::copy(xp + grp.token(q) * H, xp + (grp.token(q) + 1) * H, xsp + q * H);
  auto* gup = gu.data_ptr<at::BFloat16>();
  auto* hp = h.data_ptr<at::BFloat16>();
  auto* yp = ysorted.data_ptr<at::BFloat16>();
  auto bf16 = [](int64_t a) { return reinterpret_cast<const at::BFloat16*>(a); };
  constexpr int64_t R = kBf16Rows;
  const int64_t ub = I / R, db = H / R;
  dynamic_for(0, G * 2 * ub, chunk_items(R * H * 2), [&](int64_t b0, int64_t b1) {  // gate (w1) and up (w3) rows
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / (2 * ub), j = b % (2 * ub), up = j >= ub, n = (j % ub) * R, q0 = grp.start[g];
      const int64_t e = grp.gexp[g];
      rows_bf16(xsp + q0 * H, grp.start[g + 1] - q0, bf16(up ? w3[e] : w1[e]), gup + q0 * 2 * I + (up ? I : 0), H,
                I, 2 * I, n, R);
    }
  });
  swiglu_rows(gup, P, I, hp);
  dynamic_for(0, G * db, chunk_items(R * I * 2), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / db, n = (b % db) * R, q0 = grp.start[g];
      rows_bf16(hp + q0 * I, grp.start[g + 1] - q0, bf16(w2[grp.gexp[g]]), yp + q0 * H, I, H, H, n, R);
    }
  });
  return grp.combine(yp, weights, M, H);
}

}  // namespace minimax2
