// A user's model next to the library's, by name: vgg.hpp defines VGG16 and registers it, and
// nothing in the library changes. This program builds the model chosen by --model through
// make_model (vgg16 among the registry's names because vgg.hpp is included here), prints its
// ReLUs per stage and private-inference cost, and with --train-epochs trains and caches its
// baseline on Fashion-MNIST the way examples/pretrain does.
//
//   custom_model                          # vgg16 at width 64 on 3x32x32: 276,480 ReLUs
//   custom_model --train-epochs 2         # a vgg16 baseline at width 16 on Fashion-MNIST
#include "cli.hpp"
#include "vgg.hpp"

#include <linearize/linearize.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  namespace lz = linearize;
  cli::app app{"Builds a registered model by name (the user's vgg16 included) and shows its ReLUs and "
               "private-inference cost; optionally trains its baseline.", "custom_model"};
  std::string model = "vgg16";
  std::optional<double> width;
  lz::models::model_spec spec;
  int64_t train_epochs = 0;
  app.add_option("--model", model, "network")->check(cli::one_of(lz::models::model_names()));
  app.add_option("--width", width, "the model's width knob (default: the model's own)")->check(cli::above(0));
  app.add_option("--size", spec.size, "input height = width")->check(cli::at_least<int64_t>(1));
  app.add_option("--channels", spec.channels, "input channels")->check(cli::at_least<int64_t>(1));
  app.add_option("--train-epochs", train_epochs,
                 "train and cache a baseline of the model on Fashion-MNIST for this many epochs (0: none)")
      ->check(cli::at_least<int64_t>(0));
  return cli::run(app, argc, argv, [&] {
    lz::runtime::configure();
    spec.width = width;
    const auto& info = lz::models::model_info_of(model);
    const auto net = lz::models::make_model(model, spec);
    const lz::MaskSet masks(*net);
    fmt::print("{}: {} ReLUs ({} = {})\n", net->describe(), lz::grouped(masks.total_relus()), info.width_knob,
               spec.width.value_or(info.default_width));
    for (const auto& stage : masks.per_stage()) fmt::print("  {:<8} {:>10}\n", stage.stage, lz::grouped(stage.total));
    const auto y = net->forward(torch::randn({2, spec.channels, spec.size, spec.size}));
    fmt::print("a batch of 2 gives logits of shape [{}, {}]\n\n", y.size(0), y.size(1));
    std::cout << lz::pi::estimate(masks, lz::pi::delphi());

    if (train_epochs > 0) {  // the registry's name flows through the baseline cache as well
      lz::train::baseline_options options;
      options.recipe.epochs = train_epochs;
      const auto base = lz::train::load_or_train_baseline({.model = model, .width = width}, options);
      fmt::print("\nbaseline {}: test top-1 {:.2f}% ({})\n", base.record.model, 100 * base.record.test_top1,
                 lz::train::default_baseline_path({.model = model, .width = width}).string());
    }
    return 0;
  });
}
