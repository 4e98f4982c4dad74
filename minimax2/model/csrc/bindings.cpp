// The Python bindings of every kernel (declared in kernels.h, one .cpp per kernel family).
#include <torch/extension.h>

#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace minimax2;
  m.def("gemv_bf16", &gemv_bf16, "y = x @ w.T for bf16 x [M <= 16, K], w [N, K] (AVX512-BF16)");
  m.def("gemv_int8", &gemv_int8, "y = (x @ w.T) * scale for bf16 x [M <= 16, K], int8 w [N, K] (AVX512-VNNI)");
  m.def("gemv_int8_a8", &gemv_int8_a8,
        "gemv_int8 with x quantised to int8 per 128 columns (AVX512-VNNI vpdpbusd; K % 128 == 0)");
  m.def("gemv_int4", &gemv_int4, "y = x @ w.T for bf16 x [M <= 16, K], int4pack w [N, K / 2] (AVX512-VNNI); a8: x "
        "quantised to int8 per group, not int16", py::arg("x"), py::arg("packed"), py::arg("group"), py::arg("sz"),
        py::arg("a8") = false);
  m.def("gemv_int6", &gemv_int6,
        "y = x @ w.T for bf16 x [M <= 16, K], 6-bit w: int4pack low nibbles [N, K / 2] + top bits [N, K / 4]",
        py::arg("x"), py::arg("packed"), py::arg("top"), py::arg("group"), py::arg("sz"), py::arg("a8") = false);
  m.def("gemv_fp8", &gemv_fp8,
        "y = x @ W.T for bf16 x [M <= 64, K], float8_e4m3fn w [N, K] with float32 128x128 block scales");
  m.def("fp8_dequantize_bf16", &fp8_dequantize_bf16, "rows [r0, r1) of an fp8 block-scaled weight as bf16 (prefill tiles)");
  m.def("fp8_e4m3_to_bf16", &fp8_e4m3_to_bf16, "float8_e4m3fn codes -> bf16 through the fp8 kernels' conversion");
  m.def("moe_route", &moe_route, "sigmoid top-k routing with the selection bias -> (idx, weights)");
  m.def("moe_experts_bf16", &moe_experts_bf16,
        "a few tokens through their top-k bf16 SwiGLU experts (weights by pointer table), weighted -> [M, H]");
  m.def("moe_experts_int8", &moe_experts_int8, "a few tokens through their top-k int8 SwiGLU experts, weighted -> [M, H]");
  m.def("moe_experts_int8_a8", &moe_experts_int8_a8,
        "moe_experts_int8 with the activations quantised to int8 per 128 columns (H, I % 128 == 0)");
  m.def("moe_experts_int4", &moe_experts_int4, "a few tokens through their top-k int4 SwiGLU experts, weighted -> [M, H]; "
        "a8: activations quantised to int8 per group", py::arg("x"), py::arg("p13"), py::arg("sz13"), py::arg("p2"),
        py::arg("sz2"), py::arg("group"), py::arg("idx"), py::arg("weights"), py::arg("a8") = false);
  m.def("moe_experts_fp8", &moe_experts_fp8,
        "a few tokens through their top-k fp8 SwiGLU experts (pointer tables), weighted -> [M, H]");
  m.def("rms_norm_bf16", &rms_norm_bf16, "RMSNorm of bf16 rows (row stride free) with a bf16 weight");
  m.def("add_rms_norm_bf16", &add_rms_norm_bf16, "(h + delta, RMSNorm(h + delta)) for bf16 rows");
  m.def("attention_prep_bf16", &attention_prep_bf16, "decode qkv split, QK-norm, RoPE and cache write");
  m.def("decode_attention_bf16", &decode_attention_bf16, "one-query-per-sequence attention over the paged bf16 cache");
}
