// Coordinate descent on Fashion-MNIST (or another dataset of data/registry.hpp): from a saved mask,
// from the full network, or after SNL (`snl | bcd`).
//
//   ./build/examples/bcd --baseline resnet16.pt --budget 20000                     # full network
//   ./build/examples/bcd --baseline resnet16.pt --mask snl.mask --budget 8000       # from a mask
//   ./build/examples/bcd --baseline resnet16.pt --snl-budget 30000 --budget 10000   # SNL, then BCD
//
// The baseline is read from --baseline when the file exists; otherwise it is trained for
// --baseline-epochs and saved there (io::export_state: Python's torch.load reads it too).
// Options (defaults in brackets):
//   --model resnet18_in | wide_resnet_22_8 | mobilenet_v1 [resnet18_in]   --width W [16]
//   --data fashion-mnist [fashion-mnist]   --data-root DIR [Debian's location]
//   --train-subset N [0: all]   --held-out-fraction F [0.1]   --baseline-epochs E [20]
//   --budget N   --snl-budget N   --mask FILE   --drc N [100]   --tries K [100]   --adt A [0.3]
//   --epochs E: finetune epochs, in the search and after it [20]   --final-epochs E [--epochs]
//   --scoring-size N [0: all held-out]   --proposals first_order | uniform [first_order]
//   --early-rejection on | off [on]   --finetune-every-iteration on | off [off]
//   --work-dir DIR: checkpoints; run again to resume [runs/bcd]   --seed S [0]
//   --out-mask FILE [bcd.mask]
#include <linearize/linearize.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace fs = std::filesystem;
using namespace linearize;

namespace {

class arguments {
 public:
  arguments(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      require(a.rfind("--", 0) == 0 && i + 1 < argc, "expected --option value, got '", a, "'");
      values_[a.substr(2)] = argv[++i];
    }
  }
  std::string text(const std::string& k, const std::string& fallback) { return take(k).value_or(fallback); }
  int64_t integer(const std::string& k, int64_t fallback) {
    const auto v = take(k);
    return v ? std::stoll(*v) : fallback;
  }
  double real(const std::string& k, double fallback) {
    const auto v = take(k);
    return v ? std::stod(*v) : fallback;
  }
  bool flag(const std::string& k, bool fallback) {
    const auto v = take(k);
    if (!v) return fallback;
    require(*v == "on" || *v == "off", "--", k, " ", *v, ": expected on or off");
    return *v == "on";
  }
  void done() const {
    require(values_.empty(), "unknown option --", values_.empty() ? "" : values_.begin()->first,
            " (see the top of examples/bcd.cpp)");
  }

 private:
  std::optional<std::string> take(const std::string& k) {
    const auto it = values_.find(k);
    if (it == values_.end()) return std::nullopt;
    auto v = it->second;
    values_.erase(it);
    return v;
  }
  std::map<std::string, std::string> values_;
};

void print_stage(const stage_report& s) {
  std::printf("  %-45s ReLUs %lld -> %lld (budget %lld)  test %.2f%% -> %.2f%% after finetune  "
              "%lld images  %.0f s\n",
              s.name.c_str(), static_cast<long long>(s.relu_count_before),
              static_cast<long long>(s.relu_count), static_cast<long long>(s.budget),
              100 * s.test_accuracy_selected, 100 * s.test_accuracy_finetuned,
              static_cast<long long>(s.images_forwarded), s.seconds);
  if (s.counters.count("bcd_iterations")) {
    const auto r = select::coordinate_report::of(s);
    std::printf("    coordinate descent: %lld of %lld iterations, %lld tries (%lld rejected early), "
                "%lld passed, %lld fell back, %lld finetunes\n"
                "    images: scoring %lld, gradient %lld, finetune %lld; %.0f s (scoring %.0f, "
                "gradient %.0f, finetune %.0f)\n",
                static_cast<long long>(r.iterations), static_cast<long long>(r.planned_iterations),
                static_cast<long long>(r.tries), static_cast<long long>(r.early_rejections),
                static_cast<long long>(r.accepted), static_cast<long long>(r.fallbacks),
                static_cast<long long>(r.finetunes), static_cast<long long>(r.scoring_images),
                static_cast<long long>(r.gradient_images), static_cast<long long>(r.finetune_images),
                r.seconds, r.scoring_seconds, r.gradient_seconds, r.finetune_seconds);
  }
}

