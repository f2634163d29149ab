#pragma once
// SNL's selection: a ReLU stays where the search left it kept, by the relaxation's own notion of
// kept (l1_mix: gate > its threshold, 0.01 by default; sigmoid_mask: gate > 1/2; hard_threshold:
// theta > its threshold), so the mask holds the count the search stopped at. That count may be
// below the budget. When the search ended above the budget, the kept entries with the lowest
// scores go until the rest fits (`enforce_budget`), so the budget is never silently exceeded;
// without it, run() refuses the result with an error. A fixed `threshold` on the relaxation's
// scores replaces the relaxation's notion of kept.
#include <linearize/policy/roles.hpp>
#include <linearize/select/budget_fill.hpp>

#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <string>

namespace linearize::select {

struct magnitude {
  using role = roles::selection;
  /// Empty: what the relaxation counts as kept (ctx.kept). Given: score > threshold.
  std::optional<double> threshold{};
  /// Above the budget, keep the highest-scored of the kept entries that fit it.
  bool enforce_budget = true;

  [[nodiscard]] std::string name() const { return "magnitude"; }
  /// ctx.kept: bool [E]; ctx.scores: float [E]; ctx.relus_per_entry: int64 [E]; ctx.budget.
  template <class Context>
  [[nodiscard]] torch::Tensor select(const Context& ctx) const {
    const auto kept = (threshold ? ctx.scores.gt(*threshold) : ctx.kept).to(torch::kCPU, torch::kBool);
    const auto per_entry = ctx.relus_per_entry.to(torch::kCPU, torch::kLong);
    if (!enforce_budget || per_entry.masked_select(kept).sum().template item<int64_t>() <= ctx.budget)
      return kept.clone();
    // Kept entries by score, highest first, then the rest (never chosen).
    const auto key = torch::where(kept, ctx.scores.to(torch::kCPU, torch::kFloat),
                                  torch::full({kept.numel()}, -INFINITY, torch::kFloat));
    const auto order = std::get<1>(key.sort(/*stable=*/true, 0, /*descending=*/true));
    return fill_budget(order, per_entry, ctx.budget).logical_and(kept);
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const magnitude& p, F&& f) {
  f("threshold", p.threshold);
  f("enforce_budget", p.enforce_budget);
}

}  // namespace linearize::select
