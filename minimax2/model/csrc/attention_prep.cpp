// Decode-step attention prologue in one call: split the fused qkv rows, QK-norm (one RMSNorm over the
// whole q and the whole k projection), partial half-split RoPE on q and k, and the k / v writes into
// the paged cache. It replaces ~40 small torch ops per layer, whose dispatch cost is a large share
// of a batch-1 decode step. Rounds where the torch code does: the norm as norm_row (rms_norm.h) does;
// RoPE as x * cos and rotate(x) * sin, each rounded, then their sum rounded.
#include <ATen/Parallel.h>

#include <vector>

#include "kernels.h"
#include "rms_norm.h"

namespace minimax2 {
namespace {

using bf16 = at::BFloat16;

inline float round_bf16(float v) { return static_cast<float>(bf16(v)); }

// Heads of `normed` rotated on their first rd dims into dst.
void rope_heads(const float* normed, const bf16* cos, const bf16* sin, bf16* dst, int64_t heads, int64_t D, int64_t rd) {
  const int64_t half = rd / 2;
  for (int64_t h = 0; h < heads; ++h) {
    const float* x = normed + h * D;
    bf16* o = dst + h * D;
    for (int64_t d = 0; d < rd; ++d) {
      const float rot = d < half ? -x[d + half] : x[d - half];
      o[d] = bf16(round_bf16(x[d] * static_cast<float>(cos[d])) + round_bf16(rot * static_cast<float>(sin[d])));
    }
    for (int64_t d = rd; d < D; ++d) o[d] = bf16(x[d]);
  }
}

}  // namespace

// qkv [T, (Hq + 2 Hkv) D] bf16; qw [Hq D], kw [Hkv D]; cos, sin [T, rd]; caches [S, Hkv, D]; slots [T].
// Returns q [T, Hq, D]; k and v land in the caches at `slots`.
at::Tensor attention_prep_bf16(const at::Tensor& qkv, const at::Tensor& qw, const at::Tensor& kw,
                                  const at::Tensor& cos, const at::Tensor& sin, double eps, int64_t Hq,
                                  at::Tensor k_cache, at::Tensor v_cache, const at::Tensor& slots) {
  TORCH_CHECK(qkv.dim() == 2 && k_cache.dim() == 3 && v_cache.sizes() == k_cache.sizes(),
              "attention_prep_bf16: qkv [T, (Hq + 2 Hkv) D], caches [S, Hkv, D]");
  const int64_t T = qkv.size(0), S = k_cache.size(0), Hkv = k_cache.size(1), D = k_cache.size(2);
  const int64_t qs = Hq * D, kvs = Hkv * D, rd = cos.size(-1);
  TORCH_CHECK(qkv.size(1) == qs + 2 * kvs && qw.numel() == qs && kw.numel() == kvs && cos.numel() == T * rd &&
              sin.numel() == T * rd && slots.numel() == T && rd % 2 == 0 && rd <= D, "attention_prep_bf16: shapes disagree");
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&qkv, &qw, &kw, &cos, &sin, &k_cache, &v_cache})
    TORCH_CHECK(t->scalar_type() == at::kBFloat16 && t->is_contiguous(), "attention_prep_bf16: contiguous bf16 only");
  const auto sl = slots.to(at::kLong).contiguous();
  const int64_t* sp = sl.data_ptr<int64_t>();
  for (int64_t t = 0; t < T; ++t) TORCH_CHECK(sp[t] >= 0 && sp[t] < S, "attention_prep_bf16: slot out of range");
  auto q = at::empty({T, Hq, D}, qkv.options());
  const auto* xp = qkv.data_ptr<bf16>();
  const auto *qwp = qw.data_ptr<bf16>(), *kwp = kw.data_ptr<bf16>(), *cp = cos.data_ptr<bf16>(), *snp = sin.data_ptr<bf16>();
  auto *qp = q.data_ptr<bf16>(), *kc = k_cache.data_ptr<bf16>(), *vc = v_cache.data_ptr<bf16>();
  const float e = static_cast<float>(eps);
  at::parallel_for(0, T, 4, [&](int64_t t0, int64_t t1) {
    std::vector<float> normed(qs);
    for (int64_t t = t0; t < t1; ++t) {
      const bf16* row = xp + t * (qs + 2 * kvs);
      norm_row(row, qwp, normed.data(), qs, e);
      rope_heads(normed.data(), cp + t * rd, snp + t * rd, qp + t * qs, Hq, D, rd);
      norm_row(row + qs, kwp, normed.data(), kvs, e);
      rope_heads(normed.data(), cp + t * rd, snp + t * rd, kc + sp[t] * kvs, Hkv, D, rd);
      std::copy(row + qs + kvs, row + qs + 2 * kvs, vc + sp[t] * kvs);
    }
  });
  return q;
}

}  // namespace minimax2
