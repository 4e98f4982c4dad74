// int4 weight-only matrix-vector products for decode (the attention projections of an int4 model):
// y = x @ w.T for a few bf16 rows of x (M <= 16) and w in PyTorch's int4pack layout with group-wise
// scales and zeros, with the products of int4_dot.h. Blocks of 64 rows are split across threads.
#include <ATen/Parallel.h>

#include <vector>

#include "int4_dot.h"
#include "kernels.h"
#include "parallel.h"

namespace minimax2 {

// x [M, K] bf16; packed [N, K / 2] uint8 from _convert_weight_to_int4pack_for_cpu; sz [K / group, N, 2].
at::Tensor gemv_int4(const at::Tensor& x, const at::Tensor& packed, int64_t group, const at::Tensor& sz) {
  TORCH_CHECK(x.dim() == 2 && packed.dim() == 2 && sz.dim() == 3 && packed.size(1) * 2 == x.size(1),
              "gemv_int4: x [M, K], packed [N, K / 2], scales and zeros [K / group, N, 2]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && packed.scalar_type() == at::kByte && sz.scalar_type() == at::kBFloat16,
              "gemv_int4: bf16 x, scales and zeros; uint8 packed weights");
  TORCH_CHECK(x.is_contiguous() && packed.is_contiguous() && sz.is_contiguous(), "gemv_int4: contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = packed.size(0);
  TORCH_CHECK(M >= 1 && M <= 16 && N % kI4Rows == 0 && group % 32 == 0 && K % group == 0,
              "gemv_int4: 1 <= M <= 16, N % 64 == 0, group % 32 == 0 and K a multiple of the group");
  const int64_t G = K / group;
  TORCH_CHECK(sz.size(0) == G && sz.size(1) == N && sz.size(2) == 2, "gemv_int4: scales and zeros [K / group, N, 2]");
  std::vector<int16_t> q(M * K);
  std::vector<float> s(M * G);
  std::vector<int32_t> sums(M * G);
  quantize_i16(x.data_ptr<at::BFloat16>(), M, K, q.data(), s.data(), group, sums.data());
  const Int4Acts a{q.data(), s.data(), sums.data(), K, G};
  auto y = at::empty({M, N}, x.options());
  const auto* pp = packed.data_ptr<uint8_t>();
  const auto* szp = sz.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  dynamic_for(0, N / kI4Rows, chunk_items(kI4Rows * K / 2), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) rows_i4(a, 0, M, pp, szp, yp, N, b * kI4Rows, group);
  });
  return y;
}

}  // namespace minimax2
