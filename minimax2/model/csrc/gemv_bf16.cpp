// Matrix-vector products for bf16 decode on x86 CPUs with AVX512-BF16 (Zen 4, Sapphire Rapids), and
// the decode-sized MoE expert block built on them.
//
// y[m, n] = sum_k x[m, k] * w[n, k] for a few rows of x (M <= 16): batch-1 and small-batch decode,
// where every weight byte is read once per step and the speed is the memory bus. PyTorch's bf16
// linear reaches about half the bus here; this reads each weight row once with `vdpbf16ps`
// (bf16 pairs multiplied exactly, accumulated in float32) and rounds the sum to bf16 once, as
// PyTorch's kernels do. Rows of w are split across PyTorch's intra-op threads.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "moe_groups.h"
#include "simd_bf16.h"
#include "swiglu.h"

namespace {

constexpr int64_t kRows = 4;  // weight rows per task unit
// Software prefetch this many bytes ahead along the weights (rows are contiguous); a few % faster
// reads than the hardware prefetcher alone (measured; 16 KiB ahead was no better).
constexpr int64_t kPrefetchBytes = 8192;

// Rows [n, n + rows) of y for the M rows of x starting at x (row stride K, output row stride N).
// Each weight row is read start to end (one sequential stream: 57 GB/s on two cores where four
// interleaved rows read 41, measured), with four float32 chains per row of x.
template <int M>
inline void block(const at::BFloat16* x, const at::BFloat16* w, at::BFloat16* y, int64_t K, int64_t N,
                  int64_t n, int64_t rows) {
  const char* end = reinterpret_cast<const char*>(w + N * K);
  for (int64_t r = 0; r < rows; ++r) {
    const at::BFloat16* row = w + (n + r) * K;
    __m512 acc[M][4];
    for (int m = 0; m < M; ++m)
      for (int u = 0; u < 4; ++u) acc[m][u] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 128 <= K; k += 128) {  // four cache lines of the row
      const char* ahead = reinterpret_cast<const char*>(row + k) + kPrefetchBytes;
      if (ahead + 192 < end)
        for (int u = 0; u < 4; ++u) _mm_prefetch(ahead + 64 * u, _MM_HINT_T0);
      __m512bh wv[4];
      for (int u = 0; u < 4; ++u) wv[u] = (__m512bh)_mm512_loadu_si512(row + k + 32 * u);
      for (int m = 0; m < M; ++m)
        for (int u = 0; u < 4; ++u)
          acc[m][u] = _mm512_dpbf16_ps(acc[m][u], wv[u], (__m512bh)_mm512_loadu_si512(x + m * K + k + 32 * u));
    }
    for (; k < K; k += 32) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(row + k);
      for (int m = 0; m < M; ++m)
        acc[m][0] = _mm512_dpbf16_ps(acc[m][0], wv, (__m512bh)_mm512_loadu_si512(x + m * K + k));
    }
    for (int m = 0; m < M; ++m)
      y[m * N + n + r] = at::BFloat16(_mm512_reduce_add_ps(
          _mm512_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]), _mm512_add_ps(acc[m][2], acc[m][3]))));
  }
}

// Weight rows [n0, n1) against every row of x, four rows of x at a time: a block of four weight rows
// (8 KiB at K = 1024) is read from memory once and from L1 for the later rows of x.
void rows_of_w(const at::BFloat16* x, const at::BFloat16* w, at::BFloat16* y, int64_t M, int64_t K, int64_t N,
               int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += kRows) {
    const int64_t rows = std::min(kRows, n1 - n);
    for (int64_t m = 0; m < M; m += 4) {
      const at::BFloat16* xm = x + m * K;
      at::BFloat16* ym = y + m * N;
      switch (std::min<int64_t>(4, M - m)) {
        case 1: block<1>(xm, w, ym, K, N, n, rows); break;
        case 2: block<2>(xm, w, ym, K, N, n, rows); break;
        case 3: block<3>(xm, w, ym, K, N, n, rows); break;
        default: block<4>(xm, w, ym, K, N, n, rows); break;
      }
    }
  }
}

torch::Tensor gemv_bf16(const torch::Tensor& x, const torch::Tensor& w) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "gemv_bf16: x [M, K], w [N, K]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16, "gemv_bf16: bf16 only");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous(), "gemv_bf16: contiguous inputs only");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(M >= 1 && M <= 16 && K % 32 == 0, "gemv_bf16: 1 <= M <= 16 and K % 32 == 0");
  auto y = torch::empty({M, N}, x.options());
  const auto* xp = x.data_ptr<at::BFloat16>();
  const auto* wp = w.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  // grain: at least 64 KiB of weights per task, so small matrices do not pay for waking threads
  const int64_t grain = std::max<int64_t>(kRows, ((32768 / K) + kRows - 1) / kRows * kRows);
  at::parallel_for(0, (N + kRows - 1) / kRows, std::max<int64_t>(1, grain / kRows), [&](int64_t b0, int64_t b1) {
    rows_of_w(xp, wp, yp, M, K, N, b0 * kRows, std::min(N, b1 * kRows));
  });
  return y;
}

