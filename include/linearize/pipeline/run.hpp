#pragma once
// run(method, model, teacher, data, budget): executes a pipeline stage or a chain of them.
//
// One stage:  [mask search]  ->  selection  ->  binarize  ->  finetune
//   - with a relaxation, the mask search trains weights and masks (mask_search.hpp) and the
//     selection reads the relaxation's scores; without one, the selection starts from the
//     network's current mask (scores = current mask values);
//   - the selection's binary mask is applied (every slot hard), the test accuracy is taken, and
//     the finetune policy recovers what binarization lost.
// A chain runs its stages in order, each on the binary mask the previous one left; each stage
// aims at the run's budget unless options.stage_budgets gives the first stages their own.
// The stage's scheduler reaches its policies through the context (ctx.scheduler): search-based
// selection rules such as coordinate descent step by it.
// A stage whose network is already within the budget changes nothing.
// Every phase checkpoints into options.work_dir: calling run() again resumes a killed run.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/pipeline/budget.hpp>
#include <linearize/pipeline/chain.hpp>
#include <linearize/pipeline/mask_search.hpp>
#include <linearize/pipeline/run_types.hpp>
#include <linearize/pipeline/stage_context.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/evaluate.hpp>

#include <boost/hana.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <type_traits>

namespace linearize {

namespace detail {

/// The scheduler a stage's policies see: the one given; else lasso_growth{} for a mask search;
/// else the default a selection rule that works in steps names (`default_scheduler`:
/// DeepReDuce's stagewise); else fixed_step{} (coordinate descent's DRC of 100).
template <class Stage>
constexpr auto stage_scheduler(const Stage& stage) {
  using S = std::remove_cvref_t<decltype(stage.selection())>;
  if constexpr (Stage::has_relaxation)
    return stage.scheduler();
  else if constexpr (requires { typename S::default_scheduler; })
    return stage.scheduler_or(typename S::default_scheduler{});
  else
    return stage.scheduler_or(schedule::fixed_step{});
}

template <class Stage>
void run_stage(const Stage& stage, size_t index, NetworkImpl& net, const Network& teacher,
               const run_data& data, const run_options& options, int64_t budget_count,
               run_result& result) {
  const auto start = std::chrono::steady_clock::now();
  stage_report report;
  report.name = stage.name();
  report.budget = budget_count;
  stage_context ctx(net, teacher, data, options, index, budget_count, stage.finetune(),
                    stage_scheduler(stage), result, report);
  report.relu_count_before = ctx.masks.relu_count();
  ctx.relus_per_entry = ctx.masks.relus_per_entry();
  if (report.relu_count_before <= budget_count) {
    // Already within the budget: nothing to linearize, so the network stays as it is (its
    // current mask becomes hard).
    ctx.masks.harden(ctx.masks.binary());
    report.relu_count = report.relu_count_before;
    report.budget_met = true;
    report.test_accuracy_selected = report.test_accuracy_finetuned = ctx.accuracy(data.test);
    result.stages.push_back(report);
    return;
  }

  if constexpr (Stage::has_relaxation) {
    const auto relax = stage.relaxation();
    const auto history = mask_search(relax, stage.scheduler(), ctx);
    for (const auto& r : history.rows) {
      const auto count = r.values.find("relu_count");
      ctx.add_history({.phase = "search",
                       .epoch = r.epoch,
                       .penalty_weight = r.values.count(penalty_weight_key) ? r.values.at(penalty_weight_key) : NAN,
                       .relu_count = count == r.values.end() ? 0 : static_cast<int64_t>(count->second),
                       .loss = r.train_loss,
                       .train_accuracy = r.train_top1,
                       .held_out_accuracy = r.eval ? r.eval->top1 : NAN,
                       .seconds = r.seconds});
      ctx.count_images(data.train.size());
    }
    report.search_epochs = static_cast<int64_t>(history.rows.size());
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    for (size_t i = 0; i < ctx.masks.size(); ++i)
      parts.push_back(relax.score(ctx.masks[i].mask()).detach().reshape({-1}).to(torch::kCPU, torch::kFloat));
    ctx.scores = torch::cat(parts);
  } else {
    ctx.scores = ctx.masks.values();
  }

  const torch::Tensor binary = stage.selection().select(ctx);
  require(binary.dim() == 1 && binary.numel() == ctx.masks.entries(), "selection '",
          stage.selection().name(), "' returned a mask of shape ", binary.sizes(), "; expected [",
          ctx.masks.entries(), "]");
  ctx.masks.harden(binary.to(torch::kBool));
  report.relu_count = ctx.masks.relu_count();
  report.budget_met = report.relu_count <= budget_count;
  report.test_accuracy_selected = ctx.accuracy(data.test);
  ctx.finetune(stage.finetune().epochs, "finetune");
  report.test_accuracy_finetuned = ctx.accuracy(data.test);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.stages.push_back(report);
}

}  // namespace detail

/// Runs `m` (a pipeline stage or a chain) on `net`, distilling from `teacher` (a frozen copy of
/// the original network; null: no distillation), until the network holds at most `b` ReLUs.
template <method Method>
run_result run(const Method& m, const Network& net, const Network& teacher, const run_data& data,
               const budget& b, const run_options& options = {}) {
  require(net != nullptr, "run: the network is null");
  require(teacher == nullptr || teacher.get() != net.get(),
          "run: the teacher is the network being linearized; give a copy (net->copy())");
  for (const auto* part : {&data.train, &data.test}) part->validate();
  require(data.train.size() > 0 && data.test.size() > 0, "run: training set (", data.train.size(),
          " samples) and test set (", data.test.size(), " samples) must not be empty");
  if (data.held_out.size() > 0) data.held_out.validate();
  if (!options.work_dir.empty()) std::filesystem::create_directories(options.work_dir);
  // KD reads a frozen copy: the caller's teacher stays as it was (often it is the baseline that
  // the next run copies its student from, and a frozen baseline would give frozen students).
  Network frozen_teacher = teacher ? teacher->copy() : nullptr;
  if (frozen_teacher) freeze(*frozen_teacher);

  const auto start = std::chrono::steady_clock::now();
  run_result result;
  result.method = m.name();
  const MaskSet masks(*net);
  result.total_relus = masks.total_relus();
  result.budget = b.resolve(result.total_relus);
  result.baseline_test_accuracy = train::evaluate(*net, data.test, options.eval_batch_size).top1;

  constexpr size_t stage_count = decltype(boost::hana::size(stages_of(m)))::value;
  require(options.stage_budgets.size() < stage_count,
          "run: ", options.stage_budgets.size(), " stage budgets for a method of ", stage_count,
          " stage(s); expected fewer budgets than stages (the last stage takes the run's budget)");
  std::vector<int64_t> stage_budget;
  for (const auto& sb : options.stage_budgets) stage_budget.push_back(sb.resolve(result.total_relus));
  size_t index = 0;
  boost::hana::for_each(stages_of(m), [&](const auto& stage) {
    const int64_t target = index < stage_budget.size() ? stage_budget[index] : result.budget;
    detail::run_stage(stage, index, *net, frozen_teacher, data, options, target, result);
    ++index;
  });

  result.mask = masks.binary();
  result.relu_count = masks.relu_count();
  result.per_slot = masks.per_slot();
  result.test_accuracy_before_finetune = result.stages.back().test_accuracy_selected;
  result.test_accuracy_after_finetune = result.stages.back().test_accuracy_finetuned;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace linearize
