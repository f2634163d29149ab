#pragma once
// DeepReDuce as a selection rule of the pipeline:
//
//   auto deepreduce = linearize::pipeline(
//       linearize::select::stage_criticality{.mode = select::criticality_mode::finetune, .epochs = 1},
//       linearize::schedule::stagewise{.step_epochs = 2},
//       linearize::finetune::distill{.epochs = 10});
//
// 1. Criticality: for each stage, the network keeping only that stage's ReLUs is measured on
//    held-out data; stages are ranked by accuracy per ReLU kept (least critical first). Modes,
//    by cost (S stages, N training images, H held-out images):
//      evaluate  zero-cost proxy: the trained weights, BatchNorm re-estimated (50 batches),
//                evaluated: S x (50 batches + H) images, no training;
//      finetune  the trained network finetuned by the pipeline's finetune policy (KD) for
//                `epochs` epochs with only that stage's ReLUs: S x epochs x N images (+ evals);
//      train     DeepReDuce's own: fresh weights trained for `epochs` epochs (SGD at `train_lr`,
//                cosine, KD from the teacher): S x epochs x N images; meaningful only with
//                epochs close to a full training.
//    A given `ranking` skips the measurement.
// 2. Plan (deepreduce_plan.hpp): culling and thinning steps to the budget, reported (stderr and
//    stage_report::plan) before any step runs.
// 3. Steps: each step's mask is applied, the test accuracy taken, and the pipeline's finetune
//    policy distils for the scheduler's `step_epochs`; stage_report::steps holds each step's
//    count and accuracies. run() then finetunes the final network (the finetune policy's epochs).
//    stage_report::finetune_epochs and images_forwarded include the criticality and step phases;
//    result.history has their epochs as phases "criticality_<stage>" and "step<i>".
// Reshaping changes the architecture, so run() never does it: a budget culling and thinning
// cannot reach is an error before any training; plan_deepreduce with reshape options
// (deepreduce_reshape.hpp) says which network to build instead.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/pipeline/roles.hpp>
#include <linearize/pipeline/run_types.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/batchnorm.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/trainer.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace linearize::select {

enum class criticality_mode { evaluate, finetune, train };
enum class criticality_score {
  accuracy_per_relu,  ///< DeepReDuce: accuracy the stage reaches per ReLU it holds
  accuracy,           ///< accuracy alone (ignores what the stage costs)
};

[[nodiscard]] inline std::string to_string(criticality_mode m) {
  return m == criticality_mode::evaluate ? "evaluate" : m == criticality_mode::finetune ? "finetune" : "train";
}

struct criticality_options {
  criticality_mode mode = criticality_mode::finetune;
  int64_t epochs = 1;                  ///< finetune / train modes
  criticality_score score = criticality_score::accuracy_per_relu;
  double train_lr = 0.05;              ///< train mode's SGD learning rate (cosine to 0)
  int64_t recalibration_batches = 50;  ///< evaluate mode's BatchNorm re-estimation
};

namespace detail {

/// Fresh weights for every Conv, Linear and BatchNorm layer (their own initializers), from
/// `seed`. A layer of another kind with parameters of its own is an error: its weights would
/// silently stay trained.
inline void reinitialize(NetworkImpl& net, uint64_t seed) {
  torch::manual_seed(seed);
  for (const auto& item : net.named_modules("", /*include_self=*/false)) {
    auto* m = item.value().get();
    if (auto* c = dynamic_cast<torch::nn::Conv1dImpl*>(m)) c->reset_parameters();
    else if (auto* c2 = dynamic_cast<torch::nn::Conv2dImpl*>(m)) c2->reset_parameters();
    else if (auto* c3 = dynamic_cast<torch::nn::Conv3dImpl*>(m)) c3->reset_parameters();
    else if (auto* l = dynamic_cast<torch::nn::LinearImpl*>(m)) l->reset_parameters();
    else if (auto* b1 = dynamic_cast<torch::nn::BatchNorm1dImpl*>(m)) b1->reset_parameters();
    else if (auto* b2 = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m)) b2->reset_parameters();
    else if (auto* b3 = dynamic_cast<torch::nn::BatchNorm3dImpl*>(m)) b3->reset_parameters();
    else if (!dynamic_cast<ReluSlotImpl*>(m))
      require(m->named_parameters(/*recurse=*/false).is_empty(), "stage_criticality (train mode): cannot "
              "re-initialize module '", item.key(), "' (", m->name(), "); expected Conv, Linear and BatchNorm "
              "layers only; use mode finetune or evaluate");
  }
}

