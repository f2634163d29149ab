#pragma once
// Coordinate descent on the binary mask (Rakhlin, Jevnisek, Avidan; REFERENCES.md), as a
// selection rule stepped by schedule::fixed_step:
//
//   auto bcd = pipeline(select::coordinate_block{.tries = 100, .adt = 0.3},
//                       schedule::fixed_step{.drc = 100}, finetune::distill{.epochs = 20});
//
// It starts from the network's current binary mask (a loaded mask, SNL's output in `snl | bcd`,
// or all ReLUs of a fresh network) with B_ref ReLUs and runs exactly
// T = ceil((B_ref - B_target) / DRC) iterations (the scheduler's steps()); each linearizes one
// block of DRC active ReLUs for good (see block_proposal.hpp for channel or layer masks, where a
// block holds at least DRC ReLUs and the search may end before T):
//   1. draw up to K candidate blocks (uniformly, the paper's way, or guided by a first-order
//      estimate of each ReLU's damage, first_order.hpp);
//   2. score each by its accuracy drop on a fixed scoring set (scoring.hpp, with early rejection)
//      and keep the first whose drop is below ADT (accuracy points);
//   3. if none passes, keep the one with the least drop and finetune (the stage's finetune
//      policy; an option finetunes after every iteration). The least drop is taken among tries
//      scored on the whole set: a try rejected early only has a prefix estimate, so the most
//      promising of those are scored to the end first (`rescore`).
//
// What the drop is measured against. The reference is the network at the start or right after
// its last finetune, and the drop of a candidate is the reference's accuracy minus the
// candidate's, on the same samples. It is not re-based after each accepted block: blocks that
// each cost a little below ADT would otherwise add up without bound between finetunes. Measured
// against the last reference, the accumulated loss since that finetune stays below ADT (plus
// the one least-drop block that triggers the next finetune), so the total loss is bounded by
// the number of finetunes, each of which recovers. After a finetune the reference is measured
// again (the authors' prototype keeps the old value; remeasure_reference = false reproduces that).
//
// Cost. The prototype scores every candidate on the whole training set. Here candidates are
// scored on a seeded subset of held-out training data (never the test set), rejected on a
// prefix as soon as they clearly fail, and first-order proposals make the first try pass far
// more often; benchmarks/bcd_cost.cpp measures each against the prototype's procedure.
//
// Resume. With a work directory the search checkpoints after every iteration (and before each
// finetune) into stage<i>_bcd.ckpt (coordinate_state.hpp); finetunes checkpoint through the
// trainer. Calling run() again continues from the last checkpoint to the same mask.
//
// Data-parallel: candidates are scored with the scoring set shared out among the ranks
// (scoring.hpp), finetunes train data-parallel; every rank draws the same blocks (seeded),
// sees the same scores and so keeps the same mask. Rank 0 writes the checkpoints.
#include <linearize/core/mask_set.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/policy/concepts/scheduler.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/policy/selected.hpp>
#include <linearize/select/block_proposal.hpp>
#include <linearize/select/coordinate_report.hpp>
#include <linearize/select/coordinate_state.hpp>
#include <linearize/select/first_order.hpp>
#include <linearize/select/scoring.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/seed.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace linearize::select {

/// Thrown when coordinate_block::stop_after_iterations ends a search: what a kill leaves behind
/// (the checkpoint of the last iteration), for tests and time-limited jobs.
class search_interrupted : public error {
 public:
  using error::error;
};

/// Where candidates are scored: held-out training data (run_data::held_out), or the training
/// set itself without augmentation (the prototype's choice).
enum class scoring_data { held_out, train };

struct coordinate_block {
  using role = roles::selection;

  int64_t tries = 100;  ///< K: candidate blocks per iteration
  double adt = 0.3;     ///< accuracy drop threshold, in accuracy points (0.3 = 0.3%)

