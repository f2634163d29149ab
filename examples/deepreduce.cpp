// DeepReDuce on Fashion-MNIST with ResNet18-IN at width 16 (1x28x28: 96,000 ReLUs; layer1..4
// hold 50,176 / 25,088 / 12,544 / 8,192):
//   1. stage criticality: each stage alone keeps its ReLUs, is briefly finetuned (KD) from the
//      baseline and evaluated on held-out data; stages ranked by accuracy per ReLU;
//   2. the plan to the budget (by default the fewest ReLUs culling and thinning reach);
//   3. the DeepReDuce pipeline: culling and thinning steps, KD after each, a final KD finetune;
//   4. optionally reshaping (a narrower and/or lower-resolution network with the same culled and
//      thinned stages, trained from fresh weights) and SNL at each step's ReLU count.
// Every step's ReLU count and test accuracy go to stdout and to <out>/deepreduce.csv.
//
//   deepreduce [--budget N] [--criticality-epochs N] [--step-epochs N]
//              [--final-epochs N] [--reshape-width W] [--reshape-size S] [--snl-epochs N] ...
//   deepreduce --help
#include "cli.hpp"

#include <linearize/linearize.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/select/deepreduce_reshape.hpp>
#include <linearize/select/stage_criticality.hpp>
#include <linearize/select/criticality.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace linearize;

constexpr const char* usage = R"(usage: deepreduce [options]

DeepReDuce (criticality, culling, thinning, KD after each step; optionally reshaping) on
Fashion-MNIST with ResNet18-IN at width 16.

  --data-dir DIR            Fashion-MNIST files (default /usr/share/datasets/fashion-mnist)
                            The baseline is examples/pretrain's cached one (trained when missing).
  --train-subset N          train on the first N training images only (default: all)
  --budget N                ReLU budget (default: the fewest culling and thinning reach)
  --criticality MODE        evaluate | finetune (default) | train
  --criticality-epochs N    epochs per stage in finetune/train modes (default 1)
  --step-epochs N           KD epochs after every step (default 1)
  --final-epochs N          KD epochs of the final finetune (default 2)
  --thin even|odd           thinning keeps relu1 (even, default) or relu2 (odd) of each block
  --keep-stages N           most critical stages never culled (default 2)
  --reshape-width W         reshape to this layer1 width (e.g. 8)
  --reshape-size S          reshape to this input size (e.g. 14; trained without KD)
  --reshape-epochs N        epochs to train the reshaped network from fresh weights (default 3)
  --reshape-budget N        budget of the reshaped plan (default: half the fewest ReLUs culling
                            and thinning reach; the planner picks the configuration with the
                            most ReLUs within it, on the reshaped network)
  --snl-epochs N            also run SNL (l1_mix + budget_tracking, top_k) at each step's count
                            with N search epochs and --final-epochs finetune (default 0: skip)
  --out DIR                 output directory (default runs/deepreduce)
  --seed N                  seed of split, batches, augmentation, weights (default 0)
  --help                    this text
)";

struct settings {
  fs::path data_dir{};
  int64_t train_subset = 0;
  int64_t budget = 0;
  select::criticality_mode mode = select::criticality_mode::finetune;
  int64_t criticality_epochs = 1;
  int64_t step_epochs = 1;
  int64_t final_epochs = 2;
  select::thinning thin = select::thinning::keep_even;
  size_t keep_stages = 2;
  std::optional<int64_t> reshape_width{}, reshape_size{};
  int64_t reshape_epochs = 3;
  int64_t reshape_budget = 0;
  int64_t snl_epochs = 0;
  fs::path out = "runs/deepreduce";
  uint64_t seed = 0;
};

