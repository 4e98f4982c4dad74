// (token, expert) pairs of a routed batch, grouped by expert: shared by the expert blocks (experts_*.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <numeric>
#include <vector>

namespace minimax2 {

// Pairs p = m * k + j (token m, its j-th expert idx[m, j]) in stable expert order: order[q] is a pair;
// the pairs [start[g], start[g + 1]) share expert gexp[g]. Checks every index against E.
struct ExpertGroups {
  std::vector<int64_t> order, start, gexp;
  int64_t pairs = 0, k = 0;

  ExpertGroups(const at::Tensor& idx, int64_t E, const char* who) {
    const auto e_idx = idx.to(at::kLong).contiguous();
    const int64_t* ep = e_idx.data_ptr<int64_t>();
    k = idx.size(1);
    pairs = idx.numel();
    for (int64_t p = 0; p < pairs; ++p) TORCH_CHECK(ep[p] >= 0 && ep[p] < E, who, ": expert index out of range");
    order.resize(pairs);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ep[a] < ep[b]; });
    for (int64_t q = 0; q < pairs; ++q)
      if (q == 0 || ep[order[q]] != ep[order[q - 1]]) { start.push_back(q); gexp.push_back(ep[order[q]]); }
    start.push_back(pairs);
  }

  int64_t groups() const { return static_cast<int64_t>(gexp.size()); }
  int64_t token(int64_t q) const { return order[q] / k; }

  // out[m] = bf16(sum_j weights[m, j] * ys[pair (m, j)]), summed in j order in float32 like
  // (weights[:, :, None] * ys).sum(1).to(bf16); ysorted holds the pairs in expert order.
  at::Tensor combine(const at::BFloat16* ysorted, const at::Tensor& weights, int64_t M, int64_t H) const {
    TORCH_CHECK(weights.scalar_type() == at::kFloat && weights.dim() == 2 && weights.size(0) == M &&
                weights.size(1) == k, "expert block: weights must be float32 [M, k]");
    const auto wc = weights.contiguous();
    const float* wp = wc.data_ptr<float>();
    std::vector<int64_t> where(pairs);
    for (int64_t q = 0; q < pairs; ++q) where[order[q]] = q;
    std::vector<float> acc(H);
    auto out = at::empty({M, H}, at::dtype(at::kBFloat16));
    auto* op = out.data_ptr<at::BFloat16>();
    for (int64_t m = 0; m < M; ++m) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t j = 0; j < k; ++j) {
        const at::BFloat16* y = ysorted + where[m * k + j] * H;
        const float w = wp[m * k + j];
        for (int64_t c = 0; c < H; ++c) acc[c] += w * static_cast<float>(y[c]);
      }
      for (int64_t c = 0; c < H; ++c) op[m * H + c] = at::BFloat16(acc[c]);
    }
    return out;
  }
};

// An expert block's table of per-expert data pointers (int64 [E], built once at load; experts whose
// weights are separate tensors, e.g. views of a mapped checkpoint, are read in place through it).
inline const int64_t* pointer_table(const at::Tensor& t, int64_t E, const char* who, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kLong && t.dim() == 1 && t.size(0) == E && t.is_contiguous() &&
              t.device().is_cpu(), who, ": ", name, " must be a contiguous int64 CPU tensor [E]");
  return t.data_ptr<int64_t>();
}

}  // namespace minimax2