  // ---- scoring ---------------------------------------------------------------------------------
  scoring_data score_on = scoring_data::held_out;
  int64_t scoring_size = 0;      ///< samples of the scoring set; 0: all of score_on's data
  int64_t scoring_batch = 256;   ///< also the step of the early-rejection test
  early_rejection rejection{};   ///< scoring.hpp; .enabled = false scores every candidate fully
  /// When no try passes, the least-drop block is chosen among fully scored tries; up to this
  /// many early-rejected ones whose prefix estimate is lower are scored to the end first.
  int64_t rescore = 2;

  // ---- proposals -------------------------------------------------------------------------------
  proposal proposals = proposal::first_order;  ///< uniform: the paper's draws
  int64_t gradient_samples = 256;     ///< training images per first-order estimate
  int64_t gradient_micro_batch = 16;  ///< see first_order.hpp
  damage_estimate estimate = damage_estimate::signed_change;  ///< how first_order ranks entries
  double pool_growth = 1.0;           ///< try k draws from the best drc * (1 + k * growth) ReLUs

  // ---- finetuning ------------------------------------------------------------------------------
  int64_t finetune_epochs = -1;        ///< per finetune in the search; -1: the finetune policy's
  bool finetune_every_iteration = false;  ///< the greedier variant
  bool remeasure_reference = true;     ///< false: the prototype's stale reference after finetunes

  /// Ends the search with search_interrupted once this many iterations are done in total
  /// (counting those before a resume); -1: never.
  int64_t stop_after_iterations = -1;

  [[nodiscard]] std::string name() const { return "coordinate_block"; }

  void validate() const {
    require(tries > 0, "coordinate_block: tries ", tries, " must be positive (K, candidate blocks per iteration)");
    require(std::isfinite(adt) && adt >= 0, "coordinate_block: adt ", adt,
            " must be finite and >= 0 (accuracy points)");
    require(scoring_size >= 0, "coordinate_block: scoring_size ", scoring_size,
            " must be >= 0 (0: the whole scoring data)");
    require(scoring_batch > 0, "coordinate_block: scoring_batch ", scoring_batch, " must be positive");
    require(rescore >= 0, "coordinate_block: rescore ", rescore, " must be >= 0");
    rejection.validate();
    require(gradient_samples > 0 && gradient_micro_batch > 0, "coordinate_block: gradient_samples ",
            gradient_samples, " and gradient_micro_batch ", gradient_micro_batch, " must be positive");
    require(std::isfinite(pool_growth) && pool_growth >= 0, "coordinate_block: pool_growth ",
            pool_growth, " must be finite and >= 0");
    require(finetune_epochs >= -1, "coordinate_block: finetune_epochs ", finetune_epochs,
            " must be >= 0, or -1 for the finetune policy's epochs");
  }

  /// Steps by a step scheduler (ctx.scheduler: fixed_step's DRC); pipeline() checks the pairing.
  static constexpr scheduler_kind steps_by = scheduler_kind::step;

  /// Runs the search on ctx.net (see policy/stage_context.hpp); returns the final binary mask
  /// and what the search did.
  template <class Context>
  [[nodiscard]] selected<coordinate_report> select(Context& ctx) const {
    return search<Context>{*this, ctx}.run();
  }

 private:
  template <class Context>
  struct search {
    using clock = std::chrono::steady_clock;
    const coordinate_block& opt;
    Context& ctx;
    const MaskSet& masks = ctx.masks;
    clock::time_point started = clock::now();
    double seconds_before = 0;  // of the search before a resume
    int64_t drc = 0, target = 0, finetune_epochs = 0;
    scoring_set set{};
    coordinate_state st{};
    std::filesystem::path file{};

    search(const coordinate_block& o, Context& c) : opt(o), ctx(c) {}

