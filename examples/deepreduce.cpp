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

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace linearize;

struct settings {
  cli::parallel_options parallel;
  fs::path data_dir{};
  int64_t train_subset = 0;
  int64_t budget = 0;
  select::criticality_mode mode = select::criticality_mode::finetune;
  int64_t criticality_epochs = 1;
  int64_t step_epochs = 1;
  int64_t final_epochs = 2;
  select::thinning thin = select::thinning::keep_even;
  size_t keep_stages = 2;
  int64_t reshape_width = 0, reshape_size = 0;  ///< 0: keep the baseline's
  int64_t reshape_epochs = 3;
  int64_t reshape_budget = 0;
  int64_t snl_epochs = 0;
  fs::path out = "runs/deepreduce";
  uint64_t seed = 0;
};

void add_options(CLI::App& app, settings& s) {
  const auto count = [](int64_t min) { return cli::at_least<int64_t>(min); };
  app.add_option("--data-dir", s.data_dir,
                 "Fashion-MNIST files (Debian's when not given); the baseline is examples/pretrain's "
                 "cached one (trained when missing)")
      ->default_str("");
  app.add_option("--train-subset", s.train_subset, "train on the first N training images only (0: all)")
      ->check(count(0));
  app.add_option("--budget", s.budget, "ReLU budget (0: the fewest culling and thinning reach)")->check(count(0));
  app.add_option("--criticality", s.mode, "how stage criticality is measured: evaluate, finetune or train")
      ->transform(CLI::CheckedTransformer(std::map<std::string, select::criticality_mode>{
          {"evaluate", select::criticality_mode::evaluate},
          {"finetune", select::criticality_mode::finetune},
          {"train", select::criticality_mode::train}}))
      ->default_str(select::to_string(s.mode));
  app.add_option("--criticality-epochs", s.criticality_epochs, "epochs per stage in finetune/train modes")
      ->check(count(0));
  app.add_option("--step-epochs", s.step_epochs, "KD epochs after every step")->check(count(0));
  app.add_option("--final-epochs", s.final_epochs, "KD epochs of the final finetune")->check(count(0));
  app.add_option("--thin", s.thin, "thinning keeps relu1 (even) or relu2 (odd) of each block")
      ->transform(CLI::CheckedTransformer(std::map<std::string, select::thinning>{
          {"even", select::thinning::keep_even}, {"odd", select::thinning::keep_odd}}))
      ->default_str("even");
  app.add_option("--keep-stages", s.keep_stages, "most critical stages never culled")->check(count(1));
  app.add_option("--reshape-width", s.reshape_width, "reshape to this layer1 width (e.g. 8; 0: no reshape)")
      ->check(count(0));
  app.add_option("--reshape-size", s.reshape_size,
                 "reshape to this input size (e.g. 14; trained without KD; 0: no reshape)")
      ->check(count(0));
  app.add_option("--reshape-epochs", s.reshape_epochs, "epochs to train the reshaped network from fresh weights")
      ->check(count(0));
  app.add_option("--reshape-budget", s.reshape_budget,
                 "budget of the reshaped plan (0: half the fewest ReLUs culling and thinning reach; the "
                 "planner picks the configuration with the most ReLUs within it, on the reshaped network)")
      ->check(count(0));
  app.add_option("--snl-epochs", s.snl_epochs,
                 "also run SNL (l1_mix + budget_tracking, top_k) at each step's count with this many search "
                 "epochs and --final-epochs finetune (0: skip)")
      ->check(count(0));
  app.add_option("--out", s.out, "output directory");
  cli::add_seed(app, s.seed, "seed of split, batches, augmentation, weights");
  cli::add_parallel(app, s.parallel);
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

std::string percent(double top1) { return std::isnan(top1) ? "-" : fmt::format("{:.2f}%", 100 * top1); }

/// Writes the rows with each one's DELPHI latency estimate next to its ReLU count.
void save_rows(const fs::path& file, std::vector<io::result_row>& rows) {
  for (auto& r : rows)
    if (std::isnan(r.pi_latency_s)) r.pi_latency_s = pi::delphi().latency(r.relu_count);
  if (cli::writer()) io::write_csv(file, rows);
}

/// Refuses budgets the steps cannot reach before anything is loaded or trained: --budget below
/// the fewest ReLUs culling and thinning reach under any criticality ranking, and --reshape-budget
/// below the fewest they reach on the smallest reshaped network.
void check_reachable(const settings& s, const select::plan_settings& plan) {
  const auto net = models::make_model("resnet18_in", spec);
  const auto per_slot = MaskSet(*net).per_slot();
  int64_t total = 0;
  for (const auto& slot : per_slot) total += slot.active;
  const int64_t floor = select::fewest_reachable(per_slot, plan);
  const bool reshaping = s.reshape_width > 0 || s.reshape_size > 0;
  if (s.budget > 0) {
    require(s.budget <= total, "--budget ", grouped(s.budget), ": above the ", grouped(total), " ReLUs of ",
            net->describe(), "; expected at most that");
    require(s.budget >= floor, "--budget ", grouped(s.budget), ": below ", grouped(floor),
            ", the fewest ReLUs culling and thinning reach on ", net->describe(), " (--keep-stages ", s.keep_stages,
            ", --thin ", s.thin == select::thinning::keep_even ? "even" : "odd",
            "); expected a budget of at least ", grouped(floor), ", or fewer --keep-stages",
            reshaping ? "; the reshaped network has its own budget, --reshape-budget" : "");
  }
  if (reshaping && s.reshape_budget > 0) {
    std::vector<double> widths;
    std::vector<int64_t> sizes;
    if (s.reshape_width > 0) widths.push_back(static_cast<double>(s.reshape_width));
    if (s.reshape_size > 0) sizes.push_back(s.reshape_size);
    const auto options = select::reshape_options("resnet18_in", spec, widths, sizes);
    int64_t least = floor;  // without reshaping
    for (const auto& o : options) least = std::min(least, select::fewest_reachable(o.per_slot, plan));
    require(s.reshape_budget >= least, "--reshape-budget ", grouped(s.reshape_budget), ": below ", grouped(least),
            ", the fewest ReLUs culling and thinning reach even on the reshaped network (--reshape-width ",
            s.reshape_width, ", --reshape-size ", s.reshape_size, ", --keep-stages ", s.keep_stages,
            "); expected at least ", grouped(least), ", or a smaller --reshape-width / --reshape-size");
  }
}

int run_example(const settings& s) {
  const auto rt = runtime::configure();
  check_reachable(s, {.thin = s.thin, .keep_stages = s.keep_stages});
  fs::create_directories(s.out);
  fmt::print("linearize deepreduce: {} threads, {}\n", rt.threads, rt.allocator_name());

  // ---- the cached baseline (examples/pretrain) and its split: train / held-out / test ----------
  train::baseline_spec bspec;
  bspec.data_dir = s.data_dir;
  const auto base = train::load_or_train_baseline(bspec);
  auto data = baseline_run_data(base.record, s.data_dir);
  if (s.train_subset > 0) data.train = data.train.take(s.train_subset);
  fmt::print("data: {} train, {} held out, {} test\n", grouped(data.train.size()), grouped(data.held_out.size()),
             grouped(data.test.size()));
  const Network net = base.net->copy();
  const MaskSet masks(*net);
  const Network teacher = base.net;
  const double baseline_test = train::evaluate(*net, data.test, 512).top1;
  fmt::print("baseline {}: {} ReLUs, test {}\n", net->describe(), grouped(masks.relu_count()), percent(baseline_test));
  std::fflush(stdout);
  std::vector<io::result_row> rows;
  rows.push_back({.method = "baseline", .relu_count = masks.relu_count(), .accuracy = 100 * baseline_test});

  run_options options;
  options.work_dir = s.out / "work";
  options.seed = s.seed;
  options.batch_size = 128;
  options.augment = base.record.recipe.augment;
  options.progress.mode = train::progress_mode::lines;
  options.sync_batchnorm = s.parallel.sync_batchnorm;

  // ---- 1. criticality, measured once here so that the plan can be shown before anything else
  // runs and the default budget can follow from it -------------------------------------------------
  const auto distill = finetune::distill{.epochs = s.final_epochs};
  const auto measured = select::measure_criticality(net, teacher, data, options,
                                            {.mode = s.mode, .epochs = s.criticality_epochs}, distill);
  const auto& criticality = measured.rows;
  const auto& ranking = measured.ranking;
  const int64_t criticality_images = measured.images_forwarded;
  std::cout << select::describe_criticality(criticality);
  fmt::print("criticality ({}{}): {} images forwarded\n", select::to_string(s.mode),
             s.mode == select::criticality_mode::evaluate ? "" : fmt::format(", {} epochs per stage", s.criticality_epochs),
             grouped(criticality_images));
  std::fflush(stdout);

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
  const auto table_row = [](const std::string& step, int64_t relus, const std::string& before, const std::string& after) {
    fmt::print("{:<34} {:>10} {:>12} {:>12}\n", step, grouped(relus), before, after);
  };
  fmt::print("\n{:<34} {:>10} {:>12} {:>12}\n", "step", "ReLUs", "test before", "test after");
  table_row("baseline", result.total_relus, "", percent(result.baseline_test_accuracy));
  for (const auto& step : stage.steps) {
    table_row(step.name, step.relu_count, percent(step.test_accuracy_selected), percent(step.test_accuracy_finetuned));
    io::result_row row{.method = "deepreduce", .budget = static_cast<double>(budget_count),
                       .relu_count = step.relu_count, .accuracy = 100 * step.test_accuracy_finetuned};
    row.set("step", step.name).set("before_kd", 100 * step.test_accuracy_selected)
        .set("kd_epochs", step.finetune_epochs);
    rows.push_back(row);
  }
  table_row("final finetune", result.relu_count, percent(result.test_accuracy_before_finetune),
            percent(result.test_accuracy_after_finetune));
  fmt::print("private inference (DELPHI estimate): {:.3f} s per image with all ReLUs, {:.3f} s now\n",
             pi::delphi().latency(result.total_relus), pi::delphi().latency(result.relu_count));
  std::fflush(stdout);
  {
    io::result_row row{.method = "deepreduce", .budget = static_cast<double>(budget_count),
                       .relu_count = result.relu_count, .accuracy = 100 * result.test_accuracy_after_finetune,
                       .wall_time_s = result.seconds, .images_forwarded = result.images_forwarded + criticality_images};
    row.set("step", "final finetune").set("kd_epochs", s.final_epochs);
    rows.push_back(row);
  }
  save_rows(s.out / "deepreduce.csv", rows);

  // ---- 4a. reshaping: a narrower / lower-resolution network with the same culled and thinned stages
  if (s.reshape_width > 0 || s.reshape_size > 0) {
    std::vector<double> widths;
    std::vector<int64_t> sizes;
    if (s.reshape_width > 0) widths.push_back(static_cast<double>(s.reshape_width));
    if (s.reshape_size > 0) sizes.push_back(s.reshape_size);
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
    fmt::print("reshaped {}: {} ReLUs, test {} ({} epochs from fresh weights{})\n", small->describe(),
               grouped(plan.relu_count), percent(top1), s.reshape_epochs,
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
      fmt::print("SNL at {} ReLUs: test {} after binarization, {} after {} epochs of KD\n", grouped(r.relu_count),
                 percent(r.test_accuracy_before_finetune), percent(r.test_accuracy_after_finetune), s.final_epochs);
      io::result_row row{.method = "snl", .budget = static_cast<double>(step.relu_count), .relu_count = r.relu_count,
                         .accuracy = 100 * r.test_accuracy_after_finetune, .wall_time_s = r.seconds,
                         .images_forwarded = r.images_forwarded};
      row.set("search_epochs", r.stages.at(0).search_epochs).set("kd_epochs", s.final_epochs);
      rows.push_back(row);
      save_rows(s.out / "deepreduce.csv", rows);
    }
  }
  fmt::print("wrote {}\n", (s.out / "deepreduce.csv").string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::app app{"DeepReDuce (criticality, culling, thinning, KD after each step; optionally reshaping) on "
               "Fashion-MNIST with ResNet18-IN at width 16.", "deepreduce"};
  settings s;
  add_options(app, s);
  return cli::run(app, s.parallel, argc, argv, [&] { return run_example(s); });
}
