#pragma once
// DeepReDuce's schedule: the network shrinks in whole steps, culling first, then thinning, then
// (outside run(), since it changes the architecture) reshaping, with knowledge distillation after
// every step so that each step starts from a network that has recovered from the previous one.
// It decides how many steps the plan takes: how many stages one culling step removes and how
// many stages one thinning step thins. The pipeline's finetune policy then finetunes the final
// network (its epochs); `step_epochs` is the shorter distillation after each step.
#include <linearize/policy/roles.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace linearize::schedule {

struct stagewise {
  using role = roles::scheduler;
  std::size_t cull_per_step = 1;  ///< stages culled per step; 0: all culling in one step
  std::size_t thin_per_step = 0;  ///< stages thinned per step; 0: all thinning in one step
  int64_t step_epochs = 2;        ///< distillation epochs after every step (0: none)

  [[nodiscard]] std::string name() const { return "stagewise"; }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const stagewise& p, F&& f) {
  f("cull_per_step", p.cull_per_step);
  f("thin_per_step", p.thin_per_step);
  f("step_epochs", p.step_epochs);
}

}  // namespace linearize::schedule
