#pragma once
// DeepReDuce's stage criticality: for each stage, the network keeping only that stage's ReLUs is
// measured on held-out data, and stages are ranked by accuracy per ReLU kept (least critical
// first). Modes, by cost (S stages, N training images, H held-out images):
//   evaluate  zero-cost proxy: the trained weights, BatchNorm re-estimated (50 batches),
//             evaluated: S x (50 batches + H) images, no training;
//   finetune  the trained network finetuned by the pipeline's finetune policy (KD) for `epochs`
//             epochs with only that stage's ReLUs: S x epochs x N images (+ evals);
//   train     DeepReDuce's own: fresh weights trained for `epochs` epochs (SGD at `train_lr`,
//             cosine, KD from the teacher): S x epochs x N images; meaningful only with epochs
//             close to a full training.
// measure_stage_criticality works inside a stage (select::stage_criticality calls it);
// measure_criticality measures outside a run, on a copy of the network, so that programs can
// show the ranking (and plan with it) before the pipeline runs.
//
// Data-parallel: the stages are independent measurements, so they are shared out among the
// ranks (the k-th stage with ReLUs to rank k mod size), each measured by its rank alone
// (distributed::on_this_rank: its own training, evaluation and checkpoint files), then the rows,
// the images forwarded, the epochs and the history rows are gathered so that every rank has
// all of them. A stage is measured exactly as one process measures it.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/models/batch_norm.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/policy/stage_context.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/select/deepreduce_report.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/format.hpp>
#include <linearize/train/batchnorm.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/trainer.hpp>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <mutex>
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
    else if (models::visit_batchnorm(m, [](auto& bn) { bn.reset_parameters(); })) continue;
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
  if (ctx.options.progress.mode == train::progress_mode::silent || distributed::process_rank() != 0)
    return nullptr;
  return ctx.options.progress.out ? ctx.options.progress.out : &std::cerr;
}