    selected<coordinate_report> run() {
      opt.validate();
      drc = ctx.scheduler.step_size();
      target = ctx.budget;
      masks.harden(masks.binary());  // the search works on the binary mask
      const int64_t start_count = masks.relu_count();
      require(target <= start_count, "coordinate_block: budget of ", target,
              " ReLUs is above the network's current count of ", start_count,
              "; coordinate descent only removes ReLUs");
      const auto& source = opt.score_on == scoring_data::held_out ? ctx.data.held_out : ctx.data.train;
      const char* source_name = opt.score_on == scoring_data::held_out ? "held-out" : "training";
      require(source.size() > 0, "coordinate_block: scores on the ", source_name,
              " data, but run_data has none; give run_data::held_out or set score_on = "
              "scoring_data::train");
      require(opt.scoring_size <= source.size(), "coordinate_block: scoring_size ",
              opt.scoring_size, " is larger than the ", source_name, " set (", source.size(),
              " samples)");
      set = make_scoring_set(source, opt.scoring_size, opt.scoring_batch, ctx.seed(0xbcd5u));
      finetune_epochs = opt.finetune_epochs < 0 ? static_cast<int64_t>(ctx.finetune_policy.epochs)
                                                : opt.finetune_epochs;
      file = ctx.checkpoint("bcd");
      const auto id = identity(start_count);
      if (!file.empty() && std::filesystem::exists(file)) {
        st = load_coordinate_state(file, ctx.net, id);
        seconds_before = st.report.seconds;
        ctx.spent.resumed_seconds += seconds_before;
        ctx.count_images(st.report.images());
        for (const auto& r : st.rows) ctx.add_history(history_of(r));
      } else {
        st.identity = id;
        st.report.reference_count = start_count;
        st.report.planned_iterations = ctx.scheduler.steps(start_count, target);
        measure_reference();
      }

      while (!st.done) {
        if (st.finetune_pending) {
          finetune(st.iteration);
          finish_iteration();
          continue;
        }
        if (st.iteration >= st.report.planned_iterations || masks.relu_count() <= target) {
          st.done = true;
          save();
          break;
        }
        if (opt.stop_after_iterations >= 0 && st.iteration >= opt.stop_after_iterations)
          throw search_interrupted("coordinate_block: stopped after " + std::to_string(st.iteration) +
                                   " iterations as asked (stop_after_iterations); run again to resume");
        iterate();
      }
      st.report.seconds = elapsed();
      return {masks.binary(), st.report};
    }

    // One iteration: choose and apply a block; finetune when none passed (or always).
    void iterate() {
      const auto iteration_start = clock::now();
      const double threshold = opt.adt / 100.0;
      const auto binary = masks.binary();
      const auto active = binary.nonzero().reshape({-1});
      const auto per_entry = ctx.relus_per_entry.defined() ? ctx.relus_per_entry : masks.relus_per_entry();
      const auto active_relus = per_entry.to(torch::kCPU, torch::kLong).index_select(0, active);

      ranking ranked;
      if (opt.proposals == proposal::first_order) {
        const auto t0 = clock::now();
        const auto seed = derive_seed(ctx.seed(0xbcd6u), {static_cast<uint64_t>(st.iteration)});
        const auto estimate = estimate_first_order(ctx.net, masks, ctx.data.train, opt.gradient_samples,
                                                   opt.gradient_micro_batch, seed, opt.estimate);
        ctx.count_images(estimate.images);
        st.report.gradient_images += estimate.images;
        ranked = rank_entries(active, active_relus, estimate.damage, seed);
        st.report.gradient_seconds += since(t0);
      }

      const auto t0 = clock::now();
      // Every try, with its drop: exact when scored on the whole set, else the prefix estimate.
      struct candidate {
        torch::Tensor block;
        candidate_score score;
      };
      std::vector<candidate> tries;
      bool accepted = false;
      for (int64_t k = 0; k < opt.tries && !accepted; ++k) {
        const auto seed = derive_seed(ctx.seed(0xbcd7u), {static_cast<uint64_t>(st.iteration),
                                                          static_cast<uint64_t>(k)});
        const auto block = opt.proposals == proposal::uniform
                               ? draw_block(active, active_relus, drc, seed)
                               : ranked_block(ranked, drc, k, opt.pool_growth, seed);
        const auto score = score_block(block, threshold, opt.rejection);
        st.report.early_rejections += score.rejected_early;
        tries.push_back({block, score});
        accepted = score.passed;  // a passing block stays off
        if (!accepted) switch_block(masks, block, /*on=*/true);
      }
      const int64_t tried = static_cast<int64_t>(tries.size());
      double best_drop = tries.back().score.drop;
      if (!accepted) best_drop = fall_back(tries, threshold);
      st.report.scoring_seconds += since(t0);
      st.report.tries += tried;
      st.report.accepted += accepted;
      st.report.fallbacks += !accepted;

      iteration_row row{.iteration = st.iteration,
                        .relu_count = masks.relu_count(),
                        .tries = tried,
                        .accepted = accepted,
                        .drop = best_drop,
                        .accuracy = st.report.reference_accuracy - best_drop,
                        .seconds = since(iteration_start)};
      st.rows.push_back(row);
      ctx.add_history(history_of(row));
      if (!accepted || opt.finetune_every_iteration) {
        st.finetune_pending = true;
        save();  // a kill during the finetune resumes it, without scoring the tries again
        finetune(st.iteration);
      }
      finish_iteration();
    }

