// What coordinate descent costs: the authors' prototype procedure against this library's, on the
// same starting network and mask, in images forwarded, wall time and final accuracy.
//
//   prototype   uniform candidate blocks, every candidate scored on the whole training set
//   +held-out   ... scored on a fixed held-out scoring set instead
//   +early      ... with early rejection on a prefix of the scoring set
//   ours        ... with candidates guided by a first-order estimate of each ReLU's damage
//
// Default: a reduced-width ResNet18-IN (width 4, 23,520 ReLUs on 28x28) on a subset of
// Fashion-MNIST, which finishes in minutes on two cores. The baseline and the starting mask are
// computed once and cached in --work (the starting mask: the --start ReLUs a one-shot first-order
// ranking keeps, then --start-epochs of distillation: a reference mask to descend from, as SNL's
// would be). Every variant then runs coordinate descent from the same network to --target with
// the same DRC, K, ADT and finetune recipe, and a final finetune; accuracies are on the test set.
//
// Run: ./build/benchmarks/bcd_cost [--train N] [--held-out N] [--test N] [--width W]
//        [--baseline-epochs E] [--start N] [--start-epochs E] [--target N] [--drc N] [--tries K]
//        [--adt A] [--finetune-epochs E] [--final-epochs E] [--scoring-size N]
//        [--variants prototype,held-out,early,ours] [--seed S] [--work DIR]
#include "../examples/cli.hpp"

#include <linearize/data/dataset.hpp>
#include <linearize/data/registry.hpp>
#include <linearize/finetune/distill.hpp>
#include <linearize/io/torch_export.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/models/resnet18_in.hpp>
#include <linearize/pipeline/run.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/select/coordinate_block.hpp>
#include <linearize/select/top_k.hpp>
#include <linearize/support/runtime.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/trainer.hpp>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace linearize;

namespace {

struct settings {
  int64_t train = 6000, held_out = 2000, test = 10000;
  int64_t width = 4;
  int64_t baseline_epochs = 8;
  int64_t start = 6000;         ///< ReLUs of the starting mask
  int64_t start_epochs = 2;
  int64_t target = 3000;
  int64_t drc = 150;
  int64_t tries = 20;
  double adt = 0.3;
  int64_t finetune_epochs = 1;  ///< per finetune during the search
  int64_t final_epochs = 2;     ///< after the search
  int64_t scoring_size = 0;     ///< held-out scoring set of the non-prototype variants (0: all)
  std::string variants = "prototype,held-out,early,ours";
  uint64_t seed = 0;
  fs::path work = "runs/bcd_cost";
};

constexpr const char* usage = R"(usage: bcd_cost [options]   (defaults in brackets)
  --train N [6000]  --held-out N [2000]  --test N [10000]  --width W [4]  --baseline-epochs E [8]
  --start N [6000]  --start-epochs E [2]  --target N [3000]  --drc N [150]  --tries K [20]
  --adt A [0.3]  --finetune-epochs E [1]  --final-epochs E [2]  --scoring-size N [0: all]
  --variants prototype,held-out,early,ours  --seed S [0]  --work DIR [runs/bcd_cost]
)";

