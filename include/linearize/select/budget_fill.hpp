#pragma once
// Filling a ReLU budget in order of preference: entries are kept, most wanted first, while the
// ReLUs they hold fit the budget. top_k (by score) and random (by a random key) differ only in
// the order.
#include <torch/torch.h>

#include <cstdint>

namespace linearize::select {

/// bool [entries]: the entries `order` lists first whose running ReLU total (relus_per_entry,
/// int64 [entries]) stays within `budget`. `order` is a permutation of the entries.
[[nodiscard]] inline torch::Tensor fill_budget(const torch::Tensor& order,
                                               const torch::Tensor& relus_per_entry, int64_t budget) {
  const auto cost = relus_per_entry.to(torch::kCPU).index_select(0, order).cumsum(0);
  auto keep = torch::zeros({relus_per_entry.numel()}, torch::kBool);
  keep.index_put_({order}, cost.le(budget));
  return keep;
}

}  // namespace linearize::select
