// SNL (Selective Network Linearization) end to end on a cached baseline:
//   mask search (CE + KD + lambda * L1 of the masks) -> binarize (mask > 0.01) -> finetune (KD).
// Prints the per-layer ReLU table, accuracies and the private-inference latency estimate, and
// writes the mask, a results row and a per-layer plot.
//
//   snl --budget 3%                      # 3% of all ReLUs, budget_tracking schedule
//   snl --budget 2880 --schedule lasso   # SNL's own lambda *= 1.1 schedule (hundreds of epochs)
#include "cli.hpp"

#include <linearize/linearize.hpp>

#include <cstdio>
#include <iostream>
#include <string>

namespace {

constexpr const char* usage = R"(usage: snl [options]
  --budget B            ReLUs to keep: a count (2880), a percentage (3%) or a fraction (0.03)  [3%]
  --schedule S          tracking (count follows a planned path, few epochs) or lasso (SNL's
                        lambda *= 1.1 on plateaus; needs hundreds of epochs)          [tracking]
  --select R            magnitude (SNL: mask > 0.01) or top_k (exactly the budget)   [magnitude]
  --search-epochs N     planned mask-search epochs for the tracking schedule        [6]
  --lambda0 X           initial penalty weight (where this network's count starts to move) [3e-4]
  --max-change X        tracking: the most the weight changes per correction           [1.1]
  --windup-limit X      tracking: the weight stays within X of the weight at the latest
                        new minimum count (anti-windup; see budget_tracking.hpp)       [2]
  --max-epochs N        lasso: give up after N search epochs                           [2000]
  --finetune-epochs N   KD finetuning epochs after binarization                        [5]
  --no-recalibrate      skip re-estimating BatchNorm statistics after binarization
  --step-scale X        how fast the masks move under Adam (l1_mix; SNL's own: 1)          [10]
  --train-subset N      training images the search and finetuning use (0: all)              [0]
  --data NAME           fashion-mnist, cifar10, cifar100, tinyimagenet             [fashion-mnist]
  --data-dir DIR        where the dataset is (fashion-mnist: Debian's path by default)
  --model NAME          resnet18_in, wide_resnet_22_8, mobilenet_v1                  [resnet18_in]
  --width W             the model's width knob (resnet18_in: 16)
  --seed N              seeds the search and finetuning                                  [0]
  --work-dir DIR        checkpoints; rerunning the same command resumes     [runs/snl/<setting>]
  --threads N           intra-op threads                                      [all cores]
  --help
)";

}  // namespace

int main(int argc, char** argv) {
  return cli::main(argc, argv, usage, [](cli::arguments& args) {
    const auto budget_text = args.text("budget", "3%");
    const auto schedule = args.text("schedule", "tracking");
    const auto selection = args.text("select", "magnitude");
    const auto search_epochs = args.number<int64_t>("search-epochs", 6, cli::positive, "a positive count");
    const auto finetune_epochs = args.number<int64_t>("finetune-epochs", 5, cli::non_negative, "a count >= 0");
    const bool recalibrate = !args.flag("no-recalibrate");
    const auto lambda0 = args.number<double>("lambda0", 3e-4, cli::positive, "a positive weight");
    const auto max_change = args.number<double>("max-change", 1.1, [](double v) { return v > 1; }, "a factor > 1");
    const auto windup_limit = args.number<double>("windup-limit", 2, [](double v) { return v > 1; }, "a factor > 1");
    const auto max_epochs = args.number<int64_t>("max-epochs", 2000, cli::positive, "a positive count");
    const auto step_scale = args.number<double>("step-scale", 10, cli::positive, "a positive factor");
    const auto subset = args.number<int64_t>("train-subset", 0, cli::non_negative, "a count >= 0");
    linearize::train::baseline_spec spec;
    spec.data = args.text("data", spec.data);
    spec.data_dir = args.text("data-dir", "");
    spec.model = args.text("model", spec.model);
    if (auto w = args.optional_text("width")) spec.width = std::stod(*w);
    const auto seed = args.number<uint64_t>("seed", 0, cli::non_negative, "a seed >= 0");
    const auto threads = args.number<int>("threads", 0, cli::non_negative, "a thread count");
    auto work_dir = args.optional_text("work-dir");
    args.finish();
    if (schedule != "tracking" && schedule != "lasso")
      throw cli::usage_error{"--schedule expects tracking or lasso, got '" + schedule + "'"};
    if (selection != "magnitude" && selection != "top_k")
      throw cli::usage_error{"--select expects magnitude or top_k, got '" + selection + "'"};
    const auto budget = linearize::parse_budget(budget_text);

    if (threads > 0) setenv("LINEARIZE_THREADS", std::to_string(threads).c_str(), 1);
    const auto rt = linearize::runtime::configure();
    std::printf("linearize snl: %d threads, %s\n", rt.threads, rt.allocator_name().c_str());

    auto base = linearize::train::load_or_train_baseline(spec);
    auto data = linearize::baseline_run_data(base.record, spec.data_dir);
    if (subset > 0) data.train = data.train.take(subset);
    std::printf("baseline %s on %s: test top-1 %.2f%% (%s)\n", base.record.model.c_str(),
                base.record.dataset.c_str(), 100 * base.record.test_top1,
                base.trained ? "trained now" : "cached");

    linearize::run_options options;
    options.seed = seed;
    options.augment = base.record.recipe.augment;
    // Every setting that changes the run is in the default directory's name: a checkpoint is only
    // ever resumed by the same command, never by one with, say, another plan length.
    const auto num = [](double v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", v);
      return std::string(buf);
    };
    const std::string search_setting =
        schedule == "tracking" ? "e" + std::to_string(search_epochs) + "_mc" + num(max_change) + "_wl" + num(windup_limit)
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
      std::printf("method %s, budget %s, work dir %s\n", snl.name().c_str(), budget.describe().c_str(),
                  options.work_dir.c_str());
      return linearize::run(snl, net, base.net, data, budget, options);
    };
    const auto tracking = linearize::schedule::budget_tracking{.epochs = search_epochs, .lambda0 = lambda0,
                                                               .max_change = max_change,
                                                               .windup_limit = windup_limit};
    const auto lasso = linearize::schedule::lasso_growth{.lambda0 = lambda0, .epoch_cap = max_epochs};
    const auto result =
        schedule == "tracking"
            ? (selection == "magnitude" ? go(tracking, linearize::select::magnitude{}) : go(tracking, linearize::select::top_k{}))
            : (selection == "magnitude" ? go(lasso, linearize::select::magnitude{}) : go(lasso, linearize::select::top_k{}));

    linearize::report(std::cout, result, linearize::MaskSet(*net), linearize::pi::delphi());
    linearize::save_outputs(options.work_dir, "snl", result, linearize::MaskSet(*net), linearize::pi::delphi());
    return 0;
  });
}
