// (token, expert) pairs of a routed batch, grouped by expert: shared by the bf16 and int8 expert blocks.
#pragma once
#include <torch/extension.h>

#include <algorithm>
#include <numeric>
#include <vector>

namespace minimax2 {

// Pairs p = m * k + j (token m, its j-th expert idx[m, j]) in stable expert order: order[q] is a pair;
// the pairs [start[g], start[g + 1]) share expert gexp[g]. Checks every index against E.
struct ExpertGroups {
  std::vector<int64_t> order, start, gexp;
  int64_t pairs = 0, k = 0;

  ExpertGroups(const torch::Tensor& idx, int64_t E, const char* who) {
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
};

}  // namespace minimax2