settings parse(cli::arguments& args) {
  settings s;
  const auto count = [&](const char* name, int64_t fallback) {
    return args.number<int64_t>(name, fallback, cli::non_negative, "a whole number >= 0");
  };
  s.data_dir = args.text("data-dir", "");
  s.train_subset = count("train-subset", s.train_subset);
  s.budget = count("budget", s.budget);
  const auto mode = args.text("criticality", "finetune");
  if (mode == "evaluate") s.mode = select::criticality_mode::evaluate;
  else if (mode == "finetune") s.mode = select::criticality_mode::finetune;
  else if (mode == "train") s.mode = select::criticality_mode::train;
  else throw cli::usage_error{"--criticality expects evaluate, finetune or train, got '" + mode + "'"};
  s.criticality_epochs = count("criticality-epochs", s.criticality_epochs);
  s.step_epochs = count("step-epochs", s.step_epochs);
  s.final_epochs = count("final-epochs", s.final_epochs);
  const auto thin = args.text("thin", "even");
  if (thin != "even" && thin != "odd") throw cli::usage_error{"--thin expects even or odd, got '" + thin + "'"};
  s.thin = thin == "even" ? select::thinning::keep_even : select::thinning::keep_odd;
  s.keep_stages = static_cast<size_t>(count("keep-stages", static_cast<int64_t>(s.keep_stages)));
  if (const auto w = count("reshape-width", 0); w > 0) s.reshape_width = w;
  if (const auto z = count("reshape-size", 0); z > 0) s.reshape_size = z;
  s.reshape_epochs = count("reshape-epochs", s.reshape_epochs);
  s.reshape_budget = count("reshape-budget", s.reshape_budget);
  s.snl_epochs = count("snl-epochs", s.snl_epochs);
  s.out = args.text("out", s.out.string());
  s.seed = args.number<uint64_t>("seed", s.seed, cli::non_negative, "a seed");
  args.finish();
  return s;
}

/// The baseline's architecture (pretrain's default: ResNet18-IN at width 16 on 1x28x28).
const models::model_spec spec{.classes = 10, .channels = 1, .size = 28, .width = 16};

/// The same images at another side (area averaging), for a network reshaped to a lower resolution.
data::image_dataset resized(const data::image_dataset& d, int64_t size) {
  if (d.images.size(2) == size) return d;
  data::image_dataset out = d;
  namespace F = torch::nn::functional;
  out.images = F::interpolate(d.images.to(torch::kFloat),
                              F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size}).mode(torch::kArea))
                   .round()
                   .clamp(0, 255)
                   .to(torch::kByte)
                   .contiguous();
  return out;
}

/// Plain training recipe (baseline, reshaped networks): SGD 0.1, cosine, crop 2 + flip.
train::options training(const settings& s, int64_t epochs, uint64_t seed) {
  train::options o;
  o.epochs = epochs;
  o.batch_size = 128;
  o.augment = {.crop_padding = 2, .horizontal_flip = true};
  o.optimizer = train::sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
  o.schedule = train::cosine{};
  o.seed = derive_seed(s.seed, {seed});
  o.progress.mode = train::progress_mode::lines;
  return o;
}

std::string percent(double top1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * top1);
  return std::isnan(top1) ? std::string("-") : std::string(buf);
}

/// Writes the rows with each one's DELPHI latency estimate next to its ReLU count.
void save_rows(const fs::path& file, std::vector<io::result_row>& rows) {
  for (auto& r : rows)
    if (std::isnan(r.pi_latency_s)) r.pi_latency_s = pi::delphi().latency(r.relu_count);
  io::write_csv(file, rows);
}

