// Trains the baseline every linearization method starts from (a network with all its ReLUs) and
// caches it: weights + masks for io::import_state / Python's torch.load, and a JSON record
// beside them (model, dataset, recipe, held-out and test accuracy, ReLU count, time per epoch).
// A second run with the same options loads the cache; an interrupted run (Ctrl-C, a kill)
// continues from its checkpoint when rerun. Other programs get the same baseline with
//   auto base = linearize::train::load_or_train_baseline({.data = "fashion-mnist"});
//
//   pretrain [--data fashion-mnist] [--model resnet18_in] [--width 16] [--epochs 6] ...
//   pretrain --help
//
// The defaults (train::baseline_recipe) and why, measured on Fashion-MNIST with ResNet18-IN at
// width 16 on this project's 2-core VM: see MEASURED below.
#include "cli.hpp"

#include <linearize/linearize.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace {

namespace train = linearize::train;

// MEASURED: why the defaults (train::baseline_recipe) are what they are. Fashion-MNIST,
// ResNet18-IN width 16, 2-core AMD EPYC VM shared with other builds (load average 6-7), one-epoch
// probes (cosine over that epoch, crop 2 + flip, seed 0; held-out = 6,000 images, so one
// standard error is about 0.45 points):
//   batch 128, lr 0.1    held-out 85.95%   227 img/s
//   batch 128, lr 0.05   held-out 86.70%   208 img/s
//   batch 256, lr 0.1    held-out 84.62%   277 img/s
// Batch 256 is ~1.2x faster per image but learns less per epoch; over the same time the two are
// about even, and 128 matches SNL's mask-search batch. lr 0.05 did at least as well as SNL's 0.1
// in this short regime. An epoch takes ~4 min on the loaded machine (about half that when it is
// quiet), so 6 epochs keep a run near the 10-20 minute mark; crop padding 2 is the 28x28 analogue
// of CIFAR's 4 on 32x32, and flips are label-preserving for clothes.
constexpr const char* usage = R"(usage: pretrain [options]

Trains a baseline network (all ReLUs kept) and caches it; reruns load the cache, and an
interrupted run continues from its checkpoint.

  --data NAME          dataset: fashion-mnist (default), cifar10, cifar100, cifar100-coarse,
                       tinyimagenet
  --data-dir DIR       where the dataset's files are (default for fashion-mnist:
                       /usr/share/datasets/fashion-mnist)
  --model NAME         resnet18_in (default), wide_resnet_22_8, mobilenet_v1
  --width W            the model's width knob (default: 16 for resnet18_in, else the model's own)
  --epochs N           training epochs (default 6)
  --batch N            batch size (default 128)
  --lr X               initial learning rate, cosine to 0 (default 0.05)
  --momentum X         SGD momentum (default 0.9)
  --weight-decay X     L2 weight decay (default 5e-4)
  --crop N             random-crop padding in pixels, 0 for none (default 2)
  --no-flip            no random horizontal flip
  --held-out F         fraction of the training set held out to pick the best epoch (default 0.1)
  --seed N             seeds the initial weights, the split, batch order, augmentation (default 0)
  --out PATH           weights file (default runs/baseline/<data>_<model>_w<width>.pt); the
                       record goes to PATH with .json, the checkpoint to PATH with .ckpt
  --threads N          intra-op threads (default: all cores)
  --resume             use the cache / continue an interrupted run (default)
  --fresh              train from scratch, deleting the cached files first
  --help               this text
)";

struct command_line {
  train::baseline_spec spec{};
  train::baseline_options options{};
  int threads = 0;
};

template <class Names>
std::string one_of(const char* option, const std::string& text, const Names& names) {
  std::string known;
  for (const auto& n : names) {
    if (n == text) return text;
    known += (known.empty() ? "" : ", ") + std::string(n);
  }
  throw cli::usage_error{std::string("--") + option + " expects one of " + known + ", got '" + text + "'"};
}