// Rows [n, n + kRows) of y (row stride N) for `cnt` consecutive rows of x (row stride K), four at a time.
inline void block_rows(const at::BFloat16* x, const at::BFloat16* w, at::BFloat16* y, int64_t K, int64_t N,
                       int64_t n, int64_t cnt) {
  for (int64_t m = 0; m < cnt; m += 4) {
    switch (std::min<int64_t>(4, cnt - m)) {
      case 1: block<1>(x + m * K, w, y + m * N, K, N, n, kRows); break;
      case 2: block<2>(x + m * K, w, y + m * N, K, N, n, kRows); break;
      case 3: block<3>(x + m * K, w, y + m * N, K, N, n, kRows); break;
      default: block<4>(x + m * K, w, y + m * N, K, N, n, kRows); break;
    }
  }
}

// A few tokens through their top-k SwiGLU experts: y[m] = sum_j weights[m, j] * w2[e] @ (silu(g) * u),
// [g; u] = w13[e] @ x[m], e = idx[m, j]. (token, expert) pairs are grouped by expert so each chosen
// expert's weights are read once for all its tokens. Rounds where PyTorch's bf16 ops round (after
// each product, after silu, after the multiply, the weighted sum in float32), so it agrees with the
// per-expert torch code to bf16 rounding; one call instead of ~25 small ops per expert.
torch::Tensor moe_experts_bf16(const torch::Tensor& x, const torch::Tensor& w13, const torch::Tensor& w2,
                               const torch::Tensor& idx,
                               const torch::Tensor& weights) {
  TORCH_CHECK(x.dim() == 2 && w13.dim() == 3 && w2.dim() == 3 && idx.dim() == 2 && idx.size(0) == x.size(0),
              "moe_experts_bf16: x [M, H], w13 [E, 2I, H], w2 [E, H, I], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w13.scalar_type() == at::kBFloat16 &&
              w2.scalar_type() == at::kBFloat16, "moe_experts_bf16: bf16 only");
  TORCH_CHECK(x.is_contiguous() && w13.is_contiguous() && w2.is_contiguous(), "moe_experts_bf16: contiguous only");
  const int64_t M = x.size(0), E = w13.size(0), H = w13.size(2), I2 = w13.size(1), I = w2.size(2);
  TORCH_CHECK(x.size(1) == H && w2.size(1) == H && I2 == 2 * I && H % 32 == 0 && I % 32 == 0,
              "moe_experts_bf16: H % 32 == 0 and I % 32 == 0");
  const minimax2::ExpertGroups grp(idx, E, "moe_experts_bf16");
  const int64_t P = grp.pairs, G = grp.groups();
  const auto& start = grp.start;
  const auto& gexp = grp.gexp;
  auto xs = torch::empty({P, H}, x.options());
  auto gu = torch::empty({P, I2}, x.options());
  auto h = torch::empty({P, I}, x.options());
  auto ysorted = torch::empty({P, H}, x.options());
  const auto* xp = x.data_ptr<at::BFloat16>();
  auto* xsp = xs.data_ptr<at::BFloat16>();
  for (int64_t q = 0; q < P; ++q) std::copy(xp + grp.token(q) * H, xp + (grp.token(q) + 1) * H, xsp + q * H);
  const auto* w13p = w13.data_ptr<at::BFloat16>();
  const auto* w2p = w2.data_ptr<at::BFloat16>();
  auto* gup = gu.data_ptr<at::BFloat16>();
  auto* hp = h.data_ptr<at::BFloat16>();
  auto* yp = ysorted.data_ptr<at::BFloat16>();
  const int64_t up_blocks = I2 / kRows, down_blocks = H / kRows;
  at::parallel_for(0, G * up_blocks, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / up_blocks, n = (b % up_blocks) * kRows, q0 = start[g];
      block_rows(xsp + q0 * H, w13p + gexp[g] * I2 * H, gup + q0 * I2, H, I2, n, start[g + 1] - q0);
    }
  });
  minimax2::swiglu_rows(gup, P, I, hp);
  at::parallel_for(0, G * down_blocks, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / down_blocks, n = (b % down_blocks) * kRows, q0 = start[g];
      block_rows(hp + q0 * I, w2p + gexp[g] * H * I, yp + q0 * H, I, H, n, start[g + 1] - q0);
    }
  });
  return grp.combine(yp, weights, M, H);
}

}  // namespace

