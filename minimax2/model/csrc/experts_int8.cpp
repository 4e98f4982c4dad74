// MoE expert block of decode steps and prefill chunks (SparseMoE: up to cpu_kernels.MAX_BLOCK_TOKENS
// tokens) on int8 weights (weight-only, one scale per output channel), the int8 twin of
// moe_experts_bf16: a few tokens through their top-k SwiGLU experts in one call, each chosen expert's
// weights read once per step. Products as int8_dot.h computes them (int16-quantised activations, exact
// integer sums), or int8_a8.h (int8 activations, `moe_experts_int8_a8`); each sum times the channel's
// scale is rounded to bf16 once, and silu and the gate * up product round to bf16 as the torch ops do.
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "int8_a8.h"
#include "int8_dot.h"
#include "kernels.h"
#include "parallel.h"
#include "moe_groups.h"
#include "swiglu.h"

namespace minimax2 {

// Activations of the pairs quantised for the products: int16 (int8_dot.h, the default) or int8
// (int8_a8.h, `--int8-activations`), with the products that read them.
template <bool A8>
struct ExpertActs {
  using Q = std::conditional_t<A8, int8_t, int16_t>;
  at::Tensor qt;  // 64-byte aligned (torch's allocator): the products load x in whole lines
  Q* q;
  std::vector<float> s;
  std::vector<int32_t> c;
  int64_t K, nb;

  ExpertActs(int64_t rows, int64_t K_)
      : qt(at::empty({rows * K_}, A8 ? at::kChar : at::kShort)), q(static_cast<Q*>(qt.data_ptr())), K(K_),
        nb(A8 ? K_ / kA8Block : qblocks(K_)) {
    s.resize(rows * nb);
    if (A8) c.resize(rows * nb);
  }
  template <typename T>
  void quantize(int64_t row, const T* x, int64_t rows) {
    if constexpr (A8) quantize_i8(x, rows, K, q + row * K, s.data() + row * nb, c.data() + row * nb);
    else quantize_i16(x, rows, K, q + row * K, s.data() + row * nb);
  }
  // weight rows [n, n + kI8Rows) of w [N, K] against the pairs [q0, q0 + cnt)
  void rows(int64_t q0, int64_t cnt, const int8_t* w, const at::BFloat16* ws, at::BFloat16* y, int64_t N,
            int64_t n) const {
    const Q* qq = q + q0 * K;
    const float* ss = s.data() + q0 * nb;
    if constexpr (A8) block_a8(qq, ss, c.data() + q0 * nb, w, ws, y, K, N, n, kI8Rows, cnt);
    else rows_i8(qq, ss, w, ws, y, K, N, n, kI8Rows, cnt);
  }
};

// x [M, H] bf16; w13 [E, 2I, H] int8 with s13 [E, 2I]; w2 [E, H, I] int8 with s2 [E, H]; idx [M, k].
// weights [M, k] float32. Returns [M, H] bf16: sum_j weights[m, j] * (expert idx[m, j] applied to x[m]).
template <bool A8>
at::Tensor experts_int8(const char* who, const at::Tensor& x, const at::Tensor& w13, const at::Tensor& s13,
                        const at::Tensor& w2, const at::Tensor& s2, const at::Tensor& idx, const at::Tensor& weights) {
  TORCH_CHECK(x.dim() == 2 && w13.dim() == 3 && w2.dim() == 3 && s13.dim() == 2 && s2.dim() == 2 && idx.dim() == 2 &&
              idx.size(0) == x.size(0),
              who, ": x [M, H], w13 [E, 2I, H], s13 [E, 2I], w2 [E, H, I], s2 [E, H], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w13.scalar_type() == at::kChar && w2.scalar_type() == at::kChar &&
              s13.scalar_type() == at::kBFloat16 && s2.scalar_type() == at::kBFloat16,
              who, ": bf16 activations and scales, int8 weights");
  TORCH_CHECK(x.is_contiguous() && w13.is_contiguous() && w2.is_contiguous() && s13.is_contiguous() &&
              s2.is_contiguous(), who, ": contiguous only");
  const int64_t M = x.size(0), E = w13.size(0), H = w13.size(2), I2 = w13.size(1), I = w2.size(2);
  TORCH_CHECK(x.size(1) == H && w2.size(0) == E && w2.size(1) == H && I2 == 2 * I && s13.size(0) == E &&
              s13.size(1) == I2 && s2.size(0) == E && s2.size(1) == H, who, ": shapes disagree");
  const int64_t align = A8 ? kA8Block : 32;
  TORCH_CHECK(H % align == 0 && I % align == 0, who, ": H % ", align, " == 0 and I % ", align, " == 0");
  const ExpertGroups grp(idx, E, who);
  const int64_t P = grp.pairs, G = grp.groups();
  ExpertActs<A8> xa(P, H), ha(P, I);
  std::vector<float> hs(P * I);
  const auto* xp = x.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q) xa.quantize(q, xp + grp.token(q) * H, 1);
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
      xa.rows(q0, grp.start[g + 1] - q0, w13p + e * I2 * H, s13p + e * I2, gup + q0 * I2, I2, n);
    }
  });
  swiglu_rows(gup, P, I, hs.data());
  ha.quantize(0, hs.data(), P);
  dynamic_for(0, G * down_blocks, chunk_items(kI8Rows * I), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / down_blocks, n = (b % down_blocks) * kI8Rows, q0 = grp.start[g], e = grp.gexp[g];
      ha.rows(q0, grp.start[g + 1] - q0, w2p + e * H * I, s2p + e * H, yp + q0 * H, H, n);
    }
  });
  return grp.combine(yp, weights, M, H);
}

at::Tensor moe_experts_int8(const at::Tensor& x, const at::Tensor& w13, const at::Tensor& s13, const at::Tensor& w2,
                            const at::Tensor& s2, const at::Tensor& idx, const at::Tensor& weights) {
  return experts_int8<false>("moe_experts_int8", x, w13, s13, w2, s2, idx, weights);
}

at::Tensor moe_experts_int8_a8(const at::Tensor& x, const at::Tensor& w13, const at::Tensor& s13, const at::Tensor& w2,
                               const at::Tensor& s2, const at::Tensor& idx, const at::Tensor& weights) {
  return experts_int8<true>("moe_experts_int8_a8", x, w13, s13, w2, s2, idx, weights);
}

}  // namespace minimax2