command_line parse(cli::arguments& args) {
  command_line cl;
  auto& recipe = cl.options.recipe;
  cl.spec.data = one_of("data", args.text("data", cl.spec.data), linearize::data::known_datasets);
  cl.spec.data_dir = args.text("data-dir", "");
  cl.spec.model = one_of("model", args.text("model", cl.spec.model), linearize::models::model_names());
  if (const auto w = args.number<double>("width", 0, cli::positive, "a positive width"); w > 0) cl.spec.width = w;
  recipe.epochs = args.number<int64_t>("epochs", recipe.epochs, cli::positive, "at least 1");
  recipe.batch_size = args.number<int64_t>("batch", recipe.batch_size, cli::positive, "at least 1");
  recipe.lr = args.number<double>("lr", recipe.lr, cli::positive, "a positive rate");
  recipe.momentum = args.number<double>("momentum", recipe.momentum, cli::non_negative, "a momentum >= 0");
  recipe.weight_decay = args.number<double>("weight-decay", recipe.weight_decay, cli::non_negative, "a decay >= 0");
  recipe.augment.crop_padding = args.number<int64_t>("crop", recipe.augment.crop_padding, cli::non_negative,
                                                     "a padding >= 0");
  if (args.flag("no-flip")) recipe.augment.horizontal_flip = false;
  recipe.held_out_fraction = args.number<double>("held-out", recipe.held_out_fraction,
                                                 [](double f) { return f > 0 && f < 1; }, "a fraction in (0, 1)");
  recipe.seed = args.number<uint64_t>("seed", recipe.seed, cli::non_negative, "a seed");
  cl.options.out = args.text("out", "");
  cl.threads = args.number<int>("threads", 0, cli::positive, "at least 1");
  const bool resume = args.flag("resume"), fresh = args.flag("fresh");
  if (resume && fresh) throw cli::usage_error{"--resume and --fresh contradict each other"};
  cl.options.resume = !fresh;
  args.finish();
  return cl;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * fraction);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  return cli::main(argc, argv, usage, [](cli::arguments& args) {
    auto cl = parse(args);
    // The thread count goes through configure(), which reads LINEARIZE_THREADS.
    if (cl.threads > 0) ::setenv("LINEARIZE_THREADS", std::to_string(cl.threads).c_str(), 1);
    const auto rt = linearize::runtime::configure();
    std::printf("linearize: %d threads, %s\n", rt.threads, rt.allocator_name().c_str());

    {
      auto& options = cl.options;
      if (options.out.empty()) options.out = train::default_baseline_path(cl.spec);
      std::printf("baseline: %s on %s -> %s\n", cl.spec.model.c_str(), cl.spec.data.c_str(),
                  options.out.c_str());
      std::printf("checkpoint: %s every %lld steps; interrupt (Ctrl-C) and rerun to continue\n",
                  train::baseline_checkpoint_path(options.out).c_str(),
                  static_cast<long long>(options.checkpoint_every));
      std::fflush(stdout);
      const auto start = std::chrono::steady_clock::now();
      const auto base = train::load_or_train_baseline(cl.spec, options);
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const auto& r = base.record;
      if (!r.complete) {  // only a run stopped by options.stop_after_steps gets here
        std::printf("stopped before the end; rerun to continue\n");
        return 1;
      }
      std::printf("\n%s %s\n", base.trained ? "trained" : "loaded the cached baseline (--fresh retrains):",
                  r.model.c_str());
      std::printf("  dataset          %s (%lld train, %lld held out, %lld test)\n", r.dataset.c_str(),
                  static_cast<long long>(r.train_samples), static_cast<long long>(r.held_out_samples),
                  static_cast<long long>(r.test_samples));
      std::printf("  test top-1       %s\n", percent(r.test_top1).c_str());
      std::printf("  held-out top-1   %s (epoch %lld of %lld kept)\n", percent(r.held_out_top1).c_str(),
                  static_cast<long long>(r.best_epoch), static_cast<long long>(r.recipe.epochs));
      std::printf("  ReLUs            %lld\n", static_cast<long long>(r.relu_count));
      std::printf("  time per epoch   %.1f s training, %.0f images/s (%lld threads)\n",
                  r.seconds_per_epoch, r.images_per_second, static_cast<long long>(r.threads));
      std::printf("  this run         %.1f s\n", wall);
      std::printf("  weights          %s\n", options.out.c_str());
      std::printf("  record           %s\n", train::baseline_record_path(options.out).c_str());
      return 0;
    }
  });
}