    /// Scores `block` switched off (it stays off); counts its images.
    candidate_score score_block(const torch::Tensor& block, double threshold, early_rejection rule) {
      switch_block(masks, block, /*on=*/false);
      const auto score = score_candidate(ctx.net, set, st.reference_correct, threshold, rule);
      ctx.count_images(score.samples);
      st.report.scoring_images += score.samples;
      return score;
    }

    /// No try passed: switch off the block with the least drop among those scored on the whole
    /// set. A prefix estimate is not a drop: the `rescore` early-rejected tries with the least
    /// estimates that might beat the best complete one are scored to the end first.
    template <class Candidates>
    double fall_back(Candidates& tries, double threshold) {
      const auto best_complete = [&] {
        double best = std::numeric_limits<double>::infinity();
        for (const auto& c : tries)
          if (!c.score.rejected_early) best = std::min(best, c.score.drop);
        return best;
      };
      std::vector<size_t> early;
      for (size_t i = 0; i < tries.size(); ++i)
        if (tries[i].score.rejected_early) early.push_back(i);
      std::stable_sort(early.begin(), early.end(),
                       [&](size_t a, size_t b) { return tries[a].score.drop < tries[b].score.drop; });
      for (size_t n = 0; n < early.size() && static_cast<int64_t>(n) < opt.rescore; ++n) {
        auto& c = tries[early[n]];
        if (c.score.drop >= best_complete()) break;  // sorted: no later one can beat it either
        c.score = score_block(c.block, threshold, early_rejection{.enabled = false});
        switch_block(masks, c.block, /*on=*/true);
        ++st.report.rescored;
      }
      const candidate_score* best = nullptr;
      const torch::Tensor* block = nullptr;
      for (const auto& c : tries)
        if (!c.score.rejected_early && (!best || c.score.drop < best->drop)) {
          best = &c.score;
          block = &c.block;
        }
      if (!best) {  // every try was rejected early and none was rescored (rescore = 0)
        for (const auto& c : tries)
          if (!best || c.score.drop < best->drop) {
            best = &c.score;
            block = &c.block;
          }
      }
      switch_block(masks, *block, /*on=*/false);
      return best->drop;
    }

    void finetune(int64_t iteration) {
      const auto t0 = clock::now();
      const int64_t images_before = ctx.spent.images_forwarded;
      ctx.finetune(finetune_epochs, phase(iteration));
      st.report.finetune_images += ctx.spent.images_forwarded - images_before;
      ++st.report.finetunes;
      st.report.finetune_seconds += since(t0);
      if (opt.remeasure_reference) measure_reference();
    }

