#pragma once
// AutoReP's penalty schedule: the search adds lambda * max(0, density - budget / total), with
// density the fraction of ReLUs kept, and trains a fixed number of epochs. The hinge's
// gradient is lambda / total per kept ReLU while the count is above the budget and nothing once
// it is within: so the penalty weight (per ReLU) is switched at every step, lambda / total
// above the budget and 0 within it (from the second step on: the first has no count yet).
// Within the budget the task loss alone moves the masks, and entries it needs come back while
// others go; the hysteresis of the relaxation (relax/autorep.hpp) keeps this from chattering.
//
// lambda. AutoReP tunes it per network and budget (140 for ResNet18 on CIFAR-100 at 9K, 80 for
// WRN-22-8 at 80K, 240 for TinyImageNet). With lambda = 0 (the default) the search measures it
// (policy/weight_probe.hpp): `push` times the weight at which the penalty outweighs the task
// gradient of all but `budget` ReLUs, so that those the task needs least go first. The probe
// sees the network before any ReLU has gone; as they go, the rest matter more (measured on the
// unit test's network: at the probe's weight alone a 6-epoch search to 40 of 144 ReLUs stopped
// at 105), so each epoch that ends above the budget after the masks' crossing time multiplies
// the weight by `growth`. Overshooting costs little: within the budget the hinge lets go.
// Masks move `speed` times the optimizer's step (0: fast enough to cross from kept to the
// threshold in cross_fraction of the search; AutoReP's 200 epochs need no such help).
#include <linearize/policy/progress.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/policy/weight_probe.hpp>
#include <linearize/support/error.hpp>

#include <algorithm>
#include <cstdint>
#include <string>

namespace linearize::schedule {

struct density_hinge {
  using role = roles::scheduler;
  int64_t epochs = 10;        ///< the search trains this many epochs, whatever the count
  double lambda = 0;          ///< AutoReP's lambda (on the density); 0: measured (see the top)
  int64_t probe_batches = 8;  ///< batches the probe measures on
  double speed = 0;           ///< the masks' speed; 0: from cross_fraction
  double cross_fraction = 0.25;
  double push = 4;            ///< the measured weight times this (lambda = 0)
  double growth = 2;          ///< per epoch above the budget once masks could have crossed

  static constexpr const char* hinge_weight_key = "hinge_weight";  ///< the weight above the budget

  [[nodiscard]] std::string name() const { return "density_hinge"; }
  [[nodiscard]] int64_t max_epochs() const { return epochs; }
  [[nodiscard]] int64_t every_steps() const { return 1; }

  void start(scalars& state) const {
    require(epochs > 0 && lambda >= 0 && probe_batches > 0 && speed >= 0 && cross_fraction > 0 &&
                cross_fraction <= 1 && push > 0 && growth >= 1,
            "density_hinge: epochs ", epochs, " > 0, lambda ", lambda, " >= 0, probe_batches ",
            probe_batches, " > 0, speed ", speed, " >= 0, cross_fraction ", cross_fraction,
            " in (0, 1], push ", push, " > 0 and growth ", growth, " >= 1 expected");
    state.try_emplace(penalty_weight_key, 0.0);
    state.try_emplace(hinge_weight_key, 0.0);
  }
  /// A fresh search: the weight above the budget, lambda / total or the probe's.
  void start(scalars& state, const search_progress& p, const weight_probe& probe) const {
    start(state);
    require(p.total > 0, "density_hinge: a network without ReLUs");
    const double w = lambda > 0 ? lambda / static_cast<double>(p.total) : push * probe.weight_for(p.budget);
    state[hinge_weight_key] = w;
    state[penalty_weight_key] = p.count > p.budget ? w : 0.0;
  }
  void after_step(scalars& state, const search_progress& p) const {
    state[penalty_weight_key] = p.count > p.budget ? state.at(hinge_weight_key) : 0.0;
  }
  [[nodiscard]] bool after_epoch(scalars& state, const search_progress& p) const {
    if (lambda == 0 && p.count > p.budget && p.epochs_done() >= p.crossing_epochs)
      state.at(hinge_weight_key) *= growth;
    after_step(state, p);
    return p.epoch + 1 >= epochs;
  }
  [[nodiscard]] double mask_speed(const mask_travel& t) const {
    if (speed > 0) return speed;
    const double steps = cross_fraction * static_cast<double>(epochs * t.steps_per_epoch);
    return std::max(1.0, std::min(t.travel / (t.lr * steps), t.margin / t.lr));
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const density_hinge& p, F&& f) {
  f("epochs", p.epochs);
  f("lambda", p.lambda);
  f("probe_batches", p.probe_batches);
  f("speed", p.speed);
  f("cross_fraction", p.cross_fraction);
  f("push", p.push);
  f("growth", p.growth);
}

}  // namespace linearize::schedule
