// int8 weight-only matrix-vector products for decode (the attention projections of an int8 model):
// y[m, n] = (sum_k x[m, k] * w[n, k]) * scale[n] for a few bf16 rows of x (M <= 16), with the
// products of int8_dot.h. Rows of w are split across PyTorch's intra-op threads.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "int8_a8.h"
#include "int8_dot.h"
#include "kernels.h"
#include "parallel.h"

namespace minimax2 {

at::Tensor gemv_int8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && scale.dim() == 1 && x.size(1) == w.size(1) && scale.size(0) == w.size(0),
              "gemv_int8: x [M, K], w [N, K], scale [N]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kChar && scale.scalar_type() == at::kBFloat16,
              "gemv_int8: bf16 x and scale, int8 w");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && scale.is_contiguous(), "gemv_int8: contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(M >= 1 && M <= 16 && K % 32 == 0, "gemv_int8: 1 <= M <= 16 and K % 32 == 0");
  const int64_t nb = qblocks(K);
  std::vector<int16_t> q(M * K);
  std::vector<float> s(M * nb);
  quantize_i16(x.data_ptr<at::BFloat16>(), M, K, q.data(), s.data());
  auto y = at::empty({M, N}, x.options());
  const auto* wp = w.data_ptr<int8_t>();
  const auto* sp = scale.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  dynamic_for(0, (N + kI8Rows - 1) / kI8Rows, chunk_items(kI8Rows * K), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b * kI8Rows;
      rows_i8(q.data(), s.data(), wp, sp, yp, K, N, n, std::min(kI8Rows, N - n), M);
    }
  });
  return y;
}

// The same product with the activations quantised to int8 per block of 128 (int8_a8.h): K % 128 == 0.
at::Tensor gemv_int8_a8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && scale.dim() == 1 && x.size(1) == w.size(1) && scale.size(0) == w.size(0),
              "gemv_int8_a8: x [M, K], w [N, K], scale [N]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kChar && scale.scalar_type() == at::kBFloat16,
              "gemv_int8_a8: bf16 x and scale, int8 w");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && scale.is_contiguous(), "gemv_int8_a8: contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(M >= 1 && M <= 16 && K % kA8Block == 0, "gemv_int8_a8: 1 <= M <= 16 and K % 128 == 0");
  const int64_t nb = K / kA8Block;
  std::vector<int8_t> q(M * K);
  std::vector<float> s(M * nb);
  std::vector<int32_t> c(M * nb);
  quantize_i8(x.data_ptr<at::BFloat16>(), M, K, q.data(), s.data(), c.data());
  auto y = at::empty({M, N}, x.options());
  const auto* wp = w.data_ptr<int8_t>();
  const auto* sp = scale.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  dynamic_for(0, (N + kI8Rows - 1) / kI8Rows, chunk_items(kI8Rows * K), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b * kI8Rows;
      block_a8(q.data(), s.data(), c.data(), wp, sp, yp, K, N, n, std::min(kI8Rows, N - n), M);
    }
  });
  return y;
}

}  // namespace minimax2
