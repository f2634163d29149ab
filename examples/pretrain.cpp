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

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

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
std::string percent(double fraction) { return fmt::format("{:.2f}%", 100 * fraction); }

}  // namespace

int main(int argc, char** argv) {
  cli::app app{"Trains a baseline network (all ReLUs kept) and caches it; reruns load the cache, "
               "and an interrupted run continues from its checkpoint.", "pretrain"};
  train::baseline_spec spec;
  train::baseline_options options;
  auto& recipe = options.recipe;
  int threads = 0;
  bool fresh = false, resume = false;
  cli::add_baseline_spec(app, spec);
  app.add_option("--epochs", recipe.epochs, "training epochs")->check(cli::at_least<int64_t>(1));
  app.add_option("--batch", recipe.batch_size, "batch size")->check(cli::at_least<int64_t>(1));
  app.add_option("--lr", recipe.lr, "initial learning rate, cosine to 0")->check(cli::above(0));
  app.add_option("--momentum", recipe.momentum, "SGD momentum")->check(cli::at_least(0.0));
  app.add_option("--weight-decay", recipe.weight_decay, "L2 weight decay")->check(cli::at_least(0.0));
  app.add_option("--crop", recipe.augment.crop_padding, "random-crop padding in pixels, 0 for none")
      ->check(cli::at_least<int64_t>(0));
  app.add_flag_callback("--no-flip", [&] { recipe.augment.horizontal_flip = false; },
                        "no random horizontal flip");
  app.add_option("--held-out", recipe.held_out_fraction,
                 "fraction of the training set held out to pick the best epoch")
      ->check(cli::open_fraction());
  cli::add_seed(app, recipe.seed, "seeds the initial weights, the split, batch order, augmentation");
  app.add_option("--out", options.out,
                 "weights file (default runs/baseline/<data>_<model>_w<width>.pt); the record goes "
                 "to PATH with .json, the checkpoint to PATH with .ckpt")
      ->default_str("");
  cli::add_threads(app, threads);
  cli::parallel_options parallel;
  cli::add_parallel(app, parallel);
  auto* fresh_flag = app.add_flag("--fresh", fresh, "train from scratch, deleting the cached files first");
  app.add_flag("--resume", resume, "use the cache / continue an interrupted run (the default)")
      ->excludes(fresh_flag);

  return cli::run(app, parallel, argc, argv, [&] {
    options.resume = !fresh;
    options.sync_batchnorm = parallel.sync_batchnorm;
    const auto rt = cli::configure(threads);
    fmt::print("linearize: {} threads, {}\n", rt.threads, rt.allocator_name());

    if (options.out.empty()) options.out = train::default_baseline_path(spec);
    fmt::print("baseline: {} on {} -> {}\n", spec.model, spec.data, options.out.string());
    fmt::print("checkpoint: {} every {} steps; interrupt (Ctrl-C) and rerun to continue\n",
               train::baseline_checkpoint_path(options.out).string(), options.checkpoint_every);
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    const auto base = train::load_or_train_baseline(spec, options);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto& r = base.record;
    if (!r.complete) {  // only a run stopped by options.stop_after_steps gets here
      fmt::print("stopped before the end; rerun to continue\n");
      return 1;
    }
    fmt::print("\n{} {}\n", base.trained ? "trained" : "loaded the cached baseline (--fresh retrains):", r.model);
    fmt::print("  dataset          {} ({} train, {} held out, {} test)\n", r.dataset,
               linearize::grouped(r.train_samples), linearize::grouped(r.held_out_samples),
               linearize::grouped(r.test_samples));
    fmt::print("  test top-1       {}\n", percent(r.test_top1));
    fmt::print("  held-out top-1   {} (epoch {} of {} kept)\n", percent(r.held_out_top1), r.best_epoch,
               r.recipe.epochs);
    fmt::print("  ReLUs            {}\n", linearize::grouped(r.relu_count));
    fmt::print("  time per epoch   {:.1f} s training, {:.0f} images/s ({} threads)\n", r.seconds_per_epoch,
               r.images_per_second, r.threads);
    fmt::print("  this run         {:.1f} s\n", wall);
    fmt::print("  weights          {}\n", options.out.string());
    fmt::print("  record           {}\n", train::baseline_record_path(options.out).string());
    return 0;
  });
}