settings parse(cli::arguments& args) {
  settings s;
  const auto count = [&](const char* k, int64_t& v, bool zero_ok = false) {
    v = zero_ok ? args.number<int64_t>(k, v, cli::non_negative, "a count >= 0")
                : args.number<int64_t>(k, v, cli::positive, "a positive count");
  };
  count("train", s.train);
  count("held-out", s.held_out);
  count("test", s.test);
  count("width", s.width);
  count("baseline-epochs", s.baseline_epochs);
  count("start", s.start);
  count("start-epochs", s.start_epochs, true);
  count("target", s.target);
  count("drc", s.drc);
  count("tries", s.tries);
  count("finetune-epochs", s.finetune_epochs, true);
  count("final-epochs", s.final_epochs, true);
  count("scoring-size", s.scoring_size, true);
  s.adt = args.number<double>("adt", s.adt, cli::non_negative, "accuracy points >= 0");
  s.seed = args.number<uint64_t>("seed", s.seed, cli::non_negative, "a seed");
  s.variants = args.text("variants", s.variants);
  std::stringstream list(s.variants);
  for (std::string v; std::getline(list, v, ',');)  // checked before any training starts
    if (v != "prototype" && v != "held-out" && v != "early" && v != "ours")
      throw cli::usage_error{"--variants: unknown variant '" + v + "'; expected prototype, held-out, early or ours"};
  s.work = args.text("work", s.work.string());
  args.finish();
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Network make_net(const settings& s) {
  return models::make_model("resnet18_in", {.classes = 10, .channels = 1, .size = 28,
                                            .width = static_cast<double>(s.width)});
}

/// The run's data: disjoint train and held-out subsets of Fashion-MNIST's training set (seeded),
/// and the first --test images of its test set.
run_data load_data(const settings& s) {
  const auto all = data::load_dataset("fashion-mnist", "", "train");
  require(s.train + s.held_out <= all.size(), "--train ", s.train, " + --held-out ", s.held_out,
          " exceed the ", all.size(), " training images");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  const auto order = torch::randperm(all.size(), gen, torch::kLong);
  run_data d;
  d.train = all.subset(order.slice(0, 0, s.train));
  d.held_out = all.subset(order.slice(0, s.train, s.train + s.held_out));
  d.test = data::load_dataset("fashion-mnist", "", "test").take(s.test);
  return d;
}

train::options quiet(int64_t epochs) {
  train::options o;
  o.epochs = epochs;
  o.batch_size = 128;
  o.progress.mode = train::progress_mode::silent;
  return o;
}

/// The pretrained network, cached.
Network baseline(const settings& s, const run_data& d) {
  auto net = make_net(s);
  const auto file = s.work / ("baseline_w" + std::to_string(s.width) + "_n" + std::to_string(s.train) +
                              "_e" + std::to_string(s.baseline_epochs) + ".pt");
  if (fs::exists(file)) {
    io::import_state(net, file);
    return net;
  }
  std::printf("training the baseline (%lld epochs on %lld images)...\n",
              static_cast<long long>(s.baseline_epochs), static_cast<long long>(s.train));
  auto o = quiet(s.baseline_epochs);
  o.optimizer = train::sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  o.schedule = train::cosine{};
  o.seed = s.seed;
  (void)train::fit(*net, d.train, o);
  io::export_state(net, file);
  return net;
}

/// The starting network: the baseline with its --start most useful ReLUs (one-shot first-order
/// ranking), distilled for --start-epochs; cached.
Network starting_point(const settings& s, const run_data& d, const Network& teacher) {
  auto net = make_net(s);
  const auto file = s.work / ("start_w" + std::to_string(s.width) + "_n" + std::to_string(s.train) +
                              "_r" + std::to_string(s.start) + ".pt");
  const MaskSet masks(*net);
  if (fs::exists(file)) {
    masks.harden(torch::ones({masks.entries()}, torch::kBool));
    io::import_state(net, file);
    return net;
  }
  std::printf("making the starting mask (%lld ReLUs)...\n", static_cast<long long>(s.start));
  copy_state(*teacher, *net);
  const auto damage = select::estimate_first_order(*net, masks, d.train, 1024, 16, s.seed).damage;
  struct scores_only {  // what top_k reads of a stage context
    torch::Tensor scores, relus_per_entry;
    int64_t budget;
  } ctx{damage, masks.relus_per_entry(), s.start};  // keeps the ReLUs most costly to remove
  masks.harden(select::top_k{}.select(ctx));
  auto o = quiet(s.start_epochs);
  o.optimizer = train::sgd{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4};
  o.schedule = train::cosine{};
  o.teacher = teacher;
  o.kd = {.temperature = 4, .weight = 1};
  o.seed = s.seed + 1;
  (void)train::recalibrate_batchnorm(*net, d.train, 50, 128, s.seed);
  (void)train::fit(*net, d.train, o);
  io::export_state(net, file);
  return net;
}

struct outcome {
  std::string variant;
  select::coordinate_report bcd;
  int64_t images = 0;  ///< everything the stage forwarded (search + final finetune + test evals)
  double search_accuracy = 0, final_accuracy = 0, seconds = 0;
  int64_t relus = 0;
};

outcome run_variant(const std::string& variant, const settings& s, const run_data& d,
                    const Network& start, const Network& teacher) {
  select::coordinate_block policy{.tries = s.tries, .adt = s.adt, .scoring_size = s.scoring_size,
                                  .finetune_epochs = s.finetune_epochs};
  if (variant == "prototype") {
    policy.score_on = select::scoring_data::train;
    policy.scoring_size = 0;
  }
  if (variant == "prototype" || variant == "held-out") policy.rejection.enabled = false;
  if (variant != "ours") policy.proposals = select::proposal::uniform;
  if (variant != "prototype" && variant != "held-out" && variant != "early" && variant != "ours")
    throw cli::usage_error{"--variants: unknown variant '" + variant + "'; expected prototype, held-out, early or ours"};
  const auto method = pipeline(policy, schedule::fixed_step{.drc = s.drc},
                               finetune::distill{.epochs = s.final_epochs});
  auto net = start->copy();
  run_options o;
  o.seed = s.seed;
  o.progress.mode = train::progress_mode::silent;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run(method, net, teacher, d, budget(s.target), o);
  outcome out;
  out.variant = variant;
  out.seconds = seconds_since(t0);
  out.bcd = select::coordinate_report::of(r.stages.at(0));
  out.images = r.stages.at(0).images_forwarded;
  out.search_accuracy = r.test_accuracy_before_finetune;
  out.final_accuracy = r.test_accuracy_after_finetune;
  out.relus = r.relu_count;
  return out;
}

}  // namespace

