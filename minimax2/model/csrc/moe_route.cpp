// M2's router for a few decode tokens in one call: sigmoid scores in float32, the top k of
// scores + e_score_correction_bias choose the experts, and the chosen experts' unbiased scores,
// renormalised to sum 1, weight them. Replaces eight small torch ops per layer. Experts come out
// in descending order of the biased score; ties go to the lower index.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>
#include <vector>

#include "kernels.h"

namespace minimax2 {

std::tuple<at::Tensor, at::Tensor> moe_route(const at::Tensor& logits, const at::Tensor& bias, int64_t k) {
  TORCH_CHECK(logits.dim() == 2 && bias.dim() == 1 && logits.size(1) == bias.size(0) && k >= 1 && k <= bias.size(0),
              "moe_route: logits [M, E], bias [E], 1 <= k <= E");
  const auto lf = logits.to(at::kFloat).contiguous();
  const auto bc = bias.to(at::kFloat).contiguous();  // a bf16 bias adds exactly as torch promotes it
  const int64_t M = logits.size(0), E = logits.size(1);
  auto idx = at::empty({M, k}, at::dtype(at::kLong));
  auto w = at::empty({M, k}, at::dtype(at::kFloat));
  const float *lp = lf.data_ptr<float>(), *bp = bc.data_ptr<float>();
  int64_t* ip = idx.data_ptr<int64_t>();
  float* wp = w.data_ptr<float>();
  std::vector<float> score(E), biased(E);
  std::vector<int64_t> order(E);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t e = 0; e < E; ++e) {
      score[e] = 1.0f / (1.0f + std::exp(-lp[m * E + e]));
      biased[e] = score[e] + bp[e];
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return biased[a] > biased[b] || (biased[a] == biased[b] && a < b); });
    float sum = 0.f;
    for (int64_t j = 0; j < k; ++j) sum += score[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      ip[m * k + j] = order[j];
      wp[m * k + j] = score[order[j]] / sum;
    }
  }
  return {idx, w};
}

}  // namespace minimax2
