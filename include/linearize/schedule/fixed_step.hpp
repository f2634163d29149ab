#pragma once
// Coordinate descent's schedule: a fixed number of ReLUs (DRC) leaves the network per step, so
// going from B_ref to B_target takes exactly T = ceil((B_ref - B_target) / DRC) steps: the
// method's provable runtime.
#include <linearize/policy/roles.hpp>
#include <linearize/support/error.hpp>

#include <cstdint>
#include <string>

namespace linearize::schedule {

struct fixed_step {
  using role = roles::scheduler;
  int64_t drc = 100;  ///< ReLUs removed per step ("DRC" in the paper)

  [[nodiscard]] std::string name() const { return "fixed_step"; }
  [[nodiscard]] int64_t step_size() const {
    require(drc > 0, "fixed_step: drc ", drc, " must be positive");
    return drc;
  }
  /// Steps from `reference` ReLUs to at most `target`.
  [[nodiscard]] int64_t steps(int64_t reference, int64_t target) const {
    return reference <= target ? 0 : (reference - target + step_size() - 1) / step_size();
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const fixed_step& p, F&& f) {
  f("drc", p.drc);
}

}  // namespace linearize::schedule
