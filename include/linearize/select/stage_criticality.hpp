#pragma once
// DeepReDuce as a selection rule of the pipeline:
//
//   auto deepreduce = linearize::pipeline(
//       linearize::select::stage_criticality{.mode = select::criticality_mode::finetune, .epochs = 1},
//       linearize::schedule::stagewise{.step_epochs = 2},
//       linearize::finetune::distill{.epochs = 10});
//
// 1. Criticality (criticality.hpp): stages ranked by the accuracy each reaches per ReLU it
//    holds, least critical first; a given `ranking` skips the measurement.
// 2. Plan (deepreduce_plan.hpp): culling and thinning steps to the budget, reported (stderr and
//    deepreduce_report::plan) before any step runs.
// 3. Steps: each step's mask is applied, the test accuracy taken, and the pipeline's finetune
//    policy distils for the scheduler's `step_epochs`; deepreduce_report::steps holds each
//    step's count and accuracies. run() then finetunes the final network (the finetune policy's
//    epochs). stage_report::finetune_epochs and images_forwarded include the criticality and
//    step phases; result.history has their epochs as phases "criticality_<stage>" and "step<i>".
// Reshaping changes the architecture, so run() never does it: a budget culling and thinning
// cannot reach is an error before any training; plan_deepreduce with reshape options
// (deepreduce_reshape.hpp) says which network to build instead.
#include <linearize/policy/concepts/scheduler.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/policy/selected.hpp>
#include <linearize/select/criticality.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/select/deepreduce_report.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/format.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <string>
#include <utility>
#include <vector>

namespace linearize::select {

struct stage_criticality {
  using role = roles::selection;
  /// Steps by a stage-wise scheduler (ctx.scheduler; schedule::stagewise when none is named).
  static constexpr scheduler_kind steps_by = scheduler_kind::stage;

  criticality_mode mode = criticality_mode::finetune;
  int64_t epochs = 1;  ///< per stage, in finetune and train modes
  criticality_score score = criticality_score::accuracy_per_relu;
  double train_lr = 0.05;
  /// Stages least critical first; given, no measurement is made (e.g. the paper's ResNet18
  /// ranking {"stem", "layer1", "layer4", "layer2", "layer3"}).
  std::vector<std::string> ranking{};
  thinning thin = thinning::keep_even;
  std::size_t keep_stages = 2;   ///< the most critical stages are never culled
  bool partial_thinning = true;  ///< thin stage by stage; false: all remaining stages at once

  [[nodiscard]] std::string name() const { return "stage_criticality"; }

  [[nodiscard]] criticality_options measurement() const {
    return {.mode = mode, .epochs = epochs, .score = score, .train_lr = train_lr};
  }
  template <class Scheduler>
  [[nodiscard]] plan_settings settings(const Scheduler& schedule) const {
    return {.thin = thin,
            .keep_stages = keep_stages,
            .partial_thinning = partial_thinning,
            .allow_reshape = false,
            .cull_per_step = schedule.cull_per_step,
            .thin_per_step = schedule.thin_per_step};
  }

  /// Refuses settings and budgets that must fail, before anything is evaluated or trained
  /// (run() calls it for a run's first stage before the baseline evaluation, select() again).
  template <class Scheduler>
  void preflight(const MaskSet& masks, int64_t budget, const Scheduler& schedule) const {
    require(keep_stages > 0, "stage_criticality: keep_stages = 0 would let every stage be culled; expected >= 1");
    require(schedule.step_epochs >= 0, "stage_criticality: step_epochs ", schedule.step_epochs,
            " must not be negative");
    const int64_t floor = fewest_reachable(masks.per_slot(), settings(schedule));
    require(budget >= floor, "stage_criticality: budget of ", grouped(budget), " ReLUs is below ",
            grouped(floor), ", the fewest that culling and thinning reach on this network (keep_stages = ",
            keep_stages, "); run() does not reshape (that changes the architecture): plan with reshape "
            "options (select::plan_deepreduce, select/deepreduce_reshape.hpp), build the reshaped network and "
            "run on it, or raise the budget");
  }

  /// Measures (unless `ranking` is given), plans and takes the steps; returns the final mask
  /// and what it found.
  template <class Context>
  [[nodiscard]] selected<deepreduce_report> select(Context& ctx) const {
    const auto& schedule = ctx.scheduler;
    preflight(ctx.masks, ctx.budget, schedule);
    const auto config = settings(schedule);

    auto* out = detail::report_stream(ctx);
    deepreduce_report found;
    std::vector<std::string> order = ranking;
    if (order.empty()) {
      found.criticality = measure_stage_criticality(ctx, measurement());
      order = rank_stages(found.criticality);
      if (out) *out << describe_criticality(found.criticality) << std::flush;
    } else {
      for (const auto& stage : ctx.masks.per_stage())
        found.criticality.push_back({.name = stage.name, .relus = stage.active});
      for (auto& row : found.criticality) {
        const auto it = std::find(order.begin(), order.end(), row.name);
        if (it != order.end()) row.rank = static_cast<size_t>(it - order.begin());
      }
    }

    const auto plan = plan_deepreduce(ctx.masks.per_slot(), order, ctx.budget, config);
    found.plan = plan.describe();
    if (out) *out << found.plan << std::flush;

    for (size_t i = 0; i < plan.mask_steps(); ++i) {
      ctx.masks.harden(plan_mask(ctx.masks, plan, i + 1));
      step_report step{.name = plan.steps[i].describe(), .relu_count = ctx.masks.relu_count()};
      require(step.relu_count == plan.steps[i].relu_count, "stage_criticality: step ", i + 1, " left ",
              step.relu_count, " ReLUs, the plan said ", plan.steps[i].relu_count);
      step.test_accuracy_selected = ctx.test_accuracy();
      step.finetune_epochs = ctx.finetune(schedule.step_epochs, "step" + std::to_string(i + 1)).epochs;
      step.test_accuracy_finetuned = ctx.test_accuracy();
      if (ctx.data.held_out.size() > 0) step.held_out_accuracy_finetuned = ctx.accuracy(ctx.data.held_out);
      if (out)
        *out << "step " << i + 1 << " (" << step.name << "): " << grouped(step.relu_count) << " ReLUs, test "
             << std::fixed << std::setprecision(2) << 100 * step.test_accuracy_selected << "% -> "
             << 100 * step.test_accuracy_finetuned << "% after " << step.finetune_epochs << " epochs of KD\n"
             << std::defaultfloat << std::flush;
      found.steps.push_back(step);
    }
    return {ctx.masks.binary(), std::move(found)};
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const stage_criticality& p, F&& f) {
  f("mode", to_string(p.mode));
  f("epochs", p.epochs);
  f("score", std::string(p.score == criticality_score::accuracy ? "accuracy" : "accuracy_per_relu"));
  f("train_lr", p.train_lr);
  f("ranking", p.ranking);
  f("thin", to_string(p.thin));
  f("keep_stages", p.keep_stages);
  f("partial_thinning", p.partial_thinning);
}

}  // namespace linearize::select
