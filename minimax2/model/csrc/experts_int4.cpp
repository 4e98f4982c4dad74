// Decode-sized MoE expert block on int4 weights: the per-expert torch code (gate/up product, silu,
// multiply, down product, all through aten::_weight_int4pack_mm_for_cpu) driven from C++ over the
// experts a batch routes to, then the weighted sum. The arithmetic is PyTorch's own, op for op, so
// results equal the Python loop's; what goes away is that loop's interpreter and module overhead,
// about 30 us per expert, most of a batch-1 int4 decode step's time beyond the weights.
#include <torch/extension.h>

#include "moe_groups.h"

namespace minimax2 {

// x [M, H] bf16; p13 [E, 2I, H / 2] and p2 [E, H, I / 2] packed by _convert_weight_to_int4pack_for_cpu;
// sz13 [E, H / group, 2I, 2] and sz2 [E, I / group, H, 2] scales and zeros; idx [M, k]; weights [M, k].
torch::Tensor moe_experts_int4(const torch::Tensor& x, const torch::Tensor& p13, const torch::Tensor& sz13,
                               const torch::Tensor& p2, const torch::Tensor& sz2, int64_t group,
                               const torch::Tensor& idx, const torch::Tensor& weights) {
  TORCH_CHECK(x.dim() == 2 && p13.dim() == 3 && p2.dim() == 3 && idx.dim() == 2 && idx.size(0) == x.size(0),
              "moe_experts_int4: x [M, H], p13 [E, 2I, H / 2], p2 [E, H, I / 2], idx [M, k]");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16, "moe_experts_int4: bf16 activations");
  const int64_t M = x.size(0), E = p13.size(0), H = x.size(1), I = p2.size(2) * 2;
  TORCH_CHECK(p2.size(0) == E && p2.size(1) == H && p13.size(1) == 2 * I && sz13.size(0) == E && sz2.size(0) == E,
              "moe_experts_int4: shapes disagree");
  const ExpertGroups grp(idx, E, "moe_experts_int4");
  const auto rows = torch::tensor(std::vector<int64_t>(grp.order.begin(), grp.order.end())).div(grp.k, "floor");
  const auto xs = x.index_select(0, rows);  // token rows in expert order
  auto ysorted = torch::empty({grp.pairs, H}, x.options());
  for (int64_t g = 0; g < grp.groups(); ++g) {
    const int64_t e = grp.gexp[g], q0 = grp.start[g], q1 = grp.start[g + 1];
    const auto gu = at::_weight_int4pack_mm_for_cpu(xs.slice(0, q0, q1), p13[e], group, sz13[e]);
    const auto h = at::silu(gu.slice(1, 0, I)) * gu.slice(1, I, 2 * I);
    ysorted.slice(0, q0, q1).copy_(at::_weight_int4pack_mm_for_cpu(h, p2[e], group, sz2[e]));
  }
  return grp.combine(ysorted.data_ptr<at::BFloat16>(), weights, M, H);
}

}  // namespace minimax2