int run_example(cli::arguments& args) {
  const settings s = parse(args);
  const auto rt = runtime::configure();
  fs::create_directories(s.out);
  std::printf("linearize deepreduce: %d threads, %s\n", rt.threads, rt.allocator_name().c_str());

  // ---- the cached baseline (examples/pretrain) and its split: train / held-out / test ----------
  train::baseline_spec bspec;
  bspec.data_dir = s.data_dir;
  const auto base = train::load_or_train_baseline(bspec);
  auto data = baseline_run_data(base.record, s.data_dir);
  if (s.train_subset > 0) data.train = data.train.take(s.train_subset);
  std::printf("data: %lld train, %lld held out, %lld test\n", static_cast<long long>(data.train.size()),
              static_cast<long long>(data.held_out.size()), static_cast<long long>(data.test.size()));
  const Network net = base.net->copy();
  const MaskSet masks(*net);
  const Network teacher = base.net;
  const double baseline_test = train::evaluate(*net, data.test, 512).top1;
  std::printf("baseline %s: %lld ReLUs, test %s\n", net->describe().c_str(),
              static_cast<long long>(masks.relu_count()), percent(baseline_test).c_str());
  std::vector<io::result_row> rows;
  rows.push_back({.method = "baseline", .relu_count = masks.relu_count(), .accuracy = 100 * baseline_test});

  run_options options;
  options.work_dir = s.out / "work";
  options.seed = s.seed;
  options.batch_size = 128;
  options.augment = base.record.recipe.augment;
  options.progress.mode = train::progress_mode::lines;

  // ---- 1. criticality, measured once here so that the plan can be shown before anything else
  // runs and the default budget can follow from it -------------------------------------------------
  const auto distill = finetune::distill{.epochs = s.final_epochs};
  const auto measured = select::measure_criticality(net, teacher, data, options,
                                            {.mode = s.mode, .epochs = s.criticality_epochs}, distill);
  const auto& criticality = measured.rows;
  const auto& ranking = measured.ranking;
  const int64_t criticality_images = measured.images_forwarded;
  std::cout << select::describe_criticality(criticality);
  std::printf("criticality (%s%s): %lld images forwarded\n", select::to_string(s.mode).c_str(),
              s.mode == select::criticality_mode::evaluate
                  ? ""
                  : (", " + std::to_string(s.criticality_epochs) + " epochs per stage").c_str(),
              static_cast<long long>(criticality_images));

  // ---- 2. the plan ----------------------------------------------------------------------------
  const select::plan_settings plan_settings{.thin = s.thin, .keep_stages = s.keep_stages};
  const int64_t fewest = select::fewest_planned(masks.per_slot(), ranking, plan_settings);
  const int64_t budget_count = s.budget > 0 ? s.budget : fewest;
  const auto method = pipeline(select::stage_criticality{.ranking = ranking, .thin = s.thin, .keep_stages = s.keep_stages},
                               schedule::stagewise{.cull_per_step = 1, .thin_per_step = 1, .step_epochs = s.step_epochs},
                               distill);
  // The selection reports its plan (stderr) before the first step runs.
  // ---- 3. the pipeline ------------------------------------------------------------------------
  const auto result = run(method, net, teacher, data, budget(budget_count), options);
  const auto& stage = select::deepreduce_report::of(result.stages.at(0));
  std::printf("\n%-34s %10s %12s %12s\n", "step", "ReLUs", "test before", "test after");
  std::printf("%-34s %10lld %12s %12s\n", "baseline", static_cast<long long>(result.total_relus), "",
              percent(result.baseline_test_accuracy).c_str());
  for (const auto& step : stage.steps) {
    std::printf("%-34s %10lld %12s %12s\n", step.name.c_str(), static_cast<long long>(step.relu_count),
                percent(step.test_accuracy_selected).c_str(), percent(step.test_accuracy_finetuned).c_str());
    io::result_row row{.method = "deepreduce", .budget = static_cast<double>(budget_count),
                       .relu_count = step.relu_count, .accuracy = 100 * step.test_accuracy_finetuned};
    row.set("step", step.name).set("before_kd", 100 * step.test_accuracy_selected)
        .set("kd_epochs", step.finetune_epochs);
    rows.push_back(row);
  }
  std::printf("%-34s %10lld %12s %12s\n", "final finetune", static_cast<long long>(result.relu_count),
              percent(result.test_accuracy_before_finetune).c_str(), percent(result.test_accuracy_after_finetune).c_str());
  std::printf("private inference (DELPHI estimate): %.3f s per image with all ReLUs, %.3f s now\n",
              pi::delphi().latency(result.total_relus), pi::delphi().latency(result.relu_count));
  {
    io::result_row row{.method = "deepreduce", .budget = static_cast<double>(budget_count),
                       .relu_count = result.relu_count, .accuracy = 100 * result.test_accuracy_after_finetune,
                       .wall_time_s = result.seconds, .images_forwarded = result.images_forwarded + criticality_images};
    row.set("step", "final finetune").set("kd_epochs", s.final_epochs);
    rows.push_back(row);
  }
  save_rows(s.out / "deepreduce.csv", rows);

  // ---- 4a. reshaping: a narrower / lower-resolution network with the same culled and thinned stages
  if (s.reshape_width || s.reshape_size) {
    std::vector<double> widths;
    std::vector<int64_t> sizes;
    if (s.reshape_width) widths.push_back(static_cast<double>(*s.reshape_width));
    if (s.reshape_size) sizes.push_back(*s.reshape_size);
    auto reshape_settings = plan_settings;
    reshape_settings.allow_reshape = true;
    reshape_settings.reshapes = select::reshape_options("resnet18_in", spec, widths, sizes);
    // Below what culling and thinning reach, so the plan must reshape.
    const int64_t reshape_budget = s.reshape_budget > 0 ? s.reshape_budget : fewest / 2;
    const MaskSet fresh(*models::make_model("resnet18_in", spec));
    const auto plan = select::plan_deepreduce(fresh.per_slot(), ranking, reshape_budget, reshape_settings);
    std::cout << plan.describe();
    const auto small = select::build_reshaped("resnet18_in", spec, plan);
    const int64_t size = plan.reshape->size;
    auto o = training(s, s.reshape_epochs, 0x5e5a);
    o.checkpoint = s.out / "reshaped.ckpt";
    if (size == spec.size) o.teacher = teacher;  // same input: KD from the original network
    const auto train_small = resized(data.train, size);
    (void)train::fit(*small, train_small, o);
    const double top1 = train::evaluate(*small, resized(data.test, size), 512).top1;
    std::printf("reshaped %s: %lld ReLUs, test %s (%lld epochs from fresh weights%s)\n", small->describe().c_str(),
                static_cast<long long>(plan.relu_count), percent(top1).c_str(), static_cast<long long>(s.reshape_epochs),
                size == spec.size ? ", KD from the baseline" : ", no KD: the input size differs");
    io::result_row row{.method = "deepreduce", .budget = static_cast<double>(reshape_budget),
                       .relu_count = plan.relu_count, .accuracy = 100 * top1};
    row.set("step", plan.steps.back().describe()).set("kd_epochs", size == spec.size ? s.reshape_epochs : 0);
    rows.push_back(row);
    save_rows(s.out / "deepreduce.csv", rows);
  }

  // ---- 4b. SNL at each step's count, from the same baseline, with the same final finetune ---------
  if (s.snl_epochs > 0) {
    const auto snl = pipeline(relax::l1_mix{}, schedule::budget_tracking{.epochs = s.snl_epochs}, select::top_k{},
                              finetune::distill{.epochs = s.final_epochs});
    for (const auto& step : stage.steps) {
      const auto student = teacher->copy();
      auto snl_options = options;
      snl_options.work_dir = s.out / ("snl_" + std::to_string(step.relu_count));
      const auto r = run(snl, student, teacher, data, budget(step.relu_count), snl_options);
      std::printf("SNL at %lld ReLUs: test %s after binarization, %s after %lld epochs of KD\n",
                  static_cast<long long>(r.relu_count), percent(r.test_accuracy_before_finetune).c_str(),
                  percent(r.test_accuracy_after_finetune).c_str(), static_cast<long long>(s.final_epochs));
      io::result_row row{.method = "snl", .budget = static_cast<double>(step.relu_count), .relu_count = r.relu_count,
                         .accuracy = 100 * r.test_accuracy_after_finetune, .wall_time_s = r.seconds,
                         .images_forwarded = r.images_forwarded};
      row.set("search_epochs", r.stages.at(0).search_epochs).set("kd_epochs", s.final_epochs);
      rows.push_back(row);
      save_rows(s.out / "deepreduce.csv", rows);
    }
  }
  std::printf("wrote %s\n", (s.out / "deepreduce.csv").string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::main(argc, argv, usage, run_example); }
