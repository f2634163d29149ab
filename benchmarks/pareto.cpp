// The accuracy-versus-ReLU-budget benchmark as evidence: at each budget every method gets the
// same compute (images forwarded: search, scoring and finetuning together), over several seeds,
// and comparisons are paired differences with their standard errors. Methods, from one cached
// baseline on one data split:
//   baseline           the network as trained (no compute)
//   linear             every ReLU removed, then KD finetuning with the whole compute (the floor)
//   random             uniform-random ReLUs at the budget, then KD with the whole compute
//   snl-lasso          SNL with its own schedule (lasso_growth from 1e-5, x1.1 an epoch), its
//                      search capped by the compute, magnitude selection, KD with the rest
//   snl-tracking       SNL with budget_tracking searching to the budget (search_to 1; the
//                      library's default before l1_mix's own 4), then KD with the rest
//   snl-tracking-cut   the same with budget_tracking{.search_to = --search-to}: the search stops
//                      above the budget and magnitude keeps the largest masks (at 4, l1_mix's
//                      default; not in the default method list)
//   snl-tracking+bcd   coordinate descent from snl-tracking's search at the next larger budget,
//                      finetuned --bcd-start-epochs first (every stage's images count), then KD
//                      with the rest
//   snl-tracking-cut+bcd  the same from snl-tracking-cut's network at the next larger budget
//                      (not by default)
//   snl-tracking-channel  snl-tracking on channel masks (one mask entry per channel: the
//                      baseline's weights in a network built with channel-granularity slots)
//   autorep            AutoReP: hard masks with hysteresis, polynomials where ReLUs go, the
//                      density hinge for --search-epochs, top_k to the budget, KD with the rest
//   autorep+bcd        coordinate descent from autorep's search at the next larger budget
//   senet              SENet: measured per-slot sensitivity sets each slot's count, then
//                      --search-epochs rounds of reselection by teacher-student difference, each
//                      with one KD epoch (no BatchNorm re-estimation or held-out pass per
//                      round); KD with the rest
//   senet+bcd          coordinate descent from senet's network at the next larger budget
//   deepreduce         culling and thinning to the fewest ReLUs it reaches, then KD with the rest
// Writes, into --out:
//   pareto.csv, pareto.json     one row per method, budget and seed (images forwarded, the
//                               top-up epochs it got, accuracy before the top-up)
//   summary.md                  mean +- s.e. per method and budget, and the paired comparisons
//   accuracy_vs_relus.svg       mean accuracy against mean ReLU count, s.e. as bars
//   work/...                    checkpoints: rerunning the command resumes
// and with --readme FILE the same tables between FILE's `<!-- pareto:begin -->` and
// `<!-- pareto:end -->` lines (--section names another pair), so that the README quotes this
// run's files.
#include "../examples/cli.hpp"

#include <linearize/linearize.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace lz = linearize;