namespace minimax2 {  // gemv_int8.cpp, gemv_int4.cpp, experts_int8.cpp, experts_int4.cpp, moe_route.cpp, attention_prep.cpp,
                    // decode_attention.cpp, norms.cpp, gemv_fp8.cpp, experts_fp8.cpp
torch::Tensor gemv_fp8(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& scale_inv);
torch::Tensor fp8_dequantize_bf16(const torch::Tensor& w, const torch::Tensor& scale_inv, int64_t r0, int64_t r1);
torch::Tensor fp8_e4m3_to_bf16(const torch::Tensor& codes);
torch::Tensor moe_experts_fp8(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& weights,
                              const torch::Tensor& w1_ptrs, const torch::Tensor& w3_ptrs, const torch::Tensor& w2_ptrs,
                              const torch::Tensor& s1_ptrs, const torch::Tensor& s3_ptrs, const torch::Tensor& s2_ptrs,
                              int64_t I, int64_t H);
torch::Tensor gemv_int8(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& scale);
torch::Tensor gemv_int4(const torch::Tensor& x, const torch::Tensor& packed, int64_t group, const torch::Tensor& sz);
torch::Tensor moe_experts_int8(const torch::Tensor& x, const torch::Tensor& w13, const torch::Tensor& s13,
                               const torch::Tensor& w2, const torch::Tensor& s2, const torch::Tensor& idx,
                               const torch::Tensor& weights);
torch::Tensor moe_experts_int4(const torch::Tensor& x, const torch::Tensor& p13, const torch::Tensor& sz13,
                               const torch::Tensor& p2, const torch::Tensor& sz2, int64_t group,
                               const torch::Tensor& idx, const torch::Tensor& weights);
std::tuple<torch::Tensor, torch::Tensor> moe_route(const torch::Tensor& logits, const torch::Tensor& bias, int64_t k);
torch::Tensor rms_norm_bf16(const torch::Tensor& x, const torch::Tensor& w, double eps);
std::tuple<torch::Tensor, torch::Tensor> add_rms_norm_bf16(const torch::Tensor& h, const torch::Tensor& delta,
                                                           const torch::Tensor& w, double eps);
torch::Tensor decode_attention_bf16(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                                    const torch::Tensor& slots, const torch::Tensor& lens, double scale);
torch::Tensor attention_prep_bf16(const torch::Tensor& qkv, const torch::Tensor& qw, const torch::Tensor& kw,
                                  const torch::Tensor& cos, const torch::Tensor& sin, double eps, int64_t Hq,
                                  torch::Tensor k_cache, torch::Tensor v_cache, const torch::Tensor& slots);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attention_prep_bf16", &minimax2::attention_prep_bf16, "decode qkv split, QK-norm, RoPE and cache write");
  m.def("moe_route", &minimax2::moe_route, "sigmoid top-k routing with the selection bias -> (idx, weights)");
  m.def("moe_experts_int4", &minimax2::moe_experts_int4, "a few tokens through their top-k int4 SwiGLU experts, weighted -> [M, H]");
  m.def("moe_experts_int8", &minimax2::moe_experts_int8, "a few tokens through their top-k int8 SwiGLU experts, weighted -> [M, H]");
  m.def("moe_experts_bf16", &moe_experts_bf16, "a few tokens through their top-k bf16 SwiGLU experts, weighted -> [M, H]");
  m.def("decode_attention_bf16", &minimax2::decode_attention_bf16, "one-query-per-sequence attention over the paged bf16 cache");
  m.def("rms_norm_bf16", &minimax2::rms_norm_bf16, "RMSNorm of bf16 rows with a bf16 weight");
  m.def("add_rms_norm_bf16", &minimax2::add_rms_norm_bf16, "(h + delta, RMSNorm(h + delta)) for bf16 rows");
  m.def("gemv_int8", &minimax2::gemv_int8, "y = (x @ w.T) * scale for bf16 x [M <= 16, K], int8 w [N, K] (AVX512-VNNI)");
  m.def("gemv_int4", &minimax2::gemv_int4, "y = x @ w.T for bf16 x [M <= 16, K], int4pack w [N, K / 2] (AVX512-VNNI)");
  m.def("gemv_bf16", &gemv_bf16, "y = x @ w.T for bf16 x [M <= 16, K], w [N, K] (AVX512-BF16)");
  m.def("gemv_fp8", &minimax2::gemv_fp8, "y = x @ W.T for bf16 x [M <= 16, K], float8_e4m3fn w [N, K] with float32 128x128 block scales");
  m.def("fp8_dequantize_bf16", &minimax2::fp8_dequantize_bf16, "rows [r0, r1) of an fp8 block-scaled weight as bf16 (prefill tiles)");
  m.def("fp8_e4m3_to_bf16", &minimax2::fp8_e4m3_to_bf16, "float8_e4m3fn codes -> bf16 through the fp8 kernels' conversion");
  m.def("moe_experts_fp8", &minimax2::moe_experts_fp8, "a few tokens through their top-k fp8 SwiGLU experts (pointer tables), weighted -> [M, H]");
}
