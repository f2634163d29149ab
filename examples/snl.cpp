// SNL (Selective Network Linearization) end to end on a cached baseline:
//   mask search (CE + KD + lambda * L1 of the masks) -> binarize (mask > 0.01) -> finetune (KD).
// Prints the per-layer ReLU table, accuracies and the private-inference latency estimate, and
// writes the mask, a results row and a per-layer plot.
//
//   snl --budget 3%                      # 3% of all ReLUs, budget_tracking schedule
//   snl --budget 2880 --schedule lasso   # SNL's own lambda *= 1.1 schedule (hundreds of epochs)
#include "cli.hpp"

#include <linearize/linearize.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  cli::app app{"SNL end to end on the cached baseline: mask search, binarize, finetune (KD); "
               "prints the per-layer ReLU table and writes the mask, a results row and a plot.", "snl"};
  std::string budget_text = "3%", schedule = "tracking", selection = "magnitude";
  int64_t search_epochs = 6, finetune_epochs = 5, max_epochs = 2000, subset = 0;
  // The policies' own defaults (lambda0 0: budget_tracking measures it; lasso starts at SNL's).
  const linearize::schedule::budget_tracking tracking_defaults{};
  double lambda0 = 0, max_change = tracking_defaults.max_change, windup_limit = tracking_defaults.windup_limit,
         step_scale = linearize::relax::l1_mix{}.step_scale, search_to = tracking_defaults.search_to;
  bool no_recalibrate = false;
  linearize::train::baseline_spec spec;
  uint64_t seed = 0;
  int threads = 0;
  std::optional<std::filesystem::path> work_dir;
  app.add_option("--budget", budget_text, "ReLUs to keep: a count (2880), a percentage (3%) or a fraction (0.03)")
      ->check(cli::budget());
  app.add_option("--schedule", schedule,
                 "tracking (the count follows a planned path, few epochs) or lasso (SNL's lambda *= 1.1 "
                 "on plateaus; needs hundreds of epochs)")
      ->check(cli::one_of({"tracking", "lasso"}));
  app.add_option("--select", selection, "magnitude (SNL: mask > 0.01) or top_k (exactly the budget)")
      ->check(cli::one_of({"magnitude", "top_k"}));
  app.add_option("--search-epochs", search_epochs, "planned mask-search epochs of the tracking schedule")
      ->check(cli::at_least<int64_t>(1));
  app.add_option("--lambda0", lambda0,
                 "initial penalty weight (0: tracking measures where this network's count starts to move; "
                 "lasso starts at SNL's)")
      ->check(cli::at_least<double>(0));
  app.add_option("--max-change", max_change, "tracking: the most the weight changes per correction")
      ->check(cli::above(1));
  app.add_option("--windup-limit", windup_limit,
                 "tracking: the weight stays within this factor of the weight at the latest new minimum "
                 "count (anti-windup; see budget_tracking.hpp)")
      ->check(cli::above(1));
  app.add_option("--search-to", search_to,
                 "tracking: the search stops at this multiple of the budget and the selection keeps the largest "
                 "masks (0: l1_mix's own, 4; 1: search to the budget)")
      ->check(cli::at_least<double>(0));
  app.add_option("--max-epochs", max_epochs, "lasso: give up after this many search epochs")
      ->check(cli::at_least<int64_t>(1));
  app.add_option("--finetune-epochs", finetune_epochs, "KD finetuning epochs after binarization")
      ->check(cli::at_least<int64_t>(0));
  app.add_flag("--no-recalibrate", no_recalibrate, "skip re-estimating BatchNorm statistics after binarization");
  app.add_option("--step-scale", step_scale, "how fast the masks move under Adam (l1_mix; SNL's own: 1)")
      ->check(cli::above(0));
  app.add_option("--train-subset", subset, "training images the search and finetuning use (0: all)")
      ->check(cli::at_least<int64_t>(0));
  cli::add_baseline_spec(app, spec);
  cli::add_seed(app, seed, "seeds the search and finetuning");
  app.add_option("--work-dir", work_dir,
                 "checkpoints; rerunning the same command resumes (default: runs/snl/<every setting>)");
  cli::add_threads(app, threads);
  cli::parallel_options parallel;
  cli::add_parallel(app, parallel);

  return cli::run(app, parallel, argc, argv, [&] {
    const bool recalibrate = !no_recalibrate;
    const auto budget = linearize::parse_budget(budget_text);

    const auto rt = cli::configure(threads);
    fmt::print("linearize snl: {} threads, {}\n", rt.threads, rt.allocator_name());

    auto base = linearize::train::load_or_train_baseline(spec);
    auto data = linearize::baseline_run_data(base.record, spec.data_dir);
    if (subset > 0) data.train = data.train.take(subset);
    fmt::print("baseline {} on {}: test top-1 {:.2f}% ({})\n", base.record.model, base.record.dataset,
               100 * base.record.test_top1, base.trained ? "trained now" : "cached");

    linearize::run_options options;
    options.seed = seed;
    options.augment = base.record.recipe.augment;
    options.sync_batchnorm = parallel.sync_batchnorm;
    // Every setting that changes the run is in the default directory's name: a checkpoint is only
    // ever resumed by the same command, never by one with, say, another plan length.
    const auto num = [](double v) { return fmt::format("{:g}", v); };
    // The multiple the tracking search goes to, as pipeline() resolves it (0: l1_mix's own).
    const double searched_to =
        linearize::pipeline(linearize::relax::l1_mix{}, linearize::schedule::budget_tracking{.search_to = search_to},
                            linearize::select::magnitude{})
            .scheduler()
            .search_to;
    const std::string search_setting =
        schedule == "tracking" ? "e" + std::to_string(search_epochs) + "_mc" + num(max_change) + "_wl" + num(windup_limit) +
                                     "_to" + num(searched_to)
                               : "me" + std::to_string(max_epochs);
    options.work_dir = work_dir ? std::filesystem::path(*work_dir)
                                : std::filesystem::path("runs/snl") /
                                      (linearize::train::default_baseline_path(spec).stem().string() +
                                       "_b" + budget_text + "_" + schedule + "_" + search_setting +
                                       "_l" + num(lambda0) + "_ss" + num(step_scale) + "_" + selection +
                                       "_f" + std::to_string(finetune_epochs) + (recalibrate ? "" : "_norecal") +
                                       "_n" + std::to_string(subset) + "_s" + std::to_string(seed));
    const linearize::finetune::distill finetune{.epochs = finetune_epochs, .recalibrate_bn = recalibrate};

    auto net = base.net->copy();
    const auto go = [&](auto scheduler, auto select) {
      const auto snl = linearize::pipeline(linearize::relax::l1_mix{.step_scale = step_scale}, scheduler, select, finetune);
      fmt::print("method {}, budget {}, work dir {}\n", snl.name(), budget.describe(), options.work_dir.string());
      std::fflush(stdout);
      return linearize::run(snl, net, base.net, data, budget, options);
    };
    const auto tracking = linearize::schedule::budget_tracking{.epochs = search_epochs, .lambda0 = lambda0,
                                                               .max_change = max_change,
                                                               .windup_limit = windup_limit,
                                                               .search_to = search_to};
    auto lasso = linearize::schedule::lasso_growth{.epoch_cap = max_epochs};
    if (lambda0 > 0) lasso.lambda0 = lambda0;
    const auto result =
        schedule == "tracking"
            ? (selection == "magnitude" ? go(tracking, linearize::select::magnitude{}) : go(tracking, linearize::select::top_k{}))
            : (selection == "magnitude" ? go(lasso, linearize::select::magnitude{}) : go(lasso, linearize::select::top_k{}));

    linearize::report(std::cout, result, linearize::MaskSet(*net), linearize::pi::delphi());
    if (cli::writer())
      linearize::save_outputs(options.work_dir, "snl", result, linearize::MaskSet(*net), linearize::pi::delphi());
    return 0;
  });
}
