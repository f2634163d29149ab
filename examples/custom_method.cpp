// A method built from user parts only, one file each, with no library file touched:
//   vgg.hpp                 the model (VGG16, registered by name)
//   custom_relaxation.hpp   the relaxation (a clipped linear gate)
//   custom_selection.hpp    the selection rule (the same share of the budget in every layer)
//   custom_replacement.hpp  what replaces a linearized ReLU (a per-channel affine map)
// composed with the library's budget_tracking scheduler and distill finetune:
//
//   pipeline(user_policies::clipped_gate{}, schedule::budget_tracking{.epochs = 3},
//            user_policies::per_layer_quota{}, finetune::distill{.epochs = 1})
//
// on a quick VGG16 baseline for Fashion-MNIST (cached under --out). It prints the ReLUs kept per
// layer and the accuracies, and checks what the parts promise: the count within the budget, each
// layer at its share, the replacements trained.
#include "cli.hpp"
#include "custom_relaxation.hpp"
#include "custom_replacement.hpp"
#include "custom_selection.hpp"
#include "vgg.hpp"

#include <linearize/linearize.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  namespace lz = linearize;
  cli::app app{"A linearization method composed from a user's model, relaxation, selection rule and "
               "replacement (one file each), run on Fashion-MNIST.",
               "custom_method"};
  std::string budget_text = "5%";
  int64_t width = 8, baseline_epochs = 1, search_epochs = 3, finetune_epochs = 1, subset = 5000;
  uint64_t seed = 0;
  int threads = 0;
  std::string data_dir;
  std::filesystem::path out = "runs/custom_method";
  app.add_option("--budget", budget_text, "ReLUs to keep: a count, a percentage or a fraction")->check(cli::budget());
  app.add_option("--width", width, "VGG16's width knob (channels of its first block)")->check(cli::at_least<int64_t>(1));
  app.add_option("--baseline-epochs", baseline_epochs, "epochs of the cached baseline")->check(cli::at_least<int64_t>(1));
  app.add_option("--search-epochs", search_epochs, "planned mask-search epochs")->check(cli::at_least<int64_t>(1));
  app.add_option("--finetune-epochs", finetune_epochs, "KD finetuning epochs")->check(cli::at_least<int64_t>(0));
  app.add_option("--train-subset", subset, "training images the linearization uses (0: all)")
      ->check(cli::at_least<int64_t>(0));
  app.add_option("--data-dir", data_dir, "Fashion-MNIST directory (Debian's dataset-fashion-mnist when not given)")
      ->default_str("");
  cli::add_seed(app, seed, "seeds the baseline and the run");
  cli::add_threads(app, threads);
  app.add_option("--out", out, "baseline cache, checkpoints and result files");
  return cli::run(app, argc, argv, [&] {
    cli::configure(threads);
    const auto budget = lz::parse_budget(budget_text);

    lz::train::baseline_spec spec;
    spec.model = "vgg16";  // the user's model, by the name vgg.hpp registers
    spec.width = static_cast<double>(width);
    spec.data_dir = data_dir;
    lz::train::baseline_options bopts;
    bopts.out = out / fmt::format("vgg16_w{}.pt", width);
    bopts.recipe.epochs = baseline_epochs;
    bopts.recipe.seed = seed;
    const auto base = lz::train::load_or_train_baseline(spec, bopts);
    fmt::print("baseline: {}, test top-1 {:.2f}%\n", base.net->describe(), 100 * base.record.test_top1);

    auto data = lz::baseline_run_data(base.record, data_dir);
    if (subset > 0) data.train = data.train.take(subset);
    auto net = base.net->copy();
    lz::replace_linearized(*net, user_policies::channel_affine{});
    const auto method = lz::pipeline(user_policies::clipped_gate{},
                                     lz::schedule::budget_tracking{.epochs = search_epochs},
                                     user_policies::per_layer_quota{},
                                     lz::finetune::distill{.epochs = finetune_epochs});
    lz::run_options options;
    options.seed = seed;
    options.work_dir = out / fmt::format("work_{}_{}", budget_text, width);
    const auto result = lz::run(method, net, base.net, data, budget, options);

    const lz::MaskSet masks(*net);
    lz::report(std::cout, result, masks, lz::pi::delphi());
    lz::save_outputs(out, method.name(), result, masks, lz::pi::delphi());

    // What the parts promise.
    lz::require(result.relu_count <= result.budget, "custom_method: ", result.relu_count,
                " ReLUs kept, above the budget of ", result.budget);
    const double share = static_cast<double>(result.budget) / static_cast<double>(result.total_relus);
    for (const auto& slot : masks.per_slot())
      lz::require(static_cast<double>(slot.active) <= share * static_cast<double>(slot.total) + 1,
                  "custom_method: slot ", slot.name, " keeps ", slot.active, " of ", slot.total,
                  " ReLUs, above its share ", share);
    double moved = 0;
    for (const auto& p : net->named_parameters())
      if (p.key().find("replacement.scale") != std::string::npos) moved += (p.value() - 1).abs().sum().item<double>();
    lz::require(moved > 0, "custom_method: the replacements' scales never moved from 1");
    fmt::print("per-layer quota held, {} of {} ReLUs kept, replacement scales moved by {:.3g} in all\n",
               lz::grouped(result.relu_count), lz::grouped(result.total_relus), moved);
    return 0;
  });
}
