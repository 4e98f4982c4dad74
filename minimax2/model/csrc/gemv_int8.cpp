// int8 weight-only matrix-vector products for decode (the attention projections of an int8 model):
// y[m, n] = (sum_k x[m, k] * w[n, k]) * scale[n] for a few bf16 rows of x (M <= 16), with the
// products of int8_dot.h (int16 activations) or int8_a8.h (int8). Rows of w are split across threads.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "int8_a8.h"
#include "int8_dot.h"
#include "kernels.h"
#include "parallel.h"

namespace minimax2 {

namespace {

// x [M <= 16, K] bf16, w [N, K] int8, scale [N] bf16, all contiguous; K a multiple of `align`.
void check_gemv_int8(const char* who, const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale, int64_t align) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && scale.dim() == 1 && x.size(1) == w.size(1) && scale.size(0) == w.size(0),
              who, ": x [M, K], w [N, K], scale [N]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kChar && scale.scalar_type() == at::kBFloat16,
              who, ": bf16 x and scale, int8 w");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && scale.is_contiguous(), who, ": contiguous inputs only");
  TORCH_CHECK(x.size(0) >= 1 && x.size(0) <= 16 && x.size(1) % align == 0, who, ": 1 <= M <= 16 and K % ", align,
              " == 0");
}

// y [M, N] bf16, blocks of kI8Rows weight rows split across threads: rows(y, n, count) writes y[:, n:n + count].
template <typename Rows>
at::Tensor over_weight_rows(const at::Tensor& x, int64_t N, Rows rows) {
  auto y = at::empty({x.size(0), N}, x.options());
  auto* yp = y.data_ptr<at::BFloat16>();
  dynamic_for(0, (N + kI8Rows - 1) / kI8Rows, chunk_items(kI8Rows * x.size(1)), [&](int64_t b0, int64_t b1) {
    for (int64_t n = b0 * kI8Rows; n < std::min(N, b1 * kI8Rows); n += kI8Rows) rows(yp, n, std::min(kI8Rows, N - n));
  });
  return y;
}

}  // namespace

at::Tensor gemv_int8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale) {
  check_gemv_int8("gemv_int8", x, w, scale, 32);
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  const int64_t nb = qblocks(K);
  auto qt = at::empty({M * K}, at::kShort);  // 64-byte aligned: the products load x in whole lines
  int16_t* qp = qt.data_ptr<int16_t>();
  std::vector<float> s(M * nb);
  quantize_i16(x.data_ptr<at::BFloat16>(), M, K, qp, s.data());
  const auto* wp = w.data_ptr<int8_t>();
  const auto* sp = scale.data_ptr<at::BFloat16>();
  return over_weight_rows(x, N, [&](at::BFloat16* y, int64_t n, int64_t rows) {
    rows_i8(qp, s.data(), wp, sp, y, K, N, n, rows, M);
  });
}

// The same product with the activations quantised to int8 per block of 128 (int8_a8.h): K % 128 == 0.
at::Tensor gemv_int8_a8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale) {
  check_gemv_int8("gemv_int8_a8", x, w, scale, kA8Block);
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0), nb = K / kA8Block;
  auto qt = at::empty({M * K}, at::kChar);  // 64-byte aligned: the products load x in whole lines
  int8_t* qp = qt.data_ptr<int8_t>();
  std::vector<float> s(M * nb);
  std::vector<int32_t> c(M * nb);
  quantize_i8(x.data_ptr<at::BFloat16>(), M, K, qp, s.data(), c.data());
  const auto* wp = w.data_ptr<int8_t>();
  const auto* sp = scale.data_ptr<at::BFloat16>();
  return over_weight_rows(x, N, [&](at::BFloat16* y, int64_t n, int64_t rows) {
    block_a8(qp, s.data(), c.data(), wp, sp, y, K, N, n, rows, M);
  });
}

}  // namespace minimax2
