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
  std::optional<int> threads{};
};

/// A bad command line: the message, then exit code 2.
struct usage_error {
  std::string message;
};

template <class Number>
Number parse_number(std::string_view option, std::string_view text) {
  Number value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    throw usage_error{std::string(option) + " expects a" +
                      (std::is_integral_v<Number> ? "n integer" : " number") + ", got '" +
                      std::string(text) + "'"};
  return value;
}

/// `text` when it is one of `names`, else a usage error listing them.
std::string one_of(std::string_view option, std::string_view text, const auto& names) {
  std::string known;
  for (const auto& n : names) {
    if (n == text) return std::string(text);
    known += (known.empty() ? "" : ", ") + std::string(n);
  }
  throw usage_error{std::string(option) + " expects one of " + known + ", got '" + std::string(text) + "'"};
}

command_line parse(int argc, char** argv) {
  command_line cl;
  auto& recipe = cl.options.recipe;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::optional<std::string_view> inline_value;  // --option=value
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const auto value = [&]() -> std::string_view {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw usage_error{std::string(arg) + " expects a value"};
      return argv[++i];
    };
    const auto positive = [&](auto v, const char* what) {
      if (!(v > 0)) throw usage_error{std::string(arg) + " expects " + what + ", got " + std::to_string(v)};
      return v;
    };
    const auto flag = [&] {
      if (inline_value) throw usage_error{std::string(arg) + " takes no value"};
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (arg == "--data") {
      cl.spec.data = one_of(arg, value(), linearize::data::known_datasets);
    } else if (arg == "--data-dir") {
      cl.spec.data_dir = std::string(value());
    } else if (arg == "--model") {
      cl.spec.model = one_of(arg, value(), linearize::models::model_names());
    } else if (arg == "--width") {
      cl.spec.width = positive(parse_number<double>(arg, value()), "a positive width");
    } else if (arg == "--epochs") {
      recipe.epochs = positive(parse_number<int64_t>(arg, value()), "at least 1");
    } else if (arg == "--batch") {
      recipe.batch_size = positive(parse_number<int64_t>(arg, value()), "at least 1");
    } else if (arg == "--lr") {
      recipe.lr = positive(parse_number<double>(arg, value()), "a positive rate");
    } else if (arg == "--momentum") {
      recipe.momentum = parse_number<double>(arg, value());
    } else if (arg == "--weight-decay") {
      recipe.weight_decay = parse_number<double>(arg, value());
    } else if (arg == "--crop") {
      recipe.augment.crop_padding = parse_number<int64_t>(arg, value());
    } else if (arg == "--no-flip") {
      flag();
      recipe.augment.horizontal_flip = false;
    } else if (arg == "--held-out") {
      const auto text = value();
      recipe.held_out_fraction = parse_number<double>(arg, text);
      if (!(recipe.held_out_fraction > 0 && recipe.held_out_fraction < 1))
        throw usage_error{"--held-out expects a fraction in (0, 1), got " + std::string(text)};
    } else if (arg == "--seed") {
      recipe.seed = parse_number<uint64_t>(arg, value());
    } else if (arg == "--out") {
      cl.options.out = std::string(value());
    } else if (arg == "--threads") {
      cl.threads = positive(parse_number<int>(arg, value()), "at least 1");
    } else if (arg == "--resume") {
      flag();
      cl.options.resume = true;
    } else if (arg == "--fresh") {
      flag();
      cl.options.resume = false;
    } else {
      throw usage_error{"unknown option '" + std::string(argv[i]) + "'"};
    }
  }
  return cl;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * fraction);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  command_line cl;
  try {
    cl = parse(argc, argv);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "pretrain: %s (see pretrain --help)\n", e.message.c_str());
    return 2;
  }
  // The thread count goes through configure(), which reads LINEARIZE_THREADS.
  if (cl.threads) ::setenv("LINEARIZE_THREADS", std::to_string(*cl.threads).c_str(), 1);
  const auto rt = linearize::runtime::configure();
  std::printf("linearize: %d threads, %s\n", rt.threads, rt.allocator_name().c_str());

  try {
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
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pretrain: %s\n", e.what());
    return 1;
  }
}
