// RMSNorm of a few bf16 rows (decode), alone or fused with the residual add before it: one call
// instead of about ten small ops. Each row through norm_row (rms_norm.h), which rounds where the
// torch code rounds; the residual sum is rounded to bf16 first, as torch's bf16 add does.
#include <immintrin.h>

#include <tuple>

#include "kernels.h"
#include "rms_norm.h"
#include "simd_bf16.h"

namespace minimax2 {
namespace {

// x [M, H] with unit column stride (its rows may be strided: q and k are column slices of the fused
// qkv rows) and a contiguous w [H], both bf16.
void check(const at::Tensor& x, const at::Tensor& w, const char* name) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 1 && x.size(1) == w.size(0), name, ": x [M, H], w [H]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16, name, ": bf16 only");
  TORCH_CHECK((x.stride(1) == 1 || x.size(1) == 1) && w.is_contiguous(), name, ": rows of x and w must be contiguous");
}

}  // namespace

at::Tensor rms_norm_bf16(const at::Tensor& x, const at::Tensor& w, double eps) {
  check(x, w, "rms_norm_bf16");
  const int64_t M = x.size(0), H = x.size(1), ld = x.stride(0);
  auto y = at::empty({M, H}, x.options());
  const auto* xp = x.data_ptr<at::BFloat16>();
  const auto* wp = w.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  for (int64_t m = 0; m < M; ++m) norm_row(xp + m * ld, wp, yp + m * H, H, static_cast<float>(eps));
  return y;
}

// (s, rms_norm(s)) with s = bf16(h + delta): the residual stream and the next sublayer's input.
std::tuple<at::Tensor, at::Tensor> add_rms_norm_bf16(const at::Tensor& h, const at::Tensor& delta,
                                                           const at::Tensor& w, double eps) {
  check(h, w, "add_rms_norm_bf16");
  check(delta, w, "add_rms_norm_bf16");
  TORCH_CHECK(h.sizes() == delta.sizes(), "add_rms_norm_bf16: h and delta must have the same shape");
  TORCH_CHECK(h.is_contiguous() && delta.is_contiguous(), "add_rms_norm_bf16: contiguous h and delta only");
  const int64_t M = h.size(0), H = h.size(1);
  auto s = at::empty_like(h);
  auto y = at::empty_like(h);
  const auto* hp = h.data_ptr<at::BFloat16>();
  const auto* dp = delta.data_ptr<at::BFloat16>();
  const auto* wp = w.data_ptr<at::BFloat16>();
  auto* sp = s.data_ptr<at::BFloat16>();
  auto* yp = y.data_ptr<at::BFloat16>();
  for (int64_t i = 0; i < M * H; i += 16) {
    const __mmask16 m = lanes_left(M * H - i);
    store16(sp + i, m, _mm512_add_ps(load16_as_float(hp + i, m), load16_as_float(dp + i, m)));
  }
  for (int64_t m = 0; m < M; ++m) norm_row(sp + m * H, wp, yp + m * H, H, static_cast<float>(eps));
  return {s, y};
}

}  // namespace minimax2