/// After the ranks measured their stages: every rank gets every row's accuracy and score, and
/// what each rank spent (images, epochs, history rows, in stage order) is added on every rank.
template <class Context>
void gather_criticality(Context& ctx, std::vector<criticality_row>& rows, const std::vector<int>& owner,
                        const stage_spending& before, const distributed::group& group) {
  auto measured = torch::zeros({static_cast<int64_t>(2 * rows.size() + 2)}, torch::kDouble);
  auto* m = measured.data_ptr<double>();
  for (size_t i = 0; i < rows.size(); ++i)
    if (owner[i] == group.rank()) {
      m[2 * i] = rows[i].accuracy;
      m[2 * i + 1] = rows[i].score;
    }
  m[2 * rows.size()] = static_cast<double>(ctx.spent.images_forwarded - before.images_forwarded);
  m[2 * rows.size() + 1] = static_cast<double>(ctx.spent.finetune_epochs - before.finetune_epochs);
  group.sum(measured);
  for (size_t i = 0; i < rows.size(); ++i)
    if (owner[i] >= 0) {
      rows[i].accuracy = m[2 * i];
      rows[i].score = m[2 * i + 1];
    }
  ctx.spent.images_forwarded = before.images_forwarded + static_cast<int64_t>(m[2 * rows.size()]);
  ctx.spent.finetune_epochs = before.finetune_epochs + static_cast<int64_t>(m[2 * rows.size() + 1]);

  nlohmann::json mine = nlohmann::json::array();
  for (size_t i = before.history.size(); i < ctx.spent.history.size(); ++i) {
    const auto& r = ctx.spent.history[i];
    mine.push_back({r.stage, r.phase, r.epoch, r.penalty_weight, r.relu_count, r.loss, r.train_accuracy,
                    r.held_out_accuracy, r.seconds});
  }
  ctx.spent.history.resize(before.history.size());
  std::vector<std::pair<size_t, history_row>> all;  // (stage position, row)
  const auto position = [&](const std::string& phase) {
    for (size_t i = 0; i < rows.size(); ++i)
      if (phase == phase_name("criticality", rows[i].name)) return i;
    return rows.size();
  };
  // NaN (a row without held-out accuracy) travels as null.
  const auto number = [](const nlohmann::json& j) { return j.is_null() ? NAN : j.get<double>(); };
  for (const auto& text : group.gather_text(mine.dump()))
    for (const auto& j : nlohmann::json::parse(text)) {
      history_row r{.stage = j[0].get<size_t>(), .phase = j[1].get<std::string>(), .epoch = j[2].get<int64_t>(),
                    .penalty_weight = number(j[3]), .relu_count = j[4].get<int64_t>(), .loss = number(j[5]),
                    .train_accuracy = number(j[6]), .held_out_accuracy = number(j[7]), .seconds = number(j[8])};
      all.emplace_back(position(r.phase), std::move(r));
    }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [pos, r] : all) ctx.spent.history.push_back(std::move(r));
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
  const auto group = distributed::world();
  const stage_spending before = group.alone() ? stage_spending{} : ctx.spent;
  torch::Tensor generator;
  if (!group.alone()) {
    auto cpu = at::globalContext().defaultGenerator(torch::kCPU);
    std::lock_guard<std::mutex> lock(cpu.mutex());
    generator = cpu.get_state();
  }
  std::vector<criticality_row> rows;
  std::vector<int> owner;  // the rank measuring each row (-1: nothing to measure)
  int measured = 0;
  uint64_t index = 0;
  for (const auto& stage : ctx.masks.per_stage()) {
    criticality_row row{.name = stage.name, .relus = stage.active};
    ++index;
    if (stage.active == 0) {  // nothing to keep: nothing to measure
      rows.push_back(row);
      owner.push_back(-1);
      continue;
    }
    owner.push_back(measured++ % group.size());
    if (owner.back() != group.rank()) {  // another rank's stage
      rows.push_back(row);
      continue;
    }
    const distributed::on_this_rank alone;
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
        auto sgd = train::finetune_sgd;
        sgd.lr = o.train_lr;
        const auto opts = ctx.distillation_options(phase, o.epochs, sgd, /*kd_temperature=*/4,
                                                   /*kd_weight=*/1, 0xc417f00u + index);
        ctx.record(phase, train::fit(ctx.net, ctx.data.train, opts), stage.active);
        break;
      }
    }
    row.accuracy = ctx.accuracy(ctx.data.held_out);
    row.score = o.score == criticality_score::accuracy ? row.accuracy
                                                       : row.accuracy / static_cast<double>(row.relus);
    rows.push_back(row);
    copy_state(*backup, ctx.net);
  }
  if (!group.alone()) {
    detail::gather_criticality(ctx, rows, owner, before, group);
    // The ranks drew from torch's generator for different stages; they continue alike.
    auto cpu = at::globalContext().defaultGenerator(torch::kCPU);  // a handle on the generator
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(generator);
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

namespace detail {
/// The stage context of a measurement outside a run needs no scheduler.
struct unscheduled {};
}  // namespace detail

struct criticality_measurement {
  std::vector<criticality_row> rows;  ///< in network order, ranked
  std::vector<std::string> ranking;   ///< stage names, least critical first
  int64_t images_forwarded = 0;
  double seconds = 0;
};

/// Measures every stage's criticality of `net` (left unchanged) the way `how` says, finetuning
/// with `finetune` (KD from `teacher`) in the finetune mode. Checkpoints go to
/// options.work_dir / "criticality", so a killed measurement resumes.
template <class Finetune>
[[nodiscard]] criticality_measurement measure_criticality(const Network& net, const Network& teacher,
                                                          const run_data& data, run_options options,
                                                          const criticality_options& how,
                                                          const Finetune& finetune) {
  const auto start = std::chrono::steady_clock::now();
  const auto probe = net->copy();
  options.work_dir = options.work_dir / "criticality";
  std::filesystem::create_directories(options.work_dir);
  stage_context ctx(*probe, teacher, data, options, 0, 1, finetune, detail::unscheduled{});
  criticality_measurement m;
  m.rows = measure_stage_criticality(ctx, how);
  m.ranking = rank_stages(m.rows);
  m.images_forwarded = ctx.spent.images_forwarded;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

}  // namespace linearize::select
