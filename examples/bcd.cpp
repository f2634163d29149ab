// Coordinate descent on the cached baseline of examples/pretrain (trained first when missing):
// from the full network, from a saved mask, or after SNL (`snl | bcd`).
//
//   ./build/examples/bcd --budget 20000                      # the full network to 20,000 ReLUs
//   ./build/examples/bcd --mask snl/mask --budget 4%          # from a mask
//   ./build/examples/bcd --snl-budget 8% --budget 4%          # SNL to 8%, then BCD to 4%
//
// Rerunning the same command resumes from the work directory's checkpoints.
#include "cli.hpp"

#include <linearize/linearize.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

namespace fs = std::filesystem;
using namespace linearize;

namespace {

void print_stage(const stage_report& s) {
  fmt::print("  {:<45} ReLUs {} -> {} (budget {})  test {:.2f}% -> {:.2f}% after finetune  {} images  {:.0f} s\n",
             s.name, grouped(s.relu_count_before), grouped(s.relu_count), grouped(s.budget),
             100 * s.test_accuracy_selected, 100 * s.test_accuracy_finetuned, grouped(s.images_forwarded),
             s.seconds);
  if (const auto* found = s.details_as<select::coordinate_report>()) {
    const auto& r = *found;
    fmt::print("    coordinate descent: {} of {} iterations, {} tries ({} rejected early), {} passed, "
               "{} fell back, {} finetunes\n"
               "    images: scoring {}, gradient {}, finetune {}; {:.0f} s (scoring {:.0f}, gradient {:.0f}, "
               "finetune {:.0f})\n",
               r.iterations, r.planned_iterations, r.tries, r.early_rejections, r.accepted, r.fallbacks,
               r.finetunes, grouped(r.scoring_images), grouped(r.gradient_images), grouped(r.finetune_images),
               r.seconds, r.scoring_seconds, r.gradient_seconds, r.finetune_seconds);
  }
}

struct settings {
  std::string budget_text, snl_budget_text;
  fs::path mask_file;
  int64_t drc = 100, epochs = 5, search_epochs = 6, subset = 0;
  std::optional<int64_t> final_epochs;
  select::coordinate_block policy{};  // its defaults are the command line's
  std::string proposals{select::to_string(policy.proposals)};
  bool no_early_rejection = false;
  train::baseline_spec spec;
  run_options options;
  std::optional<fs::path> out_mask;
  cli::parallel_options parallel;
};

void add_options(CLI::App& app, settings& s) {
  s.options.work_dir = "runs/bcd";
  app.add_option("--budget", s.budget_text, "ReLUs to reach: a count, a percentage or a fraction")
      ->required()
      ->check(cli::budget());
  auto* snl = app.add_option("--snl-budget", s.snl_budget_text,
                             "run SNL (budget_tracking) to this budget first, then coordinate descent")
                  ->check(cli::budget());
  app.add_option("--mask", s.mask_file, "start from this mask (MaskSet::save) instead of the full network")
      ->excludes(snl);
  app.add_option("--drc", s.drc, "ReLUs dropped per iteration")->check(cli::at_least<int64_t>(1));
  app.add_option("--tries", s.policy.tries, "candidate blocks per iteration")->check(cli::at_least<int64_t>(1));
  app.add_option("--adt", s.policy.adt, "accuracy-drop threshold, points")->check(cli::at_least(0.0));
  app.add_option("--scoring-size", s.policy.scoring_size, "held-out images scoring each candidate (0: all)")
      ->check(cli::at_least<int64_t>(0));
  app.add_option("--proposals", s.proposals, "first_order or uniform (the paper's draws)")
      ->check(cli::one_of({"first_order", "uniform"}));
  app.add_flag("--no-early-rejection", s.no_early_rejection, "score every candidate on the whole scoring set");
  app.add_flag("--finetune-every-iteration", s.policy.finetune_every_iteration,
               "KD after every iteration, not only after fallbacks");
  app.add_option("--epochs", s.epochs, "KD epochs of each finetune in the search")->check(cli::at_least<int64_t>(0));
  app.add_option("--final-epochs", s.final_epochs, "KD epochs after the search (default: --epochs)")
      ->check(cli::at_least<int64_t>(0));
  app.add_option("--search-epochs", s.search_epochs, "SNL's planned mask-search epochs (with --snl-budget)")
      ->check(cli::at_least<int64_t>(1));
  app.add_option("--train-subset", s.subset, "training images used (0: all)")->check(cli::at_least<int64_t>(0));
  cli::add_baseline_spec(app, s.spec);
  app.add_option("--work-dir", s.options.work_dir, "checkpoints; rerunning resumes");
  app.add_option("--out-mask", s.out_mask, "the final mask (default: <work-dir>/bcd.mask)");
  cli::add_seed(app, s.options.seed, "seeds the search and finetuning");
  cli::add_parallel(app, s.parallel);
}

int run_example(settings& s) {
  auto& policy = s.policy;
  auto& options = s.options;
  const auto& spec = s.spec;
  policy.proposals = select::parse_proposal(s.proposals);
  policy.finetune_epochs = s.epochs;
  policy.rejection.enabled = !s.no_early_rejection;
  const int64_t final_epochs = s.final_epochs.value_or(s.epochs);
  const fs::path out_mask = s.out_mask.value_or(options.work_dir / "bcd.mask");
  const auto& mask_file = s.mask_file;
  const auto& snl_budget_text = s.snl_budget_text;
  const auto drc = s.drc;
  const auto search_epochs = s.search_epochs;
  const auto subset = s.subset;
  const auto target = parse_budget(s.budget_text);

  const auto rt = runtime::configure();
  fmt::print("linearize bcd: {} threads, {}\n", rt.threads, rt.allocator_name());
  const auto base = train::load_or_train_baseline(spec);
  auto data = baseline_run_data(base.record, spec.data_dir);
  if (subset > 0) data.train = data.train.take(subset);
  options.augment = base.record.recipe.augment;
  options.sync_batchnorm = s.parallel.sync_batchnorm;
  fmt::print("baseline {}: test top-1 {:.2f}%; {} train, {} held-out (scoring), {} test images\n",
             base.record.model, 100 * base.record.test_top1, grouped(data.train.size()),
             grouped(data.held_out.size()), grouped(data.test.size()));
  std::fflush(stdout);

  auto net = base.net->copy();
  if (!mask_file.empty()) MaskSet(*net).load(mask_file);
  const auto bcd = pipeline(policy, schedule::fixed_step{.drc = drc}, finetune::distill{.epochs = final_epochs});
  run_result result;
  if (!snl_budget_text.empty()) {
    // The Pareto benchmark's snl-tracking: the policies' own defaults.
    const auto snl = pipeline(relax::l1_mix{}, schedule::budget_tracking{.epochs = search_epochs}, select::top_k{},
                              finetune::distill{.epochs = final_epochs});
    options.stage_budgets = {parse_budget(snl_budget_text)};
    result = run(snl | bcd, net, base.net, data, target, options);
  } else {
    result = run(bcd, net, base.net, data, target, options);
  }

  fmt::print("\n{}: {} of {} ReLUs; test accuracy {:.2f}% (baseline {:.2f}%), {:.0f} s, {} images\n",
             result.method, grouped(result.relu_count), grouped(result.total_relus),
             100 * result.test_accuracy_after_finetune, 100 * result.baseline_test_accuracy, result.seconds,
             grouped(result.images_forwarded));
  for (const auto& s : result.stages) print_stage(s);
  report(std::cout, result, MaskSet(*net), pi::delphi());
  if (cli::writer()) MaskSet(*net).save(out_mask);
  fmt::print("mask written to {}\n", out_mask.string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::app app{"Coordinate descent on the cached baseline: from the full network, from a saved mask, "
               "or after SNL (--snl-budget). Rerunning the same command resumes.", "bcd"};
  settings s;
  add_options(app, s);
  return cli::run(app, s.parallel, argc, argv, [&] { return run_example(s); });
}
