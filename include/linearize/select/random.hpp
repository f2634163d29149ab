#pragma once
// The control every linearization method should beat: keep a uniformly random set of the
// currently active ReLUs, as many as the budget allows. Seeded through the stage context, so the
// same run seed gives the same mask.
#include <linearize/policy/roles.hpp>
#include <linearize/select/budget_fill.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace linearize::select {

struct random {
  using role = roles::selection;
  uint64_t seed = 0;  ///< mixed with the run's seed

  [[nodiscard]] std::string name() const { return "random"; }
  /// ctx.scores: current mask values (> 0: active); ctx.relus_per_entry; ctx.budget;
  /// ctx.seed(phase) -> uint64_t.
  template <class Context>
  [[nodiscard]] torch::Tensor select(const Context& ctx) const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(ctx.seed(0x7a5d0u ^ seed));
    const auto active = ctx.scores.to(torch::kCPU).gt(0);
    // Random keys for active entries, -1 for inactive ones: active entries come first.
    auto keys = torch::rand({ctx.scores.numel()}, gen, torch::kFloat);
    keys = torch::where(active, keys, torch::full_like(keys, -1));
    const auto order = std::get<1>(keys.sort(/*stable=*/true, 0, /*descending=*/true));
    return fill_budget(order, ctx.relus_per_entry, ctx.budget).logical_and(active);
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const random& p, F&& f) {
  f("seed", p.seed);
}

}  // namespace linearize::select