/// The current mask with every slot outside `stage` off.
inline torch::Tensor only_stage(const MaskSet& masks, const std::string& stage) {
  auto flat = masks.binary();
  for (size_t i = 0; i < masks.size(); ++i)
    if (masks[i].options.stage != stage) flat.slice(0, masks.offset(i), masks.offset(i + 1)).fill_(false);
  return flat;
}

inline std::string phase_name(const std::string& what, const std::string& stage) {
  return what + "_" + (stage.empty() ? std::string("unnamed") : stage);
}

template <class Context>
std::ostream* report_stream(const Context& ctx) {
  if (ctx.options.progress.mode == train::progress_mode::silent) return nullptr;
  return ctx.options.progress.out ? ctx.options.progress.out : &std::cerr;
}

}  // namespace detail

/// Ranks measured rows: sets each row's rank (0 = least critical: lowest score; ties in network
/// order) and returns the stage names least critical first.
inline std::vector<std::string> rank_stages(std::vector<criticality_row>& rows) {
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Unmeasured rows (no ReLUs: NaN) rank first; they cost nothing and are skipped by the plan.
  const auto key = [&](size_t i) { return std::isnan(rows[i].score) ? -std::numeric_limits<double>::infinity() : rows[i].score; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  std::vector<std::string> names;
  for (size_t r = 0; r < order.size(); ++r) {
    rows[order[r]].rank = r;
    names.push_back(rows[order[r]].name);
  }
  return names;
}

/// Measures every stage's criticality on ctx.net (see the top of this file for the modes) and
/// leaves the network as it found it. Rows are in network order, ranked.
template <class Context>
std::vector<criticality_row> measure_stage_criticality(Context& ctx, const criticality_options& o) {
  require(o.epochs >= 0 && o.recalibration_batches > 0 && o.train_lr > 0, "stage_criticality: epochs ",
          o.epochs, " >= 0, recalibration_batches ", o.recalibration_batches, " > 0 and train_lr ", o.train_lr,
          " > 0 expected");
  require(o.mode == criticality_mode::evaluate || o.epochs > 0, "stage_criticality: mode ", to_string(o.mode),
          " with 0 epochs; expected epochs > 0 (or mode evaluate)");
  require(ctx.data.held_out.size() > 0, "stage_criticality: run_data::held_out is empty; stages are ranked on "
          "held-out training data (the test set never decides anything)");
  const auto backup = ctx.net.copy();  // every measurement starts from the network as given
  std::vector<criticality_row> rows;
  uint64_t index = 0;
  for (const auto& stage : ctx.masks.per_stage()) {
    criticality_row row{.name = stage.name, .relus = stage.active};
    ++index;
    if (stage.active == 0) {  // nothing to keep: nothing to measure
      rows.push_back(row);
      continue;
    }
    if (o.mode == criticality_mode::train) detail::reinitialize(ctx.net, ctx.seed(0xc417000u + index));
    ctx.masks.harden(detail::only_stage(ctx.masks, stage.name));
    const auto phase = detail::phase_name("criticality", stage.name);
    switch (o.mode) {
      case criticality_mode::evaluate:
        ctx.count_images(train::recalibrate_batchnorm(ctx.net, ctx.data.train, o.recalibration_batches,
                                                      ctx.options.batch_size, ctx.seed(0xc417b00u + index)));
        break;
      case criticality_mode::finetune:
        ctx.finetune(o.epochs, phase);
        break;
      case criticality_mode::train: {
        auto opts = ctx.train_options(phase, o.epochs, /*kd_temperature=*/4, /*kd_weight=*/1);
        opts.optimizer = train::sgd{.lr = o.train_lr, .momentum = 0.9, .weight_decay = 5e-4};
        opts.schedule = train::cosine{};
        opts.seed = ctx.seed(0xc417f00u + index);
        const auto history = train::fit(ctx.net, ctx.data.train, opts);
        for (const auto& r : history.rows) {
          ctx.add_history({.phase = phase, .epoch = r.epoch, .relu_count = stage.active, .loss = r.train_loss,
                           .train_accuracy = r.train_top1, .seconds = r.seconds});
          ctx.count_images(ctx.data.train.size());
        }
        break;
      }
    }
    row.accuracy = ctx.accuracy(ctx.data.held_out);
    row.score = o.score == criticality_score::accuracy ? row.accuracy
                                                       : row.accuracy / static_cast<double>(row.relus);
    rows.push_back(row);
    copy_state(*backup, ctx.net);
  }
  rank_stages(rows);
  return rows;
}

/// The criticality table as text, least critical first.
inline std::string describe_criticality(const std::vector<criticality_row>& rows) {
  std::vector<const criticality_row*> ranked;
  for (const auto& r : rows) ranked.push_back(&r);
  std::sort(ranked.begin(), ranked.end(), [](auto* a, auto* b) { return a->rank < b->rank; });
  std::ostringstream out;
  out << "stage criticality (least critical first):\n";
  for (const auto* r : ranked) {
    out << "  " << std::left << std::setw(10) << (r->name.empty() ? "(none)" : r->name) << std::right
        << std::setw(10) << grouped(r->relus) << " ReLUs";
    if (std::isnan(r->accuracy))
      out << "   not measured\n";
    else
      out << "   held-out " << std::fixed << std::setprecision(2) << 100 * r->accuracy << "%   score "
          << std::scientific << std::setprecision(3) << r->score << std::defaultfloat << "\n";
  }
  return out.str();
}

struct stage_criticality {
  using role = roles::selection;
  using default_scheduler = schedule::stagewise;

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

  /// Steps by the stage's scheduler (ctx.scheduler; run() gives stagewise{} when none is named).
  template <class Context>
  [[nodiscard]] torch::Tensor select(Context& ctx) const {
    const auto& schedule = ctx.scheduler;
    static_assert(requires { schedule.cull_per_step; schedule.thin_per_step; schedule.step_epochs; },
                  "select::stage_criticality needs a stage-wise scheduler (cull_per_step, thin_per_step, "
                  "step_epochs), e.g. linearize::schedule::stagewise");
    require(keep_stages > 0, "stage_criticality: keep_stages = 0 would let every stage be culled; expected >= 1");
    require(schedule.step_epochs >= 0, "stage_criticality: step_epochs ", schedule.step_epochs,
            " must not be negative");
    const auto config = settings(schedule);
    // Certain failure is reported before anything is trained.
    const int64_t floor = fewest_reachable(ctx.masks.per_slot(), config);
    require(ctx.budget >= floor, "stage_criticality: budget of ", grouped(ctx.budget), " ReLUs is below ",
            grouped(floor), ", the fewest that culling and thinning reach on this network (keep_stages = ",
            keep_stages, "); run() does not reshape (that changes the architecture): plan with reshape "
            "options (select::plan_deepreduce, select/deepreduce_reshape.hpp), build the reshaped network and "
            "run on it, or raise the budget");

    auto* out = detail::report_stream(ctx);
    std::vector<std::string> order = ranking;
    if (order.empty()) {
      ctx.report.criticality = measure_stage_criticality(ctx, measurement());
      order = rank_stages(ctx.report.criticality);
      if (out) *out << describe_criticality(ctx.report.criticality) << std::flush;
    } else {
      for (const auto& stage : ctx.masks.per_stage())
        ctx.report.criticality.push_back({.name = stage.name, .relus = stage.active});
      for (auto& row : ctx.report.criticality) {
        const auto it = std::find(order.begin(), order.end(), row.name);
        if (it != order.end()) row.rank = static_cast<size_t>(it - order.begin());
      }
    }

    const auto plan = plan_deepreduce(ctx.masks.per_slot(), order, ctx.budget, config);
    ctx.report.plan = plan.describe();
    if (out) *out << ctx.report.plan << std::flush;

    for (size_t i = 0; i < plan.mask_steps(); ++i) {
      ctx.masks.harden(plan_mask(ctx.masks, plan, i + 1));
      step_report step{.name = plan.steps[i].describe(), .relu_count = ctx.masks.relu_count()};
      require(step.relu_count == plan.steps[i].relu_count, "stage_criticality: step ", i + 1, " left ",
              step.relu_count, " ReLUs, the plan said ", plan.steps[i].relu_count);
      step.test_accuracy_selected = ctx.accuracy(ctx.data.test);
      const int64_t epochs_before = ctx.report.finetune_epochs;
      ctx.finetune(schedule.step_epochs, "step" + std::to_string(i + 1));
      step.finetune_epochs = ctx.report.finetune_epochs - epochs_before;
      step.test_accuracy_finetuned = ctx.accuracy(ctx.data.test);
      if (ctx.data.held_out.size() > 0) step.held_out_accuracy_finetuned = ctx.accuracy(ctx.data.held_out);
      if (out)
        *out << "step " << i + 1 << " (" << step.name << "): " << grouped(step.relu_count) << " ReLUs, test "
             << std::fixed << std::setprecision(2) << 100 * step.test_accuracy_selected << "% -> "
             << 100 * step.test_accuracy_finetuned << "% after " << step.finetune_epochs << " epochs of KD\n"
             << std::defaultfloat << std::flush;
      ctx.report.steps.push_back(step);
    }
    return ctx.masks.binary();
  }
};

}  // namespace linearize::select
