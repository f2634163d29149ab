#pragma once
// run(method, model, teacher, data, budget): executes a pipeline stage or a chain of them.
//
// One stage:  [mask search]  ->  selection  ->  binarize  ->  finetune
//   - with a relaxation, the mask search trains weights and masks (mask_search.hpp) and the
//     selection reads the relaxation's scores and kept set; without one, the selection starts
//     from the network's current mask (scores = current mask values);
//   - the selection's binary mask is applied (every slot hard), the test accuracy is taken, and
//     the finetune policy recovers what binarization lost. A mask above the stage's budget is
//     an error: run() never returns with the budget silently missed.
// A chain runs its stages in order, each on the binary mask the previous one left; each stage
// aims at the run's budget unless options.stage_budgets gives the first stages their own.
// The stage's scheduler reaches its policies through the context (ctx.scheduler): search-based
// selection rules such as coordinate descent step by it.
// A stage whose network is already within the budget changes nothing.
// Policies return what they found (a mask, their own report, a finetune outcome); this file
// assembles the stage's report from those and from what the stage context counted.
// Every phase checkpoints into options.work_dir: calling run() again resumes a killed run, and
// the directory's record of the run's settings (run_settings.hpp) refuses a run with others.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/pipeline/chain.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/pipeline/mask_search.hpp>
#include <linearize/pipeline/run_settings.hpp>
#include <linearize/policy/budget.hpp>
#include <linearize/policy/concepts/finetune.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/policy/selected.hpp>
#include <linearize/policy/stage_context.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/evaluate.hpp>

#include <boost/hana/for_each.hpp>
#include <boost/hana/front.hpp>
#include <boost/hana/size.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace linearize {

namespace detail {

/// The binary mask of what select() returned; a selection's own report goes to `report`.
template <class Output>
torch::Tensor take_selection(Output&& out, stage_report& report) {
  if constexpr (is_selected<std::remove_cvref_t<Output>>) {
    report.details = std::move(out.report);
    return std::move(out.mask);
  } else {
    return std::forward<Output>(out);
  }
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
                    stage.scheduler());
  report.relu_count_before = ctx.masks.relu_count();
  ctx.relus_per_entry = ctx.masks.relus_per_entry();
  const auto finish = [&] {
    report.relu_count = ctx.masks.relu_count();
    report.budget_met = report.relu_count <= budget_count;
    report.finetune_epochs = ctx.spent.finetune_epochs;
    report.images_forwarded = ctx.spent.images_forwarded;
    report.resumed_seconds = ctx.spent.resumed_seconds;
    report.seconds = report.resumed_seconds +
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.resumed_seconds += report.resumed_seconds;
    result.images_forwarded += ctx.spent.images_forwarded;
    for (auto& row : ctx.spent.history) result.history.push_back(std::move(row));
    result.stages.push_back(std::move(report));
  };
  if (report.relu_count_before <= budget_count) {
    // Already within the budget: nothing to linearize, so the network stays as it is (its
    // current mask becomes hard).
    ctx.masks.harden(ctx.masks.binary());
    report.test_accuracy_selected = report.test_accuracy_finetuned = ctx.test_accuracy();
    finish();
    return;
  }

  if constexpr (Stage::has_relaxation) {
    auto search = mask_search(stage.relaxation(), stage.scheduler(), ctx);
    ctx.record("search", search.history, 0);
    report.search_epochs = static_cast<int64_t>(search.history.rows.size());
    ctx.scores = std::move(search.scores);
    ctx.kept = std::move(search.kept);
  } else {
    ctx.scores = ctx.masks.values();
    ctx.kept = ctx.masks.binary();
  }

  const torch::Tensor binary = take_selection(stage.selection().select(ctx), report);
  require(binary.defined() && binary.dim() == 1 && binary.numel() == ctx.masks.entries(),
          "selection '", stage.selection().name(), "' returned a mask of shape ",
          binary.defined() ? binary.sizes() : torch::IntArrayRef{}, "; expected [",
          ctx.masks.entries(), "]");
  ctx.masks.harden(binary.to(torch::kBool));
  const int64_t selected_count = ctx.masks.relu_count();
  require(selected_count <= budget_count, "run: stage ", index, " (", report.name, ") ended at ",
          selected_count, " ReLUs, above its budget of ", budget_count,
          report.search_epochs > 0 ? " after " + std::to_string(report.search_epochs) + " search epochs" : "",
          "; give the search more epochs (its scheduler) or use a selection that enforces the "
          "budget (select::magnitude with enforce_budget, select::top_k)");
  report.test_accuracy_selected = ctx.test_accuracy();
  const auto outcome = ctx.finetune(stage.finetune().epochs, "finetune");
  report.test_accuracy_recalibrated = outcome.test_accuracy_recalibrated;
  report.held_out_accuracy_finetuned = outcome.held_out_accuracy;
  report.test_accuracy_finetuned = ctx.test_accuracy();
  finish();
}

}  // namespace detail

