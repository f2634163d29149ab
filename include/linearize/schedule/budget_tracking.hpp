#pragma once
// A faster alternative to SNL's lasso_growth: the ReLU count follows a planned path from where
// the search starts down to the budget within a given number of epochs, and every few steps the
// penalty weight is corrected multiplicatively by how far the count is off the path. The path is
// log-linear (counts fall over orders of magnitude) and reaches the budget at `plan_fraction` of
// the epochs, leaving the rest for the network to adapt at the budget.
//
// Dead time. The count only moves once masks cross the relaxation's threshold, which under Adam
// takes about 1 / (lr * step_scale) steps after the weight became large enough; corrections made
// meanwhile all push the same way and wind the weight up. Measured on ResNet18-IN (width 16,
// Fashion-MNIST, step_scale 10): with max_change 2 the weight grew ~50x in one epoch and the
// count fell from 94,000 to 4,300 against a plan of 9,600 (to 1% it then oscillated and
// collapsed); with max_change 1.1 and lambda0 = 3e-4 (about where this network's count starts to
// move) it came down 96,000 -> 19,700 -> 6,900 -> 4,000 for a budget of 4,800. Start lambda0
// near that point for your network and keep max_change small; the defaults suit long searches.
//
// Saturation (anti-windup). Past some weight the count stops falling: with l1_mix under Adam,
// gates pushed to zero jitter by about lr * step_scale around it, and with step_scale 10 that is
// the 0.01 threshold itself, so a floor of entries keeps crossing it however large the weight
// grows. Measured (45 planned epochs to 3%, ResNet18-IN width 16): the count stalled near 4,000,
// the weight then doubled every epoch up to 17, every gate collapsed to the jitter, accuracy fell
// from 86% to 68% during the search and top_k had only noise left to choose from (74.7% after
// finetuning). So once the count has responded, the weight may exceed the weight of the latest
// new minimum count by at most `windup_limit`; and once the plan has reached the budget, an
// epoch without a new minimum at that cap ends the search (the selection rule takes it from
// there, with the gates still informative). Same run: windup_limit 4 -> 83.21%, 2 -> 85.23%
// (SNL's lasso_growth at about the same compute: 86.89%); 3-epoch plans were unaffected.
#include <linearize/pipeline/progress.hpp>
#include <linearize/pipeline/roles.hpp>
#include <linearize/support/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace linearize::schedule {

struct budget_tracking {
  using role = roles::scheduler;
  int64_t epochs = 10;          ///< planned length of the search
  double plan_fraction = 0.8;   ///< the path reaches the budget at this fraction of `epochs`
  double lambda0 = 1e-5;
  int64_t check_every = 10;     ///< steps between corrections
  double gain = 2.0;            ///< correction = exp(gain * log(count / target)), clipped
  double max_change = 2.0;      ///< per correction, the weight changes by at most this factor
  int64_t overtime = 2;         ///< epochs allowed beyond `epochs` before giving up
  /// Once the count has responded (fallen 10% below the start), the weight stays within this
  /// factor of the weight at the latest new minimum count (a new minimum: 1% below the last).
  double windup_limit = 2.0;

  // Scalars kept with the penalty weight (saved with the search's checkpoint).
  static constexpr const char* min_count_key = "tracking_min_count";
  static constexpr const char* weight_at_min_key = "tracking_weight_at_min";
  static constexpr const char* min_epoch_key = "tracking_min_epoch";

  [[nodiscard]] std::string name() const { return "budget_tracking"; }
  [[nodiscard]] int64_t max_epochs() const { return epochs + overtime; }
  [[nodiscard]] int64_t every_steps() const { return check_every; }

  void start(scalars& state) const {
    require(epochs > 0 && plan_fraction > 0 && plan_fraction <= 1 && lambda0 > 0 &&
                check_every > 0 && gain > 0 && max_change > 1 && windup_limit > 1,
            "budget_tracking: epochs ", epochs, " > 0, plan_fraction ", plan_fraction,
            " in (0, 1], lambda0 ", lambda0, " > 0, check_every ", check_every, " > 0, gain ",
            gain, " > 0, max_change ", max_change, " > 1, windup_limit ", windup_limit,
            " > 1 expected");
    state.try_emplace(penalty_weight_key, lambda0);
  }

  /// The planned count after `progress_epochs` (fractional) epochs.
  [[nodiscard]] double target(const search_progress& p, double progress_epochs) const {
    const double t = std::clamp(progress_epochs / (plan_fraction * static_cast<double>(epochs)), 0.0, 1.0);
    const double from = std::log(std::max<double>(1, static_cast<double>(p.start_count)));
    const double to = std::log(std::max<double>(1, static_cast<double>(p.budget)));
    return std::exp(from + (to - from) * t);
  }

  void after_step(scalars& state, const search_progress& p) const {
    const double done = static_cast<double>(p.epoch) +
                        static_cast<double>(p.step + 1) / static_cast<double>(p.steps_per_epoch);
    const double off = std::log(std::max<double>(1, static_cast<double>(p.count)) / target(p, done));
    const double change = std::clamp(std::exp(gain * off), 1 / max_change, max_change);
    auto& w = state[penalty_weight_key];
    auto& min_count = state.try_emplace(min_count_key, static_cast<double>(p.start_count)).first->second;
    auto& weight_at_min = state.try_emplace(weight_at_min_key, w).first->second;
    if (static_cast<double>(p.count) < 0.99 * min_count) {
      min_count = static_cast<double>(p.count);
      weight_at_min = w;
      state[min_epoch_key] = static_cast<double>(p.epoch);
    }
    w = std::clamp(w * change, 1e-12, 1e3);
    if (responded(state, p)) w = std::min(w, weight_at_min * windup_limit);
  }

  [[nodiscard]] bool after_epoch(scalars& state, const search_progress& p) const {
    return p.count <= p.budget || p.epoch + 1 >= max_epochs() || saturated(state, p);
  }

  /// Whether the count has fallen 10% below where the search started (the weight works).
  [[nodiscard]] bool responded(const scalars& state, const search_progress& p) const {
    const auto it = state.find(min_count_key);
    return it != state.end() && it->second < 0.9 * static_cast<double>(p.start_count);
  }

  /// At the end of epoch p.epoch: the plan has reached the budget, the weight sits at its cap,
  /// and the whole epoch brought no new minimum count.
  [[nodiscard]] bool saturated(const scalars& state, const search_progress& p) const {
    const auto w = state.find(penalty_weight_key), w_min = state.find(weight_at_min_key),
               e_min = state.find(min_epoch_key);
    if (!responded(state, p) || w == state.end() || w_min == state.end() || e_min == state.end())
      return false;
    const bool plan_done = static_cast<double>(p.epoch + 1) >= plan_fraction * static_cast<double>(epochs);
    const bool at_cap = w->second >= w_min->second * windup_limit * (1 - 1e-9);
    return plan_done && at_cap && e_min->second < static_cast<double>(p.epoch);
  }
};

}  // namespace linearize::schedule