int run_benchmark(cli::arguments& args) {
  const auto s = parse(args);
  const auto rt = runtime::configure();
  fs::create_directories(s.work);
  std::printf("bcd_cost: %d threads; ResNet18-IN width %lld on Fashion-MNIST (train %lld, held-out "
              "%lld, test %lld)\n",
              rt.threads, static_cast<long long>(s.width), static_cast<long long>(s.train),
              static_cast<long long>(s.held_out), static_cast<long long>(s.test));
  const auto d = load_data(s);
  const auto teacher = baseline(s, d);
  const auto start = starting_point(s, d, teacher);
  freeze(*teacher);
  const MaskSet masks(*start);
  std::printf("ReLUs: %lld in all, %lld in the starting mask; target %lld, DRC %lld (T = %lld), "
              "K %lld, ADT %.2f, finetunes %lld epoch(s), final %lld\n",
              static_cast<long long>(masks.total_relus()), static_cast<long long>(masks.relu_count()),
              static_cast<long long>(s.target), static_cast<long long>(s.drc),
              static_cast<long long>(schedule::fixed_step{.drc = s.drc}.steps(masks.relu_count(), s.target)),
              static_cast<long long>(s.tries), s.adt, static_cast<long long>(s.finetune_epochs),
              static_cast<long long>(s.final_epochs));
  std::printf("test accuracy: baseline %.2f%%, start %.2f%%\n\n",
              100 * train::evaluate(*teacher, d.test, 512).top1,
              100 * train::evaluate(*start, d.test, 512).top1);

  std::vector<outcome> rows;
  std::stringstream list(s.variants);
  for (std::string v; std::getline(list, v, ',');) {
    std::printf("running %s...\n", v.c_str());
    std::fflush(stdout);
    rows.push_back(run_variant(v, s, d, start, teacher));
  }

  std::printf("\n%-10s %5s %6s %5s %5s %10s %10s %10s %11s %11s %8s %8s %8s\n", "variant", "iters",
              "tries", "fails", "early", "scoring", "gradient", "finetune", "search img",
              "stage img", "search s", "acc BCD", "acc fin");
  for (const auto& r : rows)
    std::printf("%-10s %5lld %6lld %5lld %5lld %10lld %10lld %10lld %11lld %11lld %8.1f %7.2f%% %7.2f%%\n",
                r.variant.c_str(), static_cast<long long>(r.bcd.iterations),
                static_cast<long long>(r.bcd.tries), static_cast<long long>(r.bcd.fallbacks),
                static_cast<long long>(r.bcd.early_rejections),
                static_cast<long long>(r.bcd.scoring_images),
                static_cast<long long>(r.bcd.gradient_images),
                static_cast<long long>(r.bcd.finetune_images),
                static_cast<long long>(r.bcd.images()), static_cast<long long>(r.images),
                r.bcd.seconds, 100 * r.search_accuracy, 100 * r.final_accuracy);
  std::printf("(search img = scoring + gradient + finetune images of the search; stage img adds the "
              "final finetune and test evaluations; gradient images also go backward once)\n");
  const outcome* proto = nullptr;
  for (const auto& r : rows)
    if (r.variant == "prototype") proto = &r;
  if (proto) {
    std::printf("\nprototype / variant:   search images   search seconds   final accuracy (points)\n");
    for (const auto& r : rows)
      if (&r != proto)
        std::printf("  %-10s %18.1fx %15.1fx %+17.2f\n", r.variant.c_str(),
                    static_cast<double>(proto->bcd.images()) / static_cast<double>(r.bcd.images()),
                    proto->bcd.seconds / r.bcd.seconds, 100 * (r.final_accuracy - proto->final_accuracy));
  }
  return 0;
}

int main(int argc, char** argv) { return cli::main(argc, argv, usage, run_benchmark); }