int run_example(int argc, char** argv) {
  const auto rt = runtime::configure();
  arguments args(argc, argv);
  const auto model = args.text("model", "resnet18_in");
  const double width = args.real("width", 16);
  const auto dataset = args.text("data", "fashion-mnist");
  const fs::path root = args.text("data-root", "");
  const int64_t subset = args.integer("train-subset", 0);
  const double held_out_fraction = args.real("held-out-fraction", 0.1);
  const fs::path baseline_file = args.text("baseline", "");
  const int64_t baseline_epochs = args.integer("baseline-epochs", 20);
  const int64_t target = args.integer("budget", 0);
  const int64_t snl_budget = args.integer("snl-budget", 0);
  const fs::path mask_file = args.text("mask", "");
  const int64_t drc = args.integer("drc", 100);
  const int64_t epochs = args.integer("epochs", 20);
  const int64_t final_epochs = args.integer("final-epochs", epochs);
  select::coordinate_block policy{
      .tries = args.integer("tries", 100),
      .adt = args.real("adt", 0.3),
      .scoring_size = args.integer("scoring-size", 0),
      .proposals = select::parse_proposal(args.text("proposals", "first_order")),
      .finetune_epochs = epochs,
      .finetune_every_iteration = args.flag("finetune-every-iteration", false)};
  policy.rejection.enabled = args.flag("early-rejection", true);
  run_options options;
  options.work_dir = args.text("work-dir", "runs/bcd");
  options.seed = static_cast<uint64_t>(args.integer("seed", 0));
  const fs::path out_mask = args.text("out-mask", "bcd.mask");
  args.done();
  require(target > 0, "--budget N (the ReLUs to reach) is required");
  require(!baseline_file.empty(), "--baseline FILE is required (trained and saved there when missing)");
  require(snl_budget == 0 || mask_file.empty(), "give --mask or --snl-budget, not both");

  // Data: a seeded held-out part of the training set scores candidates and selects finetune
  // epochs; the test set only reports.
  auto train_all = data::load_dataset(dataset, root, "train");
  if (subset > 0) train_all = train_all.take(subset);
  const auto parts = data::split(train_all, held_out_fraction, 7);
  const run_data data{.train = parts.train, .held_out = parts.held_out,
                      .test = data::load_dataset(dataset, root, "test")};
  const models::model_spec spec{.classes = train_all.classes, .channels = train_all.channels(),
                                .size = train_all.height(), .width = width};
  std::printf("%s width %g on %s (train %lld, held-out %lld, test %lld); %d threads\n",
              model.c_str(), width, dataset.c_str(), static_cast<long long>(data.train.size()),
              static_cast<long long>(data.held_out.size()), static_cast<long long>(data.test.size()),
              rt.threads);

  auto net = models::make_model(model, spec);
  if (fs::exists(baseline_file)) {
    io::import_state(net, baseline_file);
  } else {
    std::printf("training the baseline for %lld epochs -> %s\n", static_cast<long long>(baseline_epochs),
                baseline_file.string().c_str());
    train::options o;
    o.epochs = baseline_epochs;
    o.optimizer = train::sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
    o.schedule = train::cosine{};
    o.held_out = data.held_out;
    o.checkpoint = options.work_dir / "baseline.ckpt";
    o.seed = options.seed;
    fs::create_directories(options.work_dir);
    (void)train::fit(*net, data.train, o);
    io::export_state(net, baseline_file);
  }
  const auto teacher = net->copy();
  if (!mask_file.empty()) MaskSet(*net).load(mask_file);

  const auto bcd = pipeline(policy, schedule::fixed_step{.drc = drc}, finetune::distill{.epochs = final_epochs});
  run_result result;
  if (snl_budget > 0) {
    const auto snl = pipeline(relax::l1_mix{}, schedule::lasso_growth{}, select::magnitude{},
                              finetune::distill{.epochs = epochs});
    options.stage_budgets = {budget(snl_budget)};
    result = run(snl | bcd, net, teacher, data, budget(target), options);
  } else {
    result = run(bcd, net, teacher, data, budget(target), options);
  }

  std::printf("\n%s: %lld of %lld ReLUs; test accuracy %.2f%% (baseline %.2f%%), %.0f s, %lld images\n",
              result.method.c_str(), static_cast<long long>(result.relu_count),
              static_cast<long long>(result.total_relus), 100 * result.test_accuracy_after_finetune,
              100 * result.baseline_test_accuracy, result.seconds,
              static_cast<long long>(result.images_forwarded));
  for (const auto& s : result.stages) print_stage(s);
  MaskSet(*net).save(out_mask);
  std::printf("mask written to %s\n", out_mask.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_example(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bcd: %s\n", e.what());
    return 1;
  }
}