namespace {

const std::vector<std::string> known_methods = {"linear", "random", "lasso", "tracking", "tracking-cut", "bcd",
                                                 "tracking-cut-bcd", "channel", "autorep", "autorep-bcd",
                                                 "senet", "senet-bcd", "deepreduce"};
// Every known method but the cut's two, which run when asked for.
const std::string default_methods = [] {
  std::string list;
  for (const auto& m : known_methods)
    if (!m.starts_with("tracking-cut")) list += (list.empty() ? "" : ",") + m;
  return list;
}();

struct settings {
  std::string budgets_text = "10%,5%,3%,1%", methods_text = default_methods;
  std::vector<std::string> budgets, methods;
  lz::train::baseline_spec spec;
  lz::train::baseline_options baseline;
  int64_t train_subset = 10000, held_out_subset = 0, test_subset = 0;
  int64_t seeds = 3;
  uint64_t seed = 0;
  double compute_epochs = 8;  ///< images per result = this x the training images
  int64_t search_epochs = 3;  ///< budget_tracking's plan; AutoReP's search
  double search_to = 4;       ///< snl-tracking-cut's budget_tracking{.search_to}
  int64_t bcd_iterations = 5, bcd_tries = 8, bcd_scoring = 1000;
  double bcd_adt = 0.3;
  int64_t bcd_start_epochs = 1;  ///< KD epochs on the searched network before coordinate descent
  int64_t bcd_finetune_epochs = 0;  ///< coordinate_block{.finetune_epochs}: after each fallback
  int64_t criticality_epochs = 1, step_epochs = 1;
  int64_t autorep_fit_batches = 0;  ///< relax::autorep{.fit_batches}: 0, the public code's start
  fs::path out = "runs/pareto", readme;
  std::string section = "pareto";  ///< --readme writes between <!-- section:begin/end -->
  bool quick = false;
  bool tables_only = false;
};

void add_options(CLI::App& app, settings& s) {
  const auto count = [](int64_t min) { return cli::at_least<int64_t>(min); };
  app.add_option("--budgets", s.budgets_text, "budgets, largest first: counts, percentages or fractions")
      ->check(CLI::Validator(
          [](std::string& text) {
            for (auto b : cli::split_list(text))
              if (auto why = cli::budget()(b); !why.empty()) return why;
            return cli::split_list(text).empty() ? std::string("expected e.g. 8%,4%,2%") : std::string();
          },
          "LIST"));
  app.add_option("--methods", s.methods_text, fmt::format("any of {}", fmt::join(known_methods, ", ")))
      ->check(CLI::Validator(
          [](std::string& text) {
            for (const auto& m : cli::split_list(text))
              if (std::find(known_methods.begin(), known_methods.end(), m) == known_methods.end())
                return fmt::format("unknown method '{}'; expected one of {}", m, fmt::join(known_methods, ", "));
            return std::string();
          },
          "LIST"));
  cli::add_baseline_spec(app, s.spec);
  app.add_option("--train-subset", s.train_subset, "training images the methods use (0: all)")->check(count(0));
  app.add_option("--held-out-subset", s.held_out_subset, "held-out images for model selection and BCD scoring (0: all)")
      ->check(count(0));
  app.add_option("--test-subset", s.test_subset, "test images (0: all)")->check(count(0));
  app.add_option("--seeds", s.seeds, "runs of every method and budget, seeds --seed, --seed + 1, ...")->check(count(1));
  cli::add_seed(app, s.seed, "the first seed of the methods' searches and finetuning");
  app.add_option("--compute", s.compute_epochs,
                 "images forwarded per result, in epochs of the training images (search, scoring and "
                 "finetuning together; what a method leaves goes to KD finetuning)")
      ->check(cli::above(0));
  app.add_option("--search-epochs", s.search_epochs, "snl-tracking's planned mask-search epochs")->check(count(1));
  app.add_option("--search-to", s.search_to,
                 "snl-tracking-cut's search stops at this multiple of the budget; magnitude keeps the largest masks")
      ->check(cli::at_least(1.0));
  app.add_option("--bcd-iterations", s.bcd_iterations, "coordinate-descent iterations per run (DRC follows)")
      ->check(count(1));
  app.add_option("--bcd-tries", s.bcd_tries,
                 "K: candidate blocks per iteration, at most (fewer where the compute holds fewer)")
      ->check(count(1));
  app.add_option("--bcd-finetune-epochs", s.bcd_finetune_epochs,
                 "KD epochs after each iteration where no block passed ADT, counted in the compute (0: none; "
                 "the top-up finetunes at the end)")
      ->check(count(0));
  app.add_option("--bcd-adt", s.bcd_adt, "accuracy-drop threshold, points")->check(cli::at_least(0.0));
  app.add_option("--bcd-start-epochs", s.bcd_start_epochs,
                 "KD epochs (training images, no held-out pass) finetuning the larger budget's searched network "
                 "before coordinate descent starts from it, counted in its compute (0: the search's network as it "
                 "ended, unfinetuned)")
      ->check(count(0));
  app.add_option("--bcd-scoring-size", s.bcd_scoring, "held-out images scoring each candidate")->check(count(0));
  app.add_option("--autorep-fit-batches", s.autorep_fit_batches,
                 "AutoReP: batches to fit each polynomial to its ReLU's inputs before the search (0: start "
                 "at the identity; fitted, 4 of 11 searches at 1% collapsed)")
      ->check(count(0));
  app.add_option("--criticality-epochs", s.criticality_epochs, "DeepReDuce: KD epochs per stage when measuring criticality")
      ->check(count(1));
  app.add_option("--step-epochs", s.step_epochs, "DeepReDuce: KD epochs after each culling/thinning step")
      ->check(count(0));
  app.add_option("--out", s.out, "output directory (--quick: runs/pareto_quick)");
  app.add_option("--readme", s.readme, "also write the tables into this markdown file, between its "
                 "<!-- pareto:begin --> and <!-- pareto:end --> lines");
  app.add_option("--section", s.section,
                 "the README section --readme writes: <!-- NAME:begin --> to <!-- NAME:end -->");
  app.add_flag("--quick", s.quick,
               "a smoke run: width 4, 3,000 training images, 300 held-out, 500 test, budgets 10%,5%, "
               "2 seeds, compute 6 epochs, a 4-epoch search, 2 BCD iterations of 2 tries on 250 images; "
               "options given explicitly win");
  app.add_flag("--tables-only", s.tables_only,
               "train nothing: write the tables from <out>/pareto.csv as it stands, from the rows of "
               "seeds --seed to --seed + --seeds - 1 (for a run stopped before its last seed)");
}

/// --quick: small enough for CI; its numbers say nothing about the methods. Only options not
/// given on the command line take these values.
void apply_quick(const CLI::App& app, settings& s) {
  const auto quick = [&](const char* option, auto& value, auto small) {
    if (app.count(option) == 0) value = small;
  };
  quick("--width", s.spec.width, std::optional<double>(4));
  // 3,000 images: 24 steps an epoch, so that l1_mix's masks can cross within a 4-epoch search.
  quick("--train-subset", s.train_subset, 3000);
  quick("--held-out-subset", s.held_out_subset, 300);
  quick("--test-subset", s.test_subset, 500);
  quick("--seeds", s.seeds, 2);
  quick("--compute", s.compute_epochs, 6.0);
  quick("--search-epochs", s.search_epochs, 4);
  quick("--bcd-iterations", s.bcd_iterations, 2);
  quick("--bcd-tries", s.bcd_tries, 2);
  quick("--bcd-scoring-size", s.bcd_scoring, 250);
  quick("--criticality-epochs", s.criticality_epochs, 1);
  quick("--step-epochs", s.step_epochs, 0);
  quick("--budgets", s.budgets_text, std::string("10%,5%"));
  quick("--out", s.out, fs::path("runs/pareto_quick"));
  s.baseline.recipe.epochs = 1;
  s.baseline.out = s.out / "baseline.pt";  // not the cached width-16 baseline
}

/// The baseline's network with `grain` masks: built anew, every weight and buffer copied by name,
/// the masks (another shape) left at their start, every ReLU kept.
lz::Network with_granularity(const settings& s, const lz::train::baseline& base, lz::granularity grain) {
  const auto& r = base.record;
  auto net = lz::models::make_model(s.spec.model, {.classes = r.classes, .channels = r.channels,
                                                   .size = r.image_height,
                                                   .width = s.spec.width ? s.spec.width : lz::train::baseline_width(s.spec.model),
                                                   .grain = grain});
  torch::NoGradGuard no_grad;
  const auto from_params = base.net->named_parameters(true);
  for (auto& p : net->named_parameters(true))
    if (!p.key().ends_with(".mask")) p.value().copy_(from_params[p.key()]);
  const auto from_buffers = base.net->named_buffers(true);
  for (auto& b : net->named_buffers(true)) b.value().copy_(from_buffers[b.key()]);
  return net;
}

bool wants(const settings& s, const std::string& method) {
  return std::find(s.methods.begin(), s.methods.end(), method) != s.methods.end();
}

}  // namespace