/// What run_finetune() did.
struct finetune_run {
  finetune_outcome outcome{};
  double test_accuracy_before = NAN;  ///< the network as given (its mask made hard)
  double test_accuracy = NAN;         ///< after the finetune (the epoch it kept)
  int64_t images_forwarded = 0;
  std::vector<history_row> history{};
  double seconds = 0;          ///< across resumes, as run_result::seconds
  double resumed_seconds = 0;  ///< of `seconds`, earlier processes'
};

namespace detail {
/// The checks and the settings run() and run_finetune() share; returns the frozen teacher.
inline Network prepare_run(const Network& net, const Network& teacher, const run_data& data,
                           run_options& options) {
  require(net != nullptr, "run: the network is null");
  if (!options.augment) options.augment = data.augment;
  require(options.augment.has_value(), "run: no augmentation chosen: set run_options::augment "
          "(data::cifar_augmentation is the published crop + flip, data::augmentation{} none) or "
          "build run_data with baseline_run_data(), which takes the baseline's");
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

  return frozen_teacher;
}

/// The scheduler of a context that only finetunes.
struct unscheduled {};
}  // namespace detail

/// Finetunes `net` as it stands (its current mask made hard) with `finetune`, distilling from
/// `teacher`: a stage's finetune on its own, e.g. for a loaded mask, or to give a method the rest
/// of a compute budget after run(). Checkpoints into options.work_dir as phase `phase`.
template <finetune_policy Finetune>
finetune_run run_finetune(const Finetune& finetune, const Network& net, const Network& teacher,
                          const run_data& data, run_options options, const std::string& phase = "finetune") {
  const auto frozen_teacher = detail::prepare_run(net, teacher, data, options);
  const auto start = std::chrono::steady_clock::now();
  const int64_t relu_count = MaskSet(*net).relu_count();
  // As run()'s run.json: a work directory finetuned with other settings is refused, not resumed.
  if (!options.work_dir.empty())
    claim_work_dir(options.work_dir, finetune_settings(finetune, relu_count, options, data),
                   distributed::world().writer(), phase + ".json");
  stage_context ctx(*net, frozen_teacher, data, options, 0, relu_count, finetune, detail::unscheduled{});
  ctx.masks.harden(ctx.masks.binary());
  finetune_run out;
  out.test_accuracy_before = ctx.test_accuracy();
  out.outcome = ctx.finetune(finetune.epochs, phase);
  out.test_accuracy = ctx.test_accuracy();
  out.images_forwarded = ctx.spent.images_forwarded;
  out.history = std::move(ctx.spent.history);
  out.resumed_seconds = ctx.spent.resumed_seconds;
  out.seconds = out.resumed_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

/// Runs `m` (a pipeline stage or a chain) on `net`, distilling from `teacher` (a frozen copy of
/// the original network; null: no distillation), until the network holds at most `b` ReLUs.
/// Training phases augment as options.augment says, else as data.augment (the baseline's).
template <method Method>
run_result run(const Method& m, const Network& net, const Network& teacher, const run_data& data,
               const budget& b, run_options options = {}) {
  const auto frozen_teacher = detail::prepare_run(net, teacher, data, options);

  const auto start = std::chrono::steady_clock::now();
  run_result result;
  result.method = m.name();
  const MaskSet masks(*net);
  result.total_relus = masks.total_relus();
  result.budget = b.resolve(result.total_relus);

  constexpr size_t stage_count = decltype(boost::hana::size(stages_of(m)))::value;
  require(options.stage_budgets.size() < stage_count,
          "run: ", options.stage_budgets.size(), " stage budgets for a method of ", stage_count,
          " stage(s); expected fewer budgets than stages (the last stage takes the run's budget)");
  std::vector<int64_t> stage_budget;
  for (const auto& sb : options.stage_budgets) stage_budget.push_back(sb.resolve(result.total_relus));
  // Before any checkpoint is read: a work directory of a run with other settings is refused.
  if (!options.work_dir.empty())
    claim_work_dir(options.work_dir, run_settings(m, result.total_relus, result.budget, options, data),
                   distributed::world().writer());
  // A first stage whose selection can tell that its budget is out of reach says so now, before
  // the baseline evaluation and the stage's training (later stages start from masks not known yet).
  {
    const auto first = boost::hana::front(stages_of(m));  // a copy: stages_of returns by value
    const int64_t target = stage_budget.empty() ? result.budget : stage_budget.front();
    if constexpr (requires { first.selection().preflight(masks, target, first.scheduler()); })
      if (masks.relu_count() > target) first.selection().preflight(masks, target, first.scheduler());
  }
  result.baseline_test_accuracy = train::evaluate(*net, data.test, options.eval_batch_size).top1;
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
  result.seconds = result.resumed_seconds +
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace linearize
