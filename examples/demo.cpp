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

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  namespace lz = linearize;
  cli::app app{"The quick-start demo: SNL on a ResNet18 (width 16) on Fashion-MNIST down to a ReLU "
               "budget, with report and plots.", "demo"};
  std::string budget_text = "2%";
  int64_t subset = 10000, search_epochs = 3, finetune_epochs = 2;
  lz::train::baseline_spec spec;
  std::filesystem::path out = "runs/demo";
  app.add_option("--budget", budget_text, "ReLUs to keep: a count, a percentage or a fraction")->check(cli::budget());
  app.add_option("--train-subset", subset, "training images used by the linearization (0: all)")
      ->check(cli::at_least<int64_t>(0));
  app.add_option("--search-epochs", search_epochs, "planned mask-search epochs")->check(cli::at_least<int64_t>(1));
  app.add_option("--finetune-epochs", finetune_epochs, "KD finetuning epochs")->check(cli::at_least<int64_t>(0));
  app.add_option("--data-dir", spec.data_dir, "Fashion-MNIST directory (Debian's dataset-fashion-mnist when not given)")
      ->default_str("");
  app.add_option("--out", out, "where results and plots go");
  cli::parallel_options parallel;
  cli::add_parallel(app, parallel);
  return cli::run(app, parallel, argc, argv, [&] {
    const auto budget = lz::parse_budget(budget_text);

    const auto rt = lz::runtime::configure();
    fmt::print("linearize demo: {} threads, {}, fused kernel {}\n", rt.threads, rt.allocator_name(),
               lz::kernels::simd_name());

    // 1. The baseline: reuse examples/pretrain's if it finished, else train a quick one here.
    lz::train::baseline_options bopts;
    const auto cached = lz::train::default_baseline_path(spec);
    if (!lz::train::baseline_complete(cached)) {
      bopts.out = out / "baseline.pt";
      bopts.recipe.epochs = 2;
      fmt::print("\n[1/3] training a quick baseline ({} epochs; examples/pretrain trains a better one)\n",
                 bopts.recipe.epochs);
    } else {
      fmt::print("\n[1/3] using the cached baseline {}\n", cached.string());
    }
    auto base = lz::train::load_or_train_baseline(spec, bopts);
    fmt::print("baseline: {}, test top-1 {:.2f}%, {} ReLUs\n", base.net->describe(), 100 * base.record.test_top1,
               lz::grouped(lz::MaskSet(*base.net).total_relus()));

    // 2. SNL on part of the training set (the held-out split stays for model selection).
    auto data = lz::baseline_run_data(base.record, spec.data_dir);
    if (subset > 0) data.train = data.train.take(subset);
    fmt::print("\n[2/3] SNL to {}: mask search on {} images, then binarize and finetune\n", budget.describe(),
               lz::grouped(data.train.size()));
    // The policies' own defaults: budget_tracking measures the penalty weight this network needs
    // and sets how fast the masks move to cross within the plan.
    const auto snl = lz::pipeline(lz::relax::l1_mix{}, lz::schedule::budget_tracking{.epochs = search_epochs},
                                  lz::select::top_k{},  // exactly the budget
                                  lz::finetune::distill{.epochs = finetune_epochs});
    lz::run_options options;
    options.work_dir = out / ("snl_" + budget_text);
    options.augment = base.record.recipe.augment;
    options.sync_batchnorm = parallel.sync_batchnorm;
    auto net = base.net->copy();
    const auto result = lz::run(snl, net, base.net, data, budget, options);

    // 3. What it bought.
    fmt::print("\n[3/3] results\n");
    const lz::MaskSet masks(*net);
    lz::report(std::cout, result, masks, lz::pi::delphi());
    if (cli::writer()) {
      lz::save_outputs(out, "snl", result, masks, lz::pi::delphi());
      // The finetuned network with its masks: what examples/export exports for private inference
      // (and what Python's torch.load reads).
      lz::io::export_state(*net, out / "linearized.pt");
    }
    const auto full = lz::pi::delphi().latency(result.total_relus);
    const auto now = lz::pi::delphi().latency(result.relu_count);
    fmt::print("\nprivate inference (DELPHI, ~22.5 us per ReLU): {:.2f} s -> {:.3f} s per image ({:.0f}x faster)\n",
               full, now, full / now);
    fmt::print("test accuracy: {:.2f}% -> {:.2f}%\n", 100 * result.baseline_test_accuracy,
               100 * result.test_accuracy_after_finetune);
    fmt::print("wrote {0}/{{mask, linearized.pt, result.csv, result.json, history.csv, relus_per_layer.svg}}\n"
               "export it for private inference: build/examples/export --weights {0}/linearized.pt\n",
               out.string());
    return 0;
  });
}
