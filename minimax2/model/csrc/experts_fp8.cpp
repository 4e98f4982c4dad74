// MoE expert block of decode steps and prefill chunks (SparseMoE: up to cpu_kernels.MAX_BLOCK_TOKENS
// tokens) on FP8 weights read in place: the fp8 twin of moe_experts_bf16. Each expert's w1 [I, H], w3
// [I, H], w2 [H, I] (float8_e4m3fn) and their 128x128 float32 block scales are separate tensors
// (zero-copy views of the checkpoint's shards), passed as tables of data pointers built once at load.
// (token, expert) pairs are grouped by expert so each chosen expert's weights are read once per step;
// products as gemv_fp8.cpp computes them. Rounds where the bf16 block (and the dequantize-then-bf16
// torch path) rounds: each product to bf16, silu, the gate * up product, and the weighted sum in
// float32.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "fp8_rows.h"
#include "kernels.h"
#include "parallel.h"
#include "moe_groups.h"
#include "swiglu.h"

namespace minimax2 {

constexpr int64_t kFp8ExpertRows = 4;  // weight rows per task unit

// x [M, H] bf16; idx [M, k] expert indices; weights [M, k] float32; *_ptrs int64 [E]: addresses of
// expert e's w1 / w3 [I, H] and w2 [H, I] (float8_e4m3fn, contiguous) and of their float32 scales
// [ceil(I/128), ceil(H/128)] and [ceil(H/128), ceil(I/128)]. Returns [M, H] bf16:
// sum_j weights[m, j] * w2 @ (silu(w1 @ x[m]) * (w3 @ x[m])) for expert idx[m, j].
at::Tensor moe_experts_fp8(const at::Tensor& x, const at::Tensor& idx, const at::Tensor& weights,
                              const at::Tensor& w1_ptrs, const at::Tensor& w3_ptrs, const at::Tensor& w2_ptrs,
                              const at::Tensor& s1_ptrs, const at::Tensor& s3_ptrs, const at::Tensor& s2_ptrs,
                              int64_t I, int64_t H) {
  TORCH_CHECK(x.dim() == 2 && idx.dim() == 2 && idx.size(0) == x.size(0) && x.size(1) == H,
              "moe_experts_fp8: x [M, H], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && x.is_contiguous() && x.device().is_cpu(),
              "moe_experts_fp8: contiguous bf16 x");
  TORCH_CHECK(H >= 1 && I >= 16 && I % 16 == 0, "moe_experts_fp8: I % 16 == 0");
  const int64_t E = w1_ptrs.size(0), M = x.size(0);
  const char* who = "moe_experts_fp8";
  const int64_t *w1 = pointer_table(w1_ptrs, E, who, "w1_ptrs"), *w3 = pointer_table(w3_ptrs, E, who, "w3_ptrs");
  const int64_t *w2 = pointer_table(w2_ptrs, E, who, "w2_ptrs"), *s1 = pointer_table(s1_ptrs, E, who, "s1_ptrs");
  const int64_t *s3 = pointer_table(s3_ptrs, E, who, "s3_ptrs"), *s2 = pointer_table(s2_ptrs, E, who, "s2_ptrs");
  const ExpertGroups grp(idx, E, "moe_experts_fp8");
  const int64_t P = grp.pairs, G = grp.groups(), Hp = fp8_xstride(H), Ip = fp8_xstride(I);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t e = grp.gexp[g];
    TORCH_CHECK(w1[e] && w3[e] && w2[e] && s1[e] && s3[e] && s2[e], "moe_experts_fp8: null pointer for expert ", e);
  }
  auto xs = at::empty({P, Hp}, x.options());
  auto gu = at::empty({P, 2 * I}, x.options());
  auto h = at::empty({P, I}, x.options());
  auto hs = at::empty({P, Ip}, x.options());
  auto ysorted = at::empty({P, H}, x.options());
  const auto* xp = x.data_ptr<at::BFloat16>();
  auto* xsp = xs.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q) fp8_permute_rows(xp + grp.token(q) * H, 1, H, H, xsp + q * Hp);
  auto* gup = gu.data_ptr<at::BFloat16>();
  auto* hp = h.data_ptr<at::BFloat16>();
  auto* hsp = hs.data_ptr<at::BFloat16>();
  auto* yp = ysorted.data_ptr<at::BFloat16>();
  auto u8 = [](int64_t a) { return reinterpret_cast<const uint8_t*>(a); };
  auto f32 = [](int64_t a) { return reinterpret_cast<const float*>(a); };
  const int64_t ub = (I + kFp8ExpertRows - 1) / kFp8ExpertRows, db = (H + kFp8ExpertRows - 1) / kFp8ExpertRows;
  dynamic_for(0, G * 2 * ub, chunk_items(kFp8ExpertRows * H), [&](int64_t b0, int64_t b1) {  // gate (w1) and up (w3) rows
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / (2 * ub), j = b % (2 * ub), up = j >= ub, n = (j % ub) * kFp8ExpertRows, q0 = grp.start[g];
      const int64_t e = grp.gexp[g];
      fp8_rows(xsp + q0 * Hp, grp.start[g + 1] - q0, u8(up ? w3[e] : w1[e]), f32(up ? s3[e] : s1[e]), I, H, n,
               std::min(kFp8ExpertRows, I - n), gup + q0 * 2 * I + (up ? I : 0), 2 * I);
    }
  });
  swiglu_rows(gup, P, I, hp);
  fp8_permute_rows(hp, P, I, I, hsp);
  dynamic_for(0, G * db, chunk_items(kFp8ExpertRows * I), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / db, n = (b % db) * kFp8ExpertRows, q0 = grp.start[g], e = grp.gexp[g];
      fp8_rows(hsp + q0 * Ip, grp.start[g + 1] - q0, u8(w2[e]), f32(s2[e]), H, I, n, std::min(kFp8ExpertRows, H - n),
               yp + q0 * H, H);
    }
  });
  return grp.combine(yp, weights, M, H);
}

}  // namespace minimax2
