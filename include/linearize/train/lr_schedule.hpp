#pragma once
// Learning-rate schedules as pure functions of the position in a run (epoch, step within the
// epoch). Nothing is stepped or accumulated, so a run resumed at any step gets exactly the
// learning rate an uninterrupted run had there.
#include <linearize/support/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <variant>
#include <vector>

namespace linearize::train {

/// The base learning rate throughout.
struct constant {};

/// base * gamma^(number of milestones <= epoch): PyTorch's MultiStepLR stepped once per epoch
/// (the baseline recipe: milestones {80, 120}, gamma 0.1).
struct multistep {
  std::vector<int64_t> milestones{};
  double gamma = 0.1;
};

/// Cosine annealing from the base rate to min_lr, updated every step. Its length is `epochs`
/// when given, else `total_steps` when given, else the whole run. After its end it stays at
/// min_lr (PyTorch's CosineAnnealingLR would rise again).
struct cosine {
  int64_t epochs = 0;
  int64_t total_steps = 0;
  double min_lr = 0;
};

using lr_schedule = std::variant<constant, multistep, cosine>;

/// Members for io/json.hpp (a checkpoint records the schedule: a resume under another is refused).
template <class F>
void json_fields(const constant&, F&& f) {
  f("kind", std::string("constant"));
}
template <class F>
void json_fields(const multistep& s, F&& f) {
  f("kind", std::string("multistep"));
  f("milestones", s.milestones);
  f("gamma", s.gamma);
}
template <class F>
void json_fields(const cosine& s, F&& f) {
  f("kind", std::string("cosine"));
  f("epochs", s.epochs);
  f("total_steps", s.total_steps);
  f("min_lr", s.min_lr);
}

/// Where a run stands, as a schedule sees it.
struct run_position {
  int64_t epoch = 0;            ///< 0-based
  int64_t step = 0;             ///< 0-based step within the epoch
  int64_t steps_per_epoch = 1;
  int64_t run_epochs = 1;       ///< the run's length, for schedules that span the whole run
};

inline void validate(const constant&, double) {}
inline void validate(const multistep& s, double) {
  require(std::isfinite(s.gamma) && s.gamma > 0, "multistep: gamma ", s.gamma,
          " must be positive");
  for (size_t i = 0; i < s.milestones.size(); ++i) {
    require(s.milestones[i] > 0, "multistep: milestone ", s.milestones[i],
            " must be a positive epoch");
    require(i == 0 || s.milestones[i] > s.milestones[i - 1], "multistep: milestones must be "
            "strictly increasing; ", s.milestones[i], " follows ", s.milestones[i - 1]);
  }
}
inline void validate(const cosine& s, double base_lr) {
  require(s.epochs >= 0 && s.total_steps >= 0, "cosine: length (epochs ", s.epochs,
          ", total_steps ", s.total_steps, ") must not be negative");
  require(s.epochs == 0 || s.total_steps == 0, "cosine: give epochs (", s.epochs,
          ") or total_steps (", s.total_steps, "), not both");
  require(s.min_lr >= 0 && s.min_lr <= base_lr, "cosine: min_lr ", s.min_lr,
          " must lie in [0, base lr ", base_lr, "]");
}
inline void validate(const lr_schedule& schedule, double base_lr) {
  std::visit([&](const auto& s) { validate(s, base_lr); }, schedule);
}

[[nodiscard]] inline double lr_at(const constant&, double base_lr, const run_position&) {
  return base_lr;
}

[[nodiscard]] inline double lr_at(const multistep& s, double base_lr, const run_position& at) {
  double lr = base_lr;
  for (int64_t m : s.milestones)
    if (at.epoch >= m) lr *= s.gamma;
  return lr;
}

[[nodiscard]] inline double lr_at(const cosine& s, double base_lr, const run_position& at) {
  require(at.steps_per_epoch > 0, "cosine: steps per epoch ", at.steps_per_epoch,
          " must be positive");
  const int64_t length = s.epochs > 0        ? s.epochs * at.steps_per_epoch
                         : s.total_steps > 0 ? s.total_steps
                                             : at.run_epochs * at.steps_per_epoch;
  require(length > 0, "cosine: schedule length is ", length, " steps; expected a positive length");
  const double t = std::min(
      1.0, static_cast<double>(at.epoch * at.steps_per_epoch + at.step) / static_cast<double>(length));
  return s.min_lr + (base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

/// The learning rate at `at` of a run whose base rate is `base_lr`.
[[nodiscard]] inline double lr_at(const lr_schedule& schedule, double base_lr,
                                  const run_position& at) {
  return std::visit([&](const auto& s) { return lr_at(s, base_lr, at); }, schedule);
}

}  // namespace linearize::train
