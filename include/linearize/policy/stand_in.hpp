#pragma once
// Stand-ins for checking a policy against its concept before it runs (as mp-units checks its
// concepts against archetypes): a finetune policy and a scheduler that offer every member a
// policy may ask of them, and the stage context built on the two. A selection whose select() or
// a finetune whose run() cannot take this context fails at pipeline(), with the message, rather
// than deep inside run(). Nothing here runs.
#include <linearize/policy/progress.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/policy/stage_context.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace linearize::stand_in {

struct finetune {
  using role = roles::finetune;
  int64_t epochs = 0;
  [[nodiscard]] std::string name() const { return "stand_in_finetune"; }
  template <class Context>
  finetune_outcome run(Context&, int64_t, const std::string&) const { return {}; }
};

/// Every kind of scheduler at once: penalty, step and stage-wise.
struct scheduler {
  using role = roles::scheduler;
  std::size_t cull_per_step = 1;
  std::size_t thin_per_step = 0;
  int64_t step_epochs = 0;
  [[nodiscard]] std::string name() const { return "stand_in_scheduler"; }
  void start(scalars&) const {}
  [[nodiscard]] bool after_epoch(scalars&, const search_progress&) const { return true; }
  [[nodiscard]] int64_t max_epochs() const { return 1; }
  [[nodiscard]] int64_t step_size() const { return 1; }
  [[nodiscard]] int64_t steps(int64_t, int64_t) const { return 0; }
};

using context = stage_context<finetune, scheduler>;

}  // namespace linearize::stand_in