/// Every method at every budget for every seed, each result's row written as it comes (an
/// interruption loses none); the rows in order.
std::vector<lz::io::result_row> run_methods(const settings& s, const lz::train::baseline& base, const lz::run_data& data,
                                            int64_t total, int64_t compute, int64_t epoch_images,
                                            const std::vector<int64_t>& counts) {
  std::vector<lz::io::result_row> rows, steps;
  const auto write = [&] {  // after every result: an interruption loses none
    lz::io::write_csv(s.out / "pareto.csv", rows);
    lz::io::write_json(s.out / "pareto.json", rows);
    if (!steps.empty()) lz::io::write_csv(s.out / "deepreduce_steps.csv", steps);
  };
  {
    lz::io::result_row row{.method = "baseline", .budget = static_cast<double>(total), .relu_count = total,
                           .accuracy = 100 * lz::train::evaluate(*base.net, data.test).top1,
                           .pi_latency_s = lz::pi::delphi().latency(total)};
    row.set("budget_text", "100%");
    rows.push_back(row);
  }

  // A finetune first re-estimates BatchNorm (distill's recalibration batches), then trains: the
  // top-up's cost beyond its epochs, and the cost of a run's own finetune of 0 epochs.
  const auto recalibration_of = [&](const lz::finetune::distill& d) {
    return d.recalibrate_bn ? std::min(data.train.size(), d.recalibration_batches * lz::run_options{}.batch_size) : 0;
  };
  const lz::finetune::distill top_up{};
  const int64_t recalibration = recalibration_of(top_up);
  for (int64_t k = 0; k < s.seeds; ++k) {
    const uint64_t seed = s.seed + static_cast<uint64_t>(k);
    const auto work = [&](const std::string& name) {
      lz::run_options o;
      o.seed = seed;
      o.augment = base.record.recipe.augment;
      o.progress.mode = lz::train::progress_mode::lines;
      o.work_dir = s.out / "work" / fmt::format("seed{}", seed) / name;
      return o;
    };
    // The rest of the compute as KD finetuning, then the row. `used`: images the method took.
    // Each top-up epoch forwards the training and the held-out set (the epoch kept is the best on
    // held-out data); where the rest holds no such epoch, one pass over as many training images as
    // it holds (all of them at most) runs without the held-out pass, kept as it ends: a 1% tracking
    // search that ran its overtime left 18,480 images, less than 22,400, and went without any
    // finetuning; a 3% coordinate descent left 8,656 and its network kept 69.75%.
    const auto finish = [&](lz::io::result_row row, const lz::Network& net, const std::string& name,
                            const std::string& budget_text) {
      const int64_t used = row.images_forwarded, rest = compute - used - recalibration;
      int64_t epochs = std::max<int64_t>(0, rest / epoch_images);
      // The pass's BatchNorm re-estimate reads its own images, up to `recalibration` of them.
      const int64_t pass = std::min(data.train.size(), rest >= recalibration ? rest : (compute - used) / 2);
      const int64_t one_pass = epochs == 0 && pass >= lz::run_options{}.batch_size ? pass : 0;
      if (one_pass > 0) epochs = 1;
      row.set("budget_text", budget_text).set("seed", seed);
      row.set("method_images", used).set("top_up_epochs", epochs).set("accuracy_before_top_up", row.accuracy);
      if (epochs > 0) {
        row.set("top_up_held_out", one_pass > 0 ? 0 : 1);
        if (one_pass > 0) row.set("top_up_train_images", one_pass);
        auto recipe = top_up;
        recipe.epochs = epochs;
        recipe.select_on_held_out = one_pass == 0;
        auto part = data;
        if (one_pass > 0) part.train = data.train.take(one_pass);
        const auto ft = lz::run_finetune(recipe, net, base.net, part, work(name), "top-up");
        row.accuracy = 100 * ft.test_accuracy;
        row.images_forwarded += ft.images_forwarded;
        row.wall_time_s += ft.seconds;
      }
      const lz::MaskSet masks(*net);
      row.relu_count = masks.relu_count();
      const int64_t polynomials = masks.polynomial_count();
      row.pi_latency_s = lz::pi::delphi().latency(row.relu_count, 0, polynomials);
      if (polynomials > 0) row.set("polynomials", polynomials);
      row.set("compute", row.images_forwarded > compute ? "over" : "within");
      fmt::print("  -> {} at {} (seed {}): {} ReLUs, test {:.2f}% ({:.2f}% before {} top-up epochs), {} of {} "
                 "images, {:.0f} s\n",
                 row.method, budget_text, seed, lz::grouped(row.relu_count), row.accuracy,
                 std::stod(*row.get("accuracy_before_top_up")), epochs, lz::grouped(row.images_forwarded),
                 lz::grouped(compute), row.wall_time_s);
      std::fflush(stdout);
      rows.push_back(std::move(row));
      write();
    };
    const auto row_of = [&](const lz::run_result& r, const std::string& method) {
      auto row = lz::result_row(r, method, lz::pi::delphi());
      // Where a mask search ended, before its selection: whether the schedule reached the budget.
      for (const auto& h : r.history)
        if (h.phase == "search") row.set("search_count", h.relu_count);
      return row;
    };

    if (wants(s, "linear")) {
      fmt::print("\n== linear floor (seed {})\n", seed);
      auto net = base.net->copy();
      const lz::MaskSet masks(*net);
      masks.harden(torch::zeros_like(masks.binary()));
      lz::io::result_row row{.method = "linear", .budget = 0, .relu_count = 0,
                             .accuracy = 100 * lz::train::evaluate(*net, data.test).top1, .wall_time_s = 0};
      finish(row, net, "linear", "0");
    }

    // SNL with budget_tracking, the library's defaults but for search_to (given, so that the rows
    // written before l1_mix had its own read back unchanged).
    const auto snl_tracking = [&](double search_to) {
      return lz::pipeline(lz::relax::l1_mix{}, lz::schedule::budget_tracking{.epochs = s.search_epochs, .search_to = search_to},
                          lz::select::magnitude{}, lz::finetune::distill{.epochs = 0});
    };
    // The searched networks (snl-tracking's, the cut's, AutoReP's, SENet's), before their top-up:
    // coordinate descent starts there.
    std::map<size_t, std::pair<lz::Network, lz::run_result>> searched, cut_searched, autorep_searched, senet_searched;
    for (size_t i = 0; i < counts.size(); ++i) {
      const auto& b = s.budgets[i];
      const auto at = lz::budget(counts[i]);
      if (wants(s, "random")) {
        fmt::print("\n== random to {} (seed {})\n", b, seed);
        auto net = base.net->copy();
        const auto r = lz::run(lz::pipeline(lz::select::random{}, lz::finetune::distill{.epochs = 0}), net,
                               base.net, data, at, work("random_" + b));
        finish(row_of(r, "random"), net, "random_" + b, b);
      }
      if (wants(s, "lasso")) {
        fmt::print("\n== SNL with lasso_growth to {} (seed {})\n", b, seed);
        // Its own schedule, its search capped so that one top-up epoch still fits in the compute:
        // the search's epochs, the run's BatchNorm re-estimation, then the top-up's (capped at
        // compute / train - 1 = 7 epochs, it left 3,600 images, no top-up: 36% at 5%).
        const auto cap =
            std::max<int64_t>(1, (compute - 2 * recalibration - epoch_images) / data.train.size());
        auto net = base.net->copy();
        const auto r = lz::run(lz::pipeline(lz::relax::l1_mix{}, lz::schedule::lasso_growth{.epoch_cap = cap},
                                            lz::select::magnitude{}, lz::finetune::distill{.epochs = 0}),
                               net, base.net, data, at, work("lasso_" + b));
        auto row = row_of(r, "snl-lasso");
        row.set("search_epochs", r.stages.at(0).search_epochs);
        finish(row, net, "lasso_" + b, b);
      }
      if (wants(s, "tracking") || (wants(s, "bcd") && i + 1 < counts.size())) {
        fmt::print("\n== SNL with budget_tracking to {} (seed {})\n", b, seed);
        auto net = base.net->copy();
        const auto r = lz::run(snl_tracking(1), net, base.net, data, at, work("tracking_" + b));
        searched.emplace(i, std::make_pair(net->copy(), r));
        if (wants(s, "tracking")) {
          auto row = row_of(r, "snl-tracking");
          row.set("search_epochs", r.stages.at(0).search_epochs);
          finish(row, net, "tracking_" + b, b);
        }
      }
      if (wants(s, "tracking-cut") || (wants(s, "tracking-cut-bcd") && i + 1 < counts.size())) {
        fmt::print("\n== SNL with budget_tracking to {} x {}, magnitude to {} (seed {})\n", s.search_to, b, b, seed);
        auto net = base.net->copy();
        const auto r = lz::run(snl_tracking(s.search_to), net, base.net, data, at, work("tracking-cut_" + b));
        cut_searched.emplace(i, std::make_pair(net->copy(), r));
        if (wants(s, "tracking-cut")) {
          auto row = row_of(r, "snl-tracking-cut");
          row.set("search_epochs", r.stages.at(0).search_epochs).set("search_to", s.search_to);
          finish(row, net, "tracking-cut_" + b, b);
        }
      }
      // Coordinate descent from a search's network at the previous (larger) budget.
      const auto descend = [&](const std::pair<lz::Network, lz::run_result>& from_search, const std::string& method,
                               const std::string& name) {
        const auto& [from, start] = from_search;
        const int64_t drc =
            std::max<int64_t>(1, (start.relu_count - counts[i] + s.bcd_iterations - 1) / s.bcd_iterations);
        auto net = from->copy();
        // The method starts from a finetuned network, as the paper's does (an SNL output): a search's
        // network before its finetune scored 37-71% at 5%, and accuracy drops measured against such a
        // start say little. Its BatchNorm was re-estimated at the search's end.
        int64_t start_images = start.images_forwarded;
        double start_seconds = start.seconds, start_accuracy = NAN;
        if (s.bcd_start_epochs > 0) {
          const lz::finetune::distill start_recipe{.epochs = s.bcd_start_epochs, .recalibrate_bn = false,
                                                   .select_on_held_out = false};
          const auto ft = lz::run_finetune(start_recipe, net, base.net, data, work(name + "_start_" + b), "start");
          start_images += ft.images_forwarded;
          start_seconds += ft.seconds;
          start_accuracy = 100 * ft.test_accuracy;
        }
        // After each iteration where no block passed ADT (at 3% from a finetuned start: every one),
        // BatchNorm is re-estimated on 10 batches: at distill's 50 the five re-estimates took 32,000
        // of the 80,000 images, and with a KD epoch after each the descent forwarded 204,488.
        const lz::finetune::distill between{.epochs = 0, .recalibration_batches = 10};
        const int64_t per_recalibration = recalibration_of(between);
        // K, the tries per iteration: as many as the compute leaves after the start and one top-up
        // pass (its BatchNorm re-estimate and the training images), at most --bcd-tries, at least 1.
        // An iteration costs about a first-order estimate, the reference's re-measure, K scorings
        // and, should no block pass (at 8 epochs' compute every iteration at 3% and 1%), a
        // re-estimate and --bcd-finetune-epochs KD epochs over the training and held-out images.
        const lz::select::coordinate_block defaults{};
        const int64_t per_scoring = std::max<int64_t>(1, s.bcd_scoring > 0 ? s.bcd_scoring : data.held_out.size());
        const int64_t per_fallback = per_recalibration + s.bcd_finetune_epochs * epoch_images;
        const int64_t left = compute - start_images - recalibration - data.train.size();
        const int64_t tries = std::clamp<int64_t>(
            (left / s.bcd_iterations - defaults.gradient_samples - per_fallback) / per_scoring - 1, 1, s.bcd_tries);
        fmt::print("\n== {}: coordinate descent {} -> {} ({} -> {} ReLUs, DRC {}, K {}, seed {})\n", method,
                   s.budgets[i - 1], b, lz::grouped(start.relu_count), lz::grouped(counts[i]), drc, tries, seed);
        const auto bcd = lz::pipeline(lz::select::coordinate_block{.tries = tries, .adt = s.bcd_adt,
                                                                   .scoring_size = s.bcd_scoring,
                                                                   .finetune_epochs = s.bcd_finetune_epochs},
                                      lz::schedule::fixed_step{.drc = drc}, between);
        const auto r = lz::run(bcd, net, base.net, data, at, work(name + "_" + b));
        auto row = row_of(r, method);
        row.images_forwarded += start_images;
        row.wall_time_s += start_seconds;
        row.set("start_relus", start.relu_count).set("start_epochs", s.bcd_start_epochs).set("bcd_k", tries);
        if (s.bcd_start_epochs > 0) row.set("start_accuracy", start_accuracy);
        // A search that already ended within this budget leaves coordinate descent nothing to do.
        if (r.stages.at(0).details.has_value()) {
          const auto rep = lz::select::coordinate_report::of(r.stages.at(0));
          row.set("bcd_iterations", rep.iterations).set("bcd_tries", rep.tries)
              .set("bcd_early_rejections", rep.early_rejections).set("bcd_fallbacks", rep.fallbacks);
        } else {
          row.set("bcd_iterations", 0);
        }
        finish(row, net, name + "_" + b, b);
      };
      if (wants(s, "bcd") && i > 0) descend(searched.at(i - 1), "snl-tracking+bcd", "bcd");
      if (wants(s, "tracking-cut-bcd") && i > 0) descend(cut_searched.at(i - 1), "snl-tracking-cut+bcd", "cut_bcd");

      if (wants(s, "channel")) {
        fmt::print("\n== SNL with budget_tracking on channel masks to {} (seed {})\n", b, seed);
        auto net = with_granularity(s, base, lz::granularity::channel);
        const auto r = lz::run(snl_tracking(1), net, base.net, data, at, work("channel_" + b));
        auto row = row_of(r, "snl-tracking-channel");
        row.set("search_epochs", r.stages.at(0).search_epochs);
        finish(row, net, "channel_" + b, b);
      }

      if (wants(s, "autorep") || (wants(s, "autorep-bcd") && i + 1 < counts.size())) {
        fmt::print("\n== AutoReP to {} (seed {})\n", b, seed);
        auto net = base.net->copy();
        const auto r = lz::run(lz::pipeline(lz::relax::autorep{.fit_batches = s.autorep_fit_batches}, lz::schedule::density_hinge{.epochs = s.search_epochs},
                                            lz::select::top_k{}, lz::finetune::distill{.epochs = 0}),
                               net, base.net, data, at, work("autorep_" + b));
        autorep_searched.emplace(i, std::make_pair(net->copy(), r));
        if (wants(s, "autorep")) {
          auto row = row_of(r, "autorep");
          row.set("search_epochs", r.stages.at(0).search_epochs);
          finish(row, net, "autorep_" + b, b);
        }
      }
      if (wants(s, "autorep-bcd") && i > 0) descend(autorep_searched.at(i - 1), "autorep+bcd", "autorep_bcd");

      if (wants(s, "senet") || (wants(s, "senet-bcd") && i + 1 < counts.size())) {
        fmt::print("\n== SENet to {} (seed {})\n", b, seed);
        auto net = base.net->copy();
        // Each round's KD epoch trains in train mode (BatchNorm follows the new mask) and keeps
        // its last weights, as SENet's public code does: no re-estimation or held-out pass per
        // round, which cost 12,400 images a round here and put the rows over the compute.
        const lz::finetune::distill rounds{.epochs = 0, .recalibrate_bn = false, .select_on_held_out = false};
        const auto r = lz::run(lz::pipeline(lz::select::senet{.epochs = s.search_epochs}, rounds),
                               net, base.net, data, at, work("senet_" + b));
        senet_searched.emplace(i, std::make_pair(net->copy(), r));
        if (wants(s, "senet")) finish(row_of(r, "senet"), net, "senet_" + b, b);
      }
      if (wants(s, "senet-bcd") && i > 0) descend(senet_searched.at(i - 1), "senet+bcd", "senet_bcd");
    }

    if (wants(s, "deepreduce")) {
      fmt::print("\n== DeepReDuce (seed {})\n", seed);
      const auto o = work("deepreduce");
      const auto measured = lz::select::measure_criticality(base.net, base.net, data, o,
                                                            {.epochs = s.criticality_epochs},
                                                            lz::finetune::distill{.epochs = 1});
      const lz::select::stage_criticality selection{.ranking = measured.ranking};
      const int64_t floor = lz::select::fewest_planned(lz::MaskSet(*base.net).per_slot(), measured.ranking,
                                                       {.thin = selection.thin, .keep_stages = selection.keep_stages});
      const auto deepreduce = lz::pipeline(
          selection, lz::schedule::stagewise{.cull_per_step = 1, .thin_per_step = 1, .step_epochs = s.step_epochs},
          lz::finetune::distill{.epochs = 0});
      auto net = base.net->copy();
      const auto r = lz::run(deepreduce, net, base.net, data, lz::budget(floor), o);
      for (const auto& step : lz::select::deepreduce_report::of(r.stages.at(0)).steps) {
        lz::io::result_row row{.method = "deepreduce-step", .budget = static_cast<double>(floor),
                               .relu_count = step.relu_count, .accuracy = 100 * step.test_accuracy_finetuned};
        row.set("step", step.name).set("seed", seed).set("accuracy_before_finetune", 100 * step.test_accuracy_selected);
        steps.push_back(row);
      }
      auto row = row_of(r, "deepreduce");
      row.images_forwarded += measured.images_forwarded;
      row.wall_time_s += measured.seconds;
      finish(row, net, "deepreduce", "own");
    }
  }
  return rows;
}

