#pragma once
// A user's selection rule in one file: the same share of the budget in every layer. Each slot
// keeps its highest-scored entries until it holds budget / total of its own ReLUs, so no layer
// is emptied (a uniform baseline between random selection and a global top-k). It reads only
// what the stage context offers every selection (scores, ReLUs per entry, the budget, the
// masks' layout) and returns the binary mask; linearize::selection_policy checks it at
// pipeline().
#include <linearize/policy/roles.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace user_policies {

struct per_layer_quota {
  using role = linearize::roles::selection;

  [[nodiscard]] std::string name() const { return "per_layer_quota"; }

  template <class Context>
  [[nodiscard]] torch::Tensor select(const Context& ctx) const {
    const auto scores = ctx.scores.to(torch::kCPU, torch::kFloat);
    const auto relus = ctx.relus_per_entry.to(torch::kCPU, torch::kLong);
    const double share = static_cast<double>(ctx.budget) / static_cast<double>(ctx.masks.total_relus());
    auto keep = torch::zeros({scores.numel()}, torch::kBool);
    for (size_t i = 0; i < ctx.masks.size(); ++i) {
      const int64_t begin = ctx.masks.offset(i), end = ctx.masks.offset(i + 1);
      const auto order = std::get<1>(scores.slice(0, begin, end).sort(/*stable=*/true, 0, /*descending=*/true));
      const auto cost = relus.slice(0, begin, end).index_select(0, order).cumsum(0);
      const double quota = share * static_cast<double>(ctx.masks[i].total_relus());
      keep.slice(0, begin, end).index_put_({order}, cost.le(static_cast<int64_t>(quota)));
    }
    return keep;
  }
};

}  // namespace user_policies
