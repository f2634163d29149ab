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

#include <iostream>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace fs = std::filesystem;
using namespace linearize;

namespace {

constexpr const char* usage = R"(usage: bcd --budget B [options]
  --budget B            ReLUs to reach: a count, a percentage or a fraction         (required)
  --snl-budget B        run SNL (budget_tracking) to B first, then coordinate descent
  --mask FILE           start from this mask (MaskSet::save) instead of the full network
  --drc N               ReLUs dropped per iteration                                      [100]
  --tries K             candidate blocks per iteration                                   [100]
  --adt A               accuracy-drop threshold, points                                  [0.3]
  --scoring-size N      held-out images scoring each candidate (0: all)                    [0]
  --proposals P         first_order or uniform (the paper's draws)               [first_order]
  --no-early-rejection  score every candidate on the whole scoring set
  --finetune-every-iteration  KD after every iteration, not only after fallbacks
  --epochs E            KD epochs of each finetune in the search                          [5]
  --final-epochs E      KD epochs after the search                                 [--epochs]
  --search-epochs N     SNL's planned mask-search epochs (with --snl-budget)               [6]
  --train-subset N      training images used (0: all)                                      [0]
  --data NAME / --data-dir DIR / --model NAME / --width W   the baseline (see pretrain)
  --work-dir DIR        checkpoints; rerunning resumes                              [runs/bcd]
  --out-mask FILE       the final mask                                    [runs/bcd/bcd.mask]
  --seed N                                                                                 [0]
  --help
)";


void print_stage(const stage_report& s) {
  std::printf("  %-45s ReLUs %lld -> %lld (budget %lld)  test %.2f%% -> %.2f%% after finetune  "
              "%lld images  %.0f s\n",
              s.name.c_str(), static_cast<long long>(s.relu_count_before),
              static_cast<long long>(s.relu_count), static_cast<long long>(s.budget),
              100 * s.test_accuracy_selected, 100 * s.test_accuracy_finetuned,
              static_cast<long long>(s.images_forwarded), s.seconds);
  if (const auto* found = s.details_as<select::coordinate_report>()) {
    const auto& r = *found;
    std::printf("    coordinate descent: %lld of %lld iterations, %lld tries (%lld rejected early), "
                "%lld passed, %lld fell back, %lld finetunes\n"
                "    images: scoring %lld, gradient %lld, finetune %lld; %.0f s (scoring %.0f, "
                "gradient %.0f, finetune %.0f)\n",
                static_cast<long long>(r.iterations), static_cast<long long>(r.planned_iterations),
                static_cast<long long>(r.tries), static_cast<long long>(r.early_rejections),
                static_cast<long long>(r.accepted), static_cast<long long>(r.fallbacks),
                static_cast<long long>(r.finetunes), static_cast<long long>(r.scoring_images),
                static_cast<long long>(r.gradient_images), static_cast<long long>(r.finetune_images),
                r.seconds, r.scoring_seconds, r.gradient_seconds, r.finetune_seconds);
  }
}

int run_example(cli::arguments& args) {
  const auto budget_text = args.text("budget", "");
  const auto snl_budget_text = args.text("snl-budget", "");
  const fs::path mask_file = args.text("mask", "");
  const auto drc = args.number<int64_t>("drc", 100, cli::positive, "a positive count");
  const auto epochs = args.number<int64_t>("epochs", 5, cli::non_negative, "a count >= 0");
  const auto final_epochs = args.number<int64_t>("final-epochs", epochs, cli::non_negative, "a count >= 0");
  const auto search_epochs = args.number<int64_t>("search-epochs", 6, cli::positive, "a positive count");
  const auto subset = args.number<int64_t>("train-subset", 0, cli::non_negative, "a count >= 0");
  select::coordinate_block policy{
      .tries = args.number<int64_t>("tries", 100, cli::positive, "a positive count"),
      .adt = args.number<double>("adt", 0.3, cli::non_negative, "accuracy points >= 0"),
      .scoring_size = args.number<int64_t>("scoring-size", 0, cli::non_negative, "a count >= 0"),
      .proposals = select::parse_proposal(args.text("proposals", "first_order")),
      .finetune_epochs = epochs,
      .finetune_every_iteration = args.flag("finetune-every-iteration")};
  policy.rejection.enabled = !args.flag("no-early-rejection");
  train::baseline_spec spec;
  spec.data = args.text("data", spec.data);
  spec.data_dir = args.text("data-dir", "");
  spec.model = args.text("model", spec.model);
  if (auto w = args.number<double>("width", 0, cli::non_negative, "a positive width"); w > 0) spec.width = w;
  run_options options;
  options.work_dir = args.text("work-dir", "runs/bcd");
  options.seed = args.number<uint64_t>("seed", 0, cli::non_negative, "a seed");
  const fs::path out_mask = args.text("out-mask", (options.work_dir / "bcd.mask").string());
  args.finish();
  if (budget_text.empty()) throw cli::usage_error{"--budget is required"};
  if (!snl_budget_text.empty() && !mask_file.empty()) throw cli::usage_error{"give --mask or --snl-budget, not both"};
  const auto target = parse_budget(budget_text);

  const auto rt = runtime::configure();
  std::printf("linearize bcd: %d threads, %s\n", rt.threads, rt.allocator_name().c_str());
  const auto base = train::load_or_train_baseline(spec);
  auto data = baseline_run_data(base.record, spec.data_dir);
  if (subset > 0) data.train = data.train.take(subset);
  options.augment = base.record.recipe.augment;
  std::printf("baseline %s: test top-1 %.2f%%; %lld train, %lld held-out (scoring), %lld test images\n",
              base.record.model.c_str(), 100 * base.record.test_top1, static_cast<long long>(data.train.size()),
              static_cast<long long>(data.held_out.size()), static_cast<long long>(data.test.size()));

  auto net = base.net->copy();
  if (!mask_file.empty()) MaskSet(*net).load(mask_file);
  const auto bcd = pipeline(policy, schedule::fixed_step{.drc = drc}, finetune::distill{.epochs = final_epochs});
  run_result result;
  if (!snl_budget_text.empty()) {
    // The Pareto benchmark's SNL settings (README, "SNL": why lambda0 and max_change).
    const auto snl = pipeline(relax::l1_mix{.step_scale = 10},
                              schedule::budget_tracking{.epochs = search_epochs, .lambda0 = 3e-4, .max_change = 1.1},
                              select::top_k{}, finetune::distill{.epochs = final_epochs});
    options.stage_budgets = {parse_budget(snl_budget_text)};
    result = run(snl | bcd, net, base.net, data, target, options);
  } else {
    result = run(bcd, net, base.net, data, target, options);
  }

  std::printf("\n%s: %lld of %lld ReLUs; test accuracy %.2f%% (baseline %.2f%%), %.0f s, %lld images\n",
              result.method.c_str(), static_cast<long long>(result.relu_count),
              static_cast<long long>(result.total_relus), 100 * result.test_accuracy_after_finetune,
              100 * result.baseline_test_accuracy, result.seconds,
              static_cast<long long>(result.images_forwarded));
  for (const auto& s : result.stages) print_stage(s);
  report(std::cout, result, MaskSet(*net), pi::delphi());
  MaskSet(*net).save(out_mask);
  std::printf("mask written to %s\n", out_mask.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::main(argc, argv, usage, run_example); }