int main(int argc, char** argv) {
  cli::app app{"The accuracy-versus-ReLU-budget benchmark at equal compute over seeds: the linear floor, "
               "random selection, SNL (lasso and budget_tracking), SNL + coordinate descent and DeepReDuce "
               "from one cached baseline. Rerunning resumes from <out>/work.",
               "pareto"};
  settings settings_;
  add_options(app, settings_);
  return cli::run(app, argc, argv, [&] {
    if (settings_.quick) apply_quick(app, settings_);
    settings_.budgets = cli::split_list(settings_.budgets_text);
    settings_.methods = cli::split_list(settings_.methods_text);
    const auto& s = settings_;
    const auto rt = lz::runtime::configure();
    fmt::print("linearize pareto: {} threads, {}, fused kernel {}{}\n", rt.threads, rt.allocator_name(),
               lz::kernels::simd_name(), s.quick ? "; --quick: a smoke run, not a measurement" : "");
    if (!s.readme.empty()) (void)lz::io::replace_section(lz::read_file(s.readme), s.section, "", s.readme.string());

    // One baseline and one split for every method.
    const auto base = lz::train::load_or_train_baseline(s.spec, s.baseline);
    auto data = lz::baseline_run_data(base.record, s.spec.data_dir);
    if (s.train_subset > 0) data.train = data.train.take(s.train_subset);
    if (s.held_out_subset > 0) data.held_out = data.held_out.take(s.held_out_subset);
    if (s.test_subset > 0) data.test = data.test.take(s.test_subset);
    const int64_t total = lz::MaskSet(*base.net).total_relus();
    const auto compute = static_cast<int64_t>(s.compute_epochs * static_cast<double>(data.train.size()));
    // A KD epoch forwards the training images and evaluates the held-out ones (keep-best).
    const int64_t epoch_images = data.train.size() + data.held_out.size();
    fmt::print("baseline {}: test top-1 {:.2f}%, {} ReLUs; methods see {} train, {} held-out, {} test images; "
               "{} images forwarded per result, {} seed(s)\n",
               base.record.model, 100 * base.record.test_top1, lz::grouped(total), lz::grouped(data.train.size()),
               lz::grouped(data.held_out.size()), lz::grouped(data.test.size()), lz::grouped(compute), s.seeds);

    std::vector<int64_t> counts;
    for (const auto& b : s.budgets) counts.push_back(lz::parse_budget(b).resolve(total));
    for (size_t i = 1; i < counts.size(); ++i)
      lz::require(counts[i] < counts[i - 1], "pareto: --budgets must be largest first and distinct; '",
                  s.budgets[i], "' (", counts[i], " ReLUs) follows '", s.budgets[i - 1], "' (", counts[i - 1], ")");

    std::vector<lz::io::result_row> rows;
    if (!s.tables_only) rows = run_methods(s, base, data, total, compute, epoch_images, counts);
    // Summaries and comparisons, from the file as written.
    auto back = lz::io::read_csv(s.out / "pareto.csv");
    if (s.tables_only) {
      // Whole seeds only: a comparison pairs each method's rows by seed.
      std::erase_if(back, [&](const lz::io::result_row& r) {
        const auto seed = r.get("seed");
        return seed && (std::stoull(*seed) < s.seed || std::stoull(*seed) >= s.seed + static_cast<uint64_t>(s.seeds));
      });
    } else {
      lz::require(back.size() == rows.size(), "pareto: ", s.out / "pareto.csv", " holds ", back.size(),
                  " rows; wrote ", rows.size());
    }
    for (const auto& r : back)
      lz::require(r.method == "baseline" || r.method == "deepreduce" || r.relu_count <= r.budget, "pareto: ",
                  r.method, " kept ", r.relu_count, " ReLUs over its budget of ", r.budget);
    const auto groups = lz::io::summarize_groups(back, "budget_text");
    std::vector<lz::io::comparison> comps;
    const auto have = [&](const std::string& method, const std::string& b) {
      return std::any_of(back.begin(), back.end(), [&](const auto& r) {
        return r.method == method && lz::io::group_of(r, "budget_text") == b;
      });
    };
    for (const auto& b : s.budgets)
      for (const auto& [a, c] : std::vector<std::pair<std::string, std::string>>{
               {"snl-tracking", "snl-lasso"}, {"snl-tracking+bcd", "snl-tracking"}, {"snl-tracking", "random"},
               {"snl-tracking-cut", "snl-tracking"}, {"snl-tracking+bcd", "snl-tracking-cut"},
               {"snl-tracking-cut+bcd", "snl-tracking-cut"}, {"snl-tracking-cut+bcd", "snl-tracking+bcd"},
               {"snl-tracking-channel", "snl-tracking"}, {"autorep", "snl-tracking"}, {"autorep+bcd", "autorep"},
               {"senet", "snl-tracking"}, {"senet+bcd", "senet"}})
        if (have(a, b) && have(c, b)) comps.push_back(lz::io::compare(back, a, c, b, "budget_text"));
    std::string md = fmt::format(
        "{}, {}: {} ReLUs; {} training images, {} images forwarded per result ({:g} epochs' worth), "
        "{} seed(s) from {}.\n\n",
        base.record.dataset, base.record.model, lz::grouped(total), lz::grouped(data.train.size()),
        lz::grouped(compute), s.compute_epochs, s.seeds, s.seed);
    md += lz::io::markdown_summary(groups) + "\n" + lz::io::markdown_comparisons(comps);
    lz::write_atomically(s.out / "summary.md", [&](std::ostream& out) { out << md; });
    if (!s.readme.empty()) lz::io::write_section(s.readme, s.section, md);
    auto plot = lz::io::accuracy_plot(groups, base.record.dataset + ", " + base.record.model);
    lz::io::write_svg(s.out / "accuracy_vs_relus.svg", plot);
    fmt::print("\n{}\nwrote {}/{{pareto.csv, pareto.json, summary.md, accuracy_vs_relus.svg}}{}\n", md,
               s.out.string(), s.readme.empty() ? "" : " and the tables into " + s.readme.string());
    return 0;
  });
}
