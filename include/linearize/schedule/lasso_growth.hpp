#pragma once
// SNL's budget schedule: the penalty weight lambda starts at 1e-5; after every epoch the ReLU
// count is taken; a new minimum is remembered, otherwise (from epoch 5 on) lambda grows by 1.1.
// The search stops as soon as the count is within the budget, or at the epoch cap (2000).
// Published behaviour: CIFAR-100 ResNet18 needs 421 epochs to reach 15K ReLUs.
#include <linearize/policy/progress.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/support/error.hpp>

#include <cstdint>
#include <limits>
#include <string>

namespace linearize::schedule {

struct lasso_growth {
  using role = roles::scheduler;
  double lambda0 = 1e-5;
  double factor = 1.1;
  int64_t grow_from_epoch = 5;  ///< 0-based: epochs 0..4 never grow lambda
  int64_t epoch_cap = 2000;

  [[nodiscard]] std::string name() const { return "lasso_growth"; }
  [[nodiscard]] int64_t max_epochs() const { return epoch_cap; }

  void start(scalars& state) const {
    require(lambda0 > 0 && factor > 1 && epoch_cap > 0, "lasso_growth: lambda0 ", lambda0,
            " must be > 0, factor ", factor, " > 1 and epoch_cap ", epoch_cap, " > 0");
    state.try_emplace(penalty_weight_key, lambda0);
    state.try_emplace("best_count", std::numeric_limits<double>::infinity());
  }

  [[nodiscard]] bool after_epoch(scalars& state, const search_progress& p) const {
    if (p.count <= p.budget) return true;
    auto& best = state["best_count"];
    if (static_cast<double>(p.count) < best)
      best = static_cast<double>(p.count);
    else if (p.epoch >= grow_from_epoch)
      state[penalty_weight_key] *= factor;
    return p.epoch + 1 >= epoch_cap;
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const lasso_growth& p, F&& f) {
  f("lambda0", p.lambda0);
  f("factor", p.factor);
  f("grow_from_epoch", p.grow_from_epoch);
  f("epoch_cap", p.epoch_cap);
}

}  // namespace linearize::schedule
