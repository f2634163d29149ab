// The quick-start demo: linearize a ResNet18 on Fashion-MNIST down to 2% of its ReLUs.
//   1. a baseline: the cached one of examples/pretrain if present, else a quick one (2 epochs);
//   2. SNL with a budget-tracking schedule on part of the training set: mask search, binarize,
//      BatchNorm re-estimation, KD finetuning;
//   3. the per-layer ReLU table, the accuracies, the private-inference latency estimate, plots
//      (runs/demo/*.svg), and the linearized network (runs/demo/linearized.pt: weights and masks,
//      which examples/export turns into an ONNX model that evaluates only the kept ReLUs).
// About 10 minutes on 2 cores; rerunning resumes or reuses what is done.
#include "cli.hpp"

#include <linearize/linearize.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace {

constexpr const char* usage = R"(usage: demo [options]
  --budget B          ReLUs to keep (count, 2%, 0.02)                                  [2%]
  --train-subset N    training images used by the linearization (0: all)           [10000]
  --search-epochs N   planned mask-search epochs                                       [3]
  --finetune-epochs N KD finetuning epochs                                             [2]
  --data-dir DIR      Fashion-MNIST directory (Debian's dataset-fashion-mnist by default)
  --out DIR           where results and plots go                               [runs/demo]
  --help
)";

}  // namespace

int main(int argc, char** argv) {
  return cli::main(argc, argv, usage, [](cli::arguments& args) {
    namespace lz = linearize;
    const auto budget_text = args.text("budget", "2%");
    const auto subset = args.number<int64_t>("train-subset", 10000, cli::non_negative, "a count >= 0");
    const auto search_epochs = args.number<int64_t>("search-epochs", 3, cli::positive, "a positive count");
    const auto finetune_epochs = args.number<int64_t>("finetune-epochs", 2, cli::non_negative, "a count >= 0");
    lz::train::baseline_spec spec;
    spec.data_dir = args.text("data-dir", "");
    const std::filesystem::path out = args.text("out", "runs/demo");
    args.finish();
    const auto budget = lz::parse_budget(budget_text);

    const auto rt = lz::runtime::configure();
    std::printf("linearize demo: %d threads, %s, fused kernel %s\n", rt.threads,
                rt.allocator_name().c_str(), lz::kernels::simd_name());

    // 1. The baseline: reuse examples/pretrain's if it finished, else train a quick one here.
    lz::train::baseline_options bopts;
    const auto cached = lz::train::default_baseline_path(spec);
    if (!lz::train::baseline_complete(cached)) {
      bopts.out = out / "baseline.pt";
      bopts.recipe.epochs = 2;
      std::printf("\n[1/3] training a quick baseline (%lld epochs; examples/pretrain trains a better one)\n",
                  static_cast<long long>(bopts.recipe.epochs));
    } else {
      std::printf("\n[1/3] using the cached baseline %s\n", cached.c_str());
    }
    auto base = lz::train::load_or_train_baseline(spec, bopts);
    std::printf("baseline: %s, test top-1 %.2f%%, %lld ReLUs\n", base.net->describe().c_str(),
                100 * base.record.test_top1, static_cast<long long>(lz::MaskSet(*base.net).total_relus()));

    // 2. SNL on part of the training set (the held-out split stays for model selection).
    auto data = lz::baseline_run_data(base.record, spec.data_dir);
    if (subset > 0) data.train = data.train.take(subset);
    std::printf("\n[2/3] SNL to %s: mask search on %lld images, then binarize and finetune\n",
                budget.describe().c_str(), static_cast<long long>(data.train.size()));
    // A short search: masks move 10x faster than SNL's (step_scale), and the penalty weight
    // starts where this network's count begins to move and changes by at most 10% a correction
    // (larger steps wind up while the masks are still on their way down; README, "SNL").
    const auto snl = lz::pipeline(lz::relax::l1_mix{.step_scale = 10},
                                  lz::schedule::budget_tracking{.epochs = search_epochs, .lambda0 = 3e-4,
                                                                .max_change = 1.1},
                                  lz::select::top_k{},  // exactly the budget
                                  lz::finetune::distill{.epochs = finetune_epochs});
    lz::run_options options;
    options.work_dir = out / ("snl_" + budget_text);
    options.augment = base.record.recipe.augment;
    auto net = base.net->copy();
    const auto result = lz::run(snl, net, base.net, data, budget, options);

    // 3. What it bought.
    std::printf("\n[3/3] results\n");
    const lz::MaskSet masks(*net);
    lz::report(std::cout, result, masks, lz::pi::delphi());
    lz::save_outputs(out, "snl", result, masks, lz::pi::delphi());
    // The finetuned network with its masks: what examples/export exports for private inference
    // (and what Python's torch.load reads).
    lz::io::export_state(*net, out / "linearized.pt");
    const auto full = lz::pi::delphi().latency(result.total_relus);
    const auto now = lz::pi::delphi().latency(result.relu_count);
    std::printf("\nprivate inference (DELPHI, ~22.5 us per ReLU): %.2f s -> %.3f s per image (%.0fx faster)\n",
                full, now, full / now);
    std::printf("test accuracy: %.2f%% -> %.2f%%\n", 100 * result.baseline_test_accuracy,
                100 * result.test_accuracy_after_finetune);
    std::printf("wrote %s/{mask, linearized.pt, result.csv, result.json, history.csv, relus_per_layer.svg}\n"
                "export it for private inference: build/examples/export --weights %s/linearized.pt\n",
                out.c_str(), out.c_str());
    return 0;
  });
}