    void finish_iteration() {
      const bool had_finetune = st.finetune_pending;
      st.finetune_pending = false;
      st.report.iterations = ++st.iteration;
      save();
      if (had_finetune && !file.empty() && distributed::world().writer()) {  // the search's checkpoint now holds its weights
        std::error_code ec;
        const auto ft = ctx.checkpoint(phase(st.iteration - 1));
        std::filesystem::remove(ft, ec);
        std::filesystem::remove(ft.string() + ".best", ec);
      }
    }

    void measure_reference() {
      const auto t0 = clock::now();
      st.reference_correct = correctness(ctx.net, set);
      st.report.reference_accuracy = st.reference_correct.to(torch::kDouble).mean().item<double>();
      ctx.count_images(set.size());
      st.report.scoring_images += set.size();
      st.report.scoring_seconds += since(t0);
    }

    void save() {
      st.report.seconds = elapsed();
      if (!file.empty() && distributed::world().writer()) save_coordinate_state(file, ctx.net, st);
    }

    [[nodiscard]] std::string identity(int64_t start_count) const {
      std::ostringstream out;
      out.precision(17);
      out << "seed " << ctx.options.seed << " stage " << ctx.index << " reference " << start_count
          << " budget " << target << " drc " << drc << " tries " << opt.tries << " adt " << opt.adt
          << " scoring " << (opt.score_on == scoring_data::held_out ? "held_out" : "train") << ' '
          << set.size() << '/' << opt.scoring_batch << " rejection " << opt.rejection.enabled << ' '
          << opt.rejection.z << ' ' << opt.rejection.min_samples << " rescore " << opt.rescore
          << " proposals "
          << to_string(opt.proposals) << ' ' << to_string(opt.estimate) << ' '
          << opt.gradient_samples << '/'
          << opt.gradient_micro_batch << ' ' << opt.pool_growth << " finetune " << finetune_epochs
          << (opt.finetune_every_iteration ? " every" : " on_fallback")
          << (opt.remeasure_reference ? " remeasure" : " stale");
      return out.str();
    }

    [[nodiscard]] history_row history_of(const iteration_row& r) const {
      return {.phase = "bcd",
              .epoch = r.iteration,
              .relu_count = r.relu_count,
              .held_out_accuracy = r.accuracy,
              .seconds = r.seconds};
    }
    [[nodiscard]] static std::string phase(int64_t iteration) {
      return "bcd_finetune_" + std::to_string(iteration);
    }
    [[nodiscard]] static double since(clock::time_point t0) {
      return std::chrono::duration<double>(clock::now() - t0).count();
    }
    [[nodiscard]] double elapsed() const { return seconds_before + since(started); }
  };
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const coordinate_block& p, F&& f) {  // not stop_after_iterations: it only interrupts
  f("tries", p.tries);
  f("adt", p.adt);
  f("score_on", std::string(p.score_on == scoring_data::held_out ? "held_out" : "train"));
  f("scoring_size", p.scoring_size);
  f("scoring_batch", p.scoring_batch);
  f("rejection_enabled", p.rejection.enabled);
  f("rejection_z", p.rejection.z);
  f("rejection_min_samples", p.rejection.min_samples);
  f("rescore", p.rescore);
  f("proposals", std::string(to_string(p.proposals)));
  f("gradient_samples", p.gradient_samples);
  f("gradient_micro_batch", p.gradient_micro_batch);
  f("estimate", std::string(to_string(p.estimate)));
  f("pool_growth", p.pool_growth);
  f("finetune_epochs", p.finetune_epochs);
  f("finetune_every_iteration", p.finetune_every_iteration);
  f("remeasure_reference", p.remeasure_reference);
}

}  // namespace linearize::select
