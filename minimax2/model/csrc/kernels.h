// The entry points of the extension, one line each: defined in the file named beside them, bound to
// Python in bindings.cpp. Every defining file includes this header, so a signature that drifts from
// its declaration fails to compile instead of failing to import.
#pragma once

// ATen's tensor and the two ops the kernels call, not <torch/extension.h> (autograd, pybind11):
// parsing that header dominated each file's compile time. bindings.cpp alone needs it.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <tuple>

namespace minimax2 {

// gemv_bf16.cpp, gemv_int8.cpp, gemv_int4.cpp, gemv_fp8.cpp: decode rows (M <= 16) times a weight matrix.
at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w);
at::Tensor gemv_int8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale);
at::Tensor gemv_int8_a8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale);
at::Tensor gemv_int4(const at::Tensor& x, const at::Tensor& packed, int64_t group, const at::Tensor& sz,
                     bool a8 = false);
at::Tensor gemv_int6(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& top, int64_t group,
                     const at::Tensor& sz, bool a8 = false);
at::Tensor gemv_fp8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scale_inv);
// fp8_dequant.cpp: whole FP8 matrices to bf16 (prefill tiles; the conversion alone, for tests).
at::Tensor fp8_dequantize_bf16(const at::Tensor& w, const at::Tensor& scale_inv, int64_t r0, int64_t r1);
at::Tensor fp8_e4m3_to_bf16(const at::Tensor& codes);

// moe_route.cpp and experts_{bf16,int8,int4,fp8}.cpp: the router, then the chosen experts of a decode batch.
std::tuple<at::Tensor, at::Tensor> moe_route(const at::Tensor& logits, const at::Tensor& bias, int64_t k);
at::Tensor moe_experts_bf16(const at::Tensor& x, const at::Tensor& idx, const at::Tensor& weights,
                            const at::Tensor& w1_ptrs, const at::Tensor& w3_ptrs, const at::Tensor& w2_ptrs,
                            int64_t I, int64_t H);
at::Tensor moe_experts_int8(const at::Tensor& x, const at::Tensor& w13, const at::Tensor& s13,
                               const at::Tensor& w2, const at::Tensor& s2, const at::Tensor& idx,
                               const at::Tensor& weights);
at::Tensor moe_experts_int8_a8(const at::Tensor& x, const at::Tensor& w13, const at::Tensor& s13,
                               const at::Tensor& w2, const at::Tensor& s2, const at::Tensor& idx,
                               const at::Tensor& weights);
at::Tensor moe_experts_int4(const at::Tensor& x, const at::Tensor& p13, const at::Tensor& sz13,
                               const at::Tensor& p2, const at::Tensor& sz2, int64_t group,
                               const at::Tensor& idx, const at::Tensor& weights, bool a8 = false);
at::Tensor moe_experts_fp8(const at::Tensor& x, const at::Tensor& idx, const at::Tensor& weights,
                              const at::Tensor& w1_ptrs, const at::Tensor& w3_ptrs, const at::Tensor& w2_ptrs,
                              const at::Tensor& s1_ptrs, const at::Tensor& s3_ptrs, const at::Tensor& s2_ptrs,
                              int64_t I, int64_t H);

// norms.cpp: RMSNorm of decode rows, alone or fused with the residual add before it.
at::Tensor rms_norm_bf16(const at::Tensor& x, const at::Tensor& w, double eps);
std::tuple<at::Tensor, at::Tensor> add_rms_norm_bf16(const at::Tensor& h, const at::Tensor& delta,
                                                           const at::Tensor& w, double eps);

// attention_prep.cpp and decode_attention.cpp: a decode step's attention around its two projections.
at::Tensor attention_prep_bf16(const at::Tensor& qkv, const at::Tensor& qw, const at::Tensor& kw,
                                  const at::Tensor& cos, const at::Tensor& sin, double eps, int64_t Hq,
                                  at::Tensor k_cache, at::Tensor v_cache, const at::Tensor& slots);
at::Tensor decode_attention_bf16(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                    const at::Tensor& slots, const at::Tensor& lens, double scale);

}  // namespace minimax2
