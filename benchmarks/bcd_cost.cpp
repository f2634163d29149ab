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
// Run: ./build/benchmarks/bcd_cost [options]   (bcd_cost --help lists them with their defaults)
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
#include <linearize/support/format.hpp>
#include <linearize/support/runtime.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/trainer.hpp>

#include <fmt/format.h>
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

void add_options(CLI::App& app, settings& s) {
  const auto count = [](int64_t min) { return cli::at_least<int64_t>(min); };
  app.add_option("--train", s.train, "training images (a seeded subset of Fashion-MNIST's)")->check(count(1));
  app.add_option("--held-out", s.held_out, "held-out images, disjoint from --train")->check(count(1));
  app.add_option("--test", s.test, "test images")->check(count(1));
  app.add_option("--width", s.width, "ResNet18-IN width")->check(count(1));
  app.add_option("--baseline-epochs", s.baseline_epochs, "epochs of the baseline")->check(count(1));
  app.add_option("--start", s.start, "ReLUs of the starting mask")->check(count(1));
  app.add_option("--start-epochs", s.start_epochs, "distillation epochs of the starting mask")->check(count(0));
  app.add_option("--target", s.target, "ReLUs to reach")->check(count(1));
  app.add_option("--drc", s.drc, "ReLUs dropped per iteration")->check(count(1));
  app.add_option("--tries", s.tries, "K: candidate blocks per iteration")->check(count(1));
  app.add_option("--adt", s.adt, "accuracy-drop threshold, points")->check(cli::at_least(0.0));
  app.add_option("--finetune-epochs", s.finetune_epochs, "epochs of each finetune during the search")->check(count(0));
  app.add_option("--final-epochs", s.final_epochs, "finetune epochs after the search")->check(count(0));
  app.add_option("--scoring-size", s.scoring_size, "held-out scoring images of the non-prototype variants (0: all)")
      ->check(count(0));
  app.add_option("--variants", s.variants, "any of prototype, held-out, early, ours")
      ->check(CLI::Validator(
          [](std::string& text) {
            std::stringstream list(text);
            for (std::string v; std::getline(list, v, ',');)
              if (v != "prototype" && v != "held-out" && v != "early" && v != "ours")
                return "unknown variant '" + v + "'; expected prototype, held-out, early or ours";
            return std::string();
          },
          "LIST"));
  cli::add_seed(app, s.seed, "seeds the baseline, the starting mask and the searches");
  app.add_option("--work", s.work, "where the baseline and starting mask are cached");
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
  fmt::print("training the baseline ({} epochs on {} images)...\n", s.baseline_epochs, grouped(s.train));
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
  fmt::print("making the starting mask ({} ReLUs)...\n", grouped(s.start));
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

int run_benchmark(const settings& s) {
  const auto rt = runtime::configure();
  fs::create_directories(s.work);
  fmt::print("bcd_cost: {} threads; ResNet18-IN width {} on Fashion-MNIST (train {}, held-out {}, test {})\n",
             rt.threads, s.width, grouped(s.train), grouped(s.held_out), grouped(s.test));
  const auto d = load_data(s);
  const auto teacher = baseline(s, d);
  const auto start = starting_point(s, d, teacher);
  freeze(*teacher);
  const MaskSet masks(*start);
  fmt::print("ReLUs: {} in all, {} in the starting mask; target {}, DRC {} (T = {}), K {}, ADT {:.2f}, "
             "finetunes {} epoch(s), final {}\n",
             grouped(masks.total_relus()), grouped(masks.relu_count()), grouped(s.target), s.drc,
             schedule::fixed_step{.drc = s.drc}.steps(masks.relu_count(), s.target), s.tries, s.adt,
             s.finetune_epochs, s.final_epochs);
  fmt::print("test accuracy: baseline {:.2f}%, start {:.2f}%\n\n", 100 * train::evaluate(*teacher, d.test, 512).top1,
             100 * train::evaluate(*start, d.test, 512).top1);

  std::vector<outcome> rows;
  std::stringstream list(s.variants);
  for (std::string v; std::getline(list, v, ',');) {
    fmt::print("running {}...\n", v);
    std::fflush(stdout);
    rows.push_back(run_variant(v, s, d, start, teacher));
  }

  fmt::print("\n{:<10} {:>5} {:>6} {:>5} {:>5} {:>10} {:>10} {:>10} {:>11} {:>11} {:>8} {:>8} {:>8}\n", "variant",
             "iters", "tries", "fails", "early", "scoring", "gradient", "finetune", "search img", "stage img",
             "search s", "acc BCD", "acc fin");
  for (const auto& r : rows)
    fmt::print("{:<10} {:>5} {:>6} {:>5} {:>5} {:>10} {:>10} {:>10} {:>11} {:>11} {:>8.1f} {:>7.2f}% {:>7.2f}%\n",
               r.variant, r.bcd.iterations, r.bcd.tries, r.bcd.fallbacks, r.bcd.early_rejections,
               r.bcd.scoring_images, r.bcd.gradient_images, r.bcd.finetune_images, r.bcd.images(), r.images,
               r.bcd.seconds, 100 * r.search_accuracy, 100 * r.final_accuracy);
  fmt::print("(search img = scoring + gradient + finetune images of the search; stage img adds the "
             "final finetune and test evaluations; gradient images also go backward once)\n");
  const outcome* proto = nullptr;
  for (const auto& r : rows)
    if (r.variant == "prototype") proto = &r;
  if (proto) {
    fmt::print("\nprototype / variant:   search images   search seconds   final accuracy (points)\n");
    for (const auto& r : rows)
      if (&r != proto)
        fmt::print("  {:<10} {:>18.1f}x {:>15.1f}x {:>+17.2f}\n", r.variant,
                   static_cast<double>(proto->bcd.images()) / static_cast<double>(r.bcd.images()),
                   proto->bcd.seconds / r.bcd.seconds, 100 * (r.final_accuracy - proto->final_accuracy));
  }
  return 0;
}

int main(int argc, char** argv) {
  cli::app app{"What coordinate descent costs: the authors' prototype procedure against this library's, on "
               "the same starting network and mask.", "bcd_cost"};
  settings s;
  add_options(app, s);
  return cli::run(app, argc, argv, [&] { return run_benchmark(s); });
}
