// The entry points of the extension, one line each: defined in the file named beside them, bound to
// Python in bindings.cpp. Every defining file includes this header, so a signature that drifts from
// its declaration fails to compile instead of failing to import.
#pragma once

#include <torch/extension.h>

#include <tuple>

namespace minimax2 {

// gemv_bf16.cpp, gemv_int8.cpp, gemv_int4.cpp, gemv_fp8.cpp: decode rows (M <= 16) times a weight matrix.
torch::Tensor gemv_bf16(const torch::Tensor& x, const torch::Tensor& w);
torch::Tensor gemv_int8(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& scale);
torch::Tensor gemv_int4(const torch::Tensor& x, const torch::Tensor& packed, int64_t group, const torch::Tensor& sz);
torch::Tensor gemv_fp8(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& scale_inv);
torch::Tensor fp8_dequantize_bf16(const torch::Tensor& w, const torch::Tensor& scale_inv, int64_t r0, int64_t r1);
torch::Tensor fp8_e4m3_to_bf16(const torch::Tensor& codes);

// moe_route.cpp and experts_{bf16,int8,int4,fp8}.cpp: the router, then the chosen experts of a decode batch.
std::tuple<torch::Tensor, torch::Tensor> moe_route(const torch::Tensor& logits, const torch::Tensor& bias, int64_t k);
torch::Tensor moe_experts_bf16(const torch::Tensor& x, const torch::Tensor& w13, const torch::Tensor& w2,
                               const torch::Tensor& idx, const torch::Tensor& weights);
torch::Tensor moe_experts_int8(const torch::Tensor& x, const torch::Tensor& w13, const torch::Tensor& s13,
                               const torch::Tensor& w2, const torch::Tensor& s2, const torch::Tensor& idx,
                               const torch::Tensor& weights);
torch::Tensor moe_experts_int4(const torch::Tensor& x, const torch::Tensor& p13, const torch::Tensor& sz13,
                               const torch::Tensor& p2, const torch::Tensor& sz2, int64_t group,
                               const torch::Tensor& idx, const torch::Tensor& weights);
torch::Tensor moe_experts_fp8(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& weights,
                              const torch::Tensor& w1_ptrs, const torch::Tensor& w3_ptrs, const torch::Tensor& w2_ptrs,
                              const torch::Tensor& s1_ptrs, const torch::Tensor& s3_ptrs, const torch::Tensor& s2_ptrs,
                              int64_t I, int64_t H);

// norms.cpp: RMSNorm of decode rows, alone or fused with the residual add before it.
torch::Tensor rms_norm_bf16(const torch::Tensor& x, const torch::Tensor& w, double eps);
std::tuple<torch::Tensor, torch::Tensor> add_rms_norm_bf16(const torch::Tensor& h, const torch::Tensor& delta,
                                                           const torch::Tensor& w, double eps);

// attention_prep.cpp and decode_attention.cpp: a decode step's attention around its two projections.
torch::Tensor attention_prep_bf16(const torch::Tensor& qkv, const torch::Tensor& qw, const torch::Tensor& kw,
                                  const torch::Tensor& cos, const torch::Tensor& sin, double eps, int64_t Hq,
                                  torch::Tensor k_cache, torch::Tensor v_cache, const torch::Tensor& slots);
torch::Tensor decode_attention_bf16(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                                    const torch::Tensor& slots, const torch::Tensor& lens, double scale);

}  // namespace minimax2
