// The FP8 row products of gemv_fp8.cpp, shared with the fp8 expert block (experts_fp8.cpp): rows of x
// are permuted once into the order the byte-table conversion leaves the weights in, then multiplied
// with any range of weight rows. Defined in gemv_fp8.cpp (its header comment says how they work).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace minimax2 {

// Row stride of the permuted rows of x: K rounded up to 64 values, plus padding against L1 set conflicts.
int64_t fp8_xstride(int64_t K);

// `rows` rows of src (bf16, row stride sstride, K values) -> dst (row stride fp8_xstride(K)), permuted.
void fp8_permute_rows(const at::BFloat16* src, int64_t rows, int64_t K, int64_t sstride, at::BFloat16* dst);

// y[m * ystride + r] for weight rows r in [n, n + rows) of w [N, K] (float32 scales [ceil(N/128),
// ceil(K/128)]) and `cnt` permuted rows of x, rounded to bf16.
void fp8_rows(const at::BFloat16* x, int64_t cnt, const uint8_t* w, const float* scale, int64_t N, int64_t K,
              int64_t n, int64_t rows, at::BFloat16* y, int64_t ystride);

}  // namespace minimax2
