// int4 weight-only matrix-vector products for decode (the attention projections of an int4 model):
// y = x @ w.T for a few bf16 rows of x (M <= 16) and w in PyTorch's int4pack layout with group-wise
// scales and zeros, with the products of int4_dot.h; and the same for 6-bit weights (a 6-bit lm_head,
// `--lm-head int6`). Blocks of 64 rows are split across threads.
#include <ATen/Parallel.h>

#include "int4_dot.h"
#include "kernels.h"
#include "parallel.h"

namespace minimax2 {

// x [M, K] bf16; packed [N, K / 2] uint8 from _convert_weight_to_int4pack_for_cpu; sz [K / group, N, 2];
// top [N, K / 4] uint8, the 6-bit weights' top bits (int4_dot.h), or undefined for int4; with top, sz is
// [N / 64, K / group, 64, 2].
static at::Tensor gemv_i4(const char* name, const at::Tensor& x, const at::Tensor& packed, int64_t group,
                          const at::Tensor& sz, const at::Tensor& top, bool a8) {
  TORCH_CHECK(x.dim() == 2 && packed.dim() == 2 && packed.size(1) * 2 == x.size(1), name, ": x [M, K], packed [N, K / 2]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && packed.scalar_type() == at::kByte && sz.scalar_type() == at::kBFloat16,
              name, ": bf16 x, scales and zeros; uint8 packed weights");
  TORCH_CHECK(x.is_contiguous() && packed.is_contiguous() && sz.is_contiguous(), name, ": contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = packed.size(0);
  TORCH_CHECK(M >= 1 && M <= 16 && N % kI4Rows == 0 && group % 32 == 0 && K % group == 0,
              name, ": 1 <= M <= 16, N % 64 == 0, group % 32 == 0 and K a multiple of the group");
  const int64_t G = K / group;
  if (top.defined()) {
    TORCH_CHECK(top.dim() == 2 && top.size(0) == N && top.size(1) * 4 == K && top.scalar_type() == at::kByte &&
                top.is_contiguous(), name, ": top bits [N, K / 4] uint8, contiguous");
    TORCH_CHECK(sz.dim() == 4 && sz.size(0) * kI4Rows == N && sz.size(1) == G && sz.size(2) == kI4Rows && sz.size(3) == 2,
                name, ": scales and zeros [N / 64, K / group, 64, 2]");
  } else {
    TORCH_CHECK(sz.dim() == 3 && sz.size(0) == G && sz.size(1) == N && sz.size(2) == 2,
                name, ": scales and zeros [K / group, N, 2]");
  }
  Int4ActRows xq(M, K, group, a8);
  xq.quantize(x.data_ptr<at::BFloat16>(), 0, M);
  const Int4Acts a = xq.acts();
  auto y = at::empty({M, N}, x.options());
  const auto* pp = packed.data_ptr<uint8_t>();
  const auto* tp = top.defined() ? top.data_ptr<uint8_t>() : nullptr;
  const auto* szp = sz.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  const int64_t block_bytes = kI4Rows * K / 2 + (tp != nullptr ? kI4Rows * K / 4 : 0);
  dynamic_for(0, N / kI4Rows, chunk_items(block_bytes), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) rows_i4(a, 0, M, pp, szp, yp, N, b * kI4Rows, group, tp);
  });
  return y;
}

at::Tensor gemv_int4(const at::Tensor& x, const at::Tensor& packed, int64_t group, const at::Tensor& sz, bool a8) {
  return gemv_i4("gemv_int4", x, packed, group, sz, at::Tensor(), a8);
}

// 6-bit weights u = low nibble (packed) + 16 x top bits (top), w = (u - 32) * scale + zero.
at::Tensor gemv_int6(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& top, int64_t group,
                     const at::Tensor& sz, bool a8) {
  return gemv_i4("gemv_int6", x, packed, group, sz, top, a8);
}

}  // namespace minimax2
