// Matrix-vector products for bf16 decode on x86 CPUs with AVX512-BF16 (Zen 4, Sapphire Rapids).
//
// y[m, n] = sum_k x[m, k] * w[n, k] for a few rows of x (M <= 16): batch-1 and small-batch decode,
// where every weight byte is read once per step and the speed is the memory bus. PyTorch's bf16
// linear reaches about half the bus here; this reads each weight row once with the products of
// bf16_dot.h and rounds each sum to bf16 once, as PyTorch's kernels do. Rows of w are split across
// PyTorch's intra-op threads.
#include <ATen/Parallel.h>

#include <algorithm>

#include "bf16_dot.h"
#include "kernels.h"
#include "parallel.h"

namespace minimax2 {

at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "gemv_bf16: x [M, K], w [N, K]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16, "gemv_bf16: bf16 only");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous(), "gemv_bf16: contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(M >= 1 && M <= 16 && K % 32 == 0, "gemv_bf16: 1 <= M <= 16 and K % 32 == 0");
  auto y = at::empty({M, N}, x.options());
  const auto* xp = x.data_ptr<at::BFloat16>();
  const auto* wp = w.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  constexpr int64_t R = kBf16Rows;
  dynamic_for(0, (N + R - 1) / R, chunk_items(R * K * 2), [&](int64_t b0, int64_t b1) {
    for (int64_t n = b0 * R; n < std::min(N, b1 * R); n += R) rows_bf16(xp, M, wp, yp, K, N, N, n, std::min(R, N - n));
  });
  return y;
}

}  // namespace minimax2
