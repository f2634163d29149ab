#pragma once
// Keeps the entries with the largest scores until the budget is used: with element masks the
// count equals the budget exactly; with coarser masks it is the largest count within it. Ties go
// to the lower flat index, so the result is deterministic.
#include <linearize/policy/roles.hpp>
#include <linearize/select/budget_fill.hpp>

#include <torch/torch.h>

#include <string>

namespace linearize::select {

struct top_k {
  using role = roles::selection;

  [[nodiscard]] std::string name() const { return "top_k"; }
  /// ctx.scores: float [E]; ctx.relus_per_entry: int64 [E]; ctx.budget: ReLUs to keep.
  template <class Context>
  [[nodiscard]] torch::Tensor select(const Context& ctx) const {
    const auto order = std::get<1>(ctx.scores.to(torch::kCPU).sort(/*stable=*/true, 0, /*descending=*/true));
    return fill_budget(order, ctx.relus_per_entry, ctx.budget);
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const top_k&, F&&) {}  // no settings

}  // namespace linearize::select
