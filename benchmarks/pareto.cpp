// The accuracy-versus-ReLU-budget benchmark: SNL, coordinate descent on SNL's result, DeepReDuce
// and a uniform-random selection over a list of budgets, all from one cached baseline, on the
// same data split, with the same finetune recipe. Writes
//   <out>/pareto.csv, pareto.json        one row per result (method, budget, ReLU count, test
//                                        accuracy, PI latency, wall time, images forwarded)
//   <out>/accuracy_vs_relus.svg          accuracy against ReLU count (log axis), one line a method
//   <out>/relus_per_layer.svg            ReLUs kept per layer of one result (--layers-of)
//   <out>/work/...                       checkpoints: rerunning the command resumes
//
//   pareto                      # defaults: the README's run (18 minutes on the 2-core VM)
//   pareto --quick              # a small network and data subsets: a few minutes (CI runs it)
//
// Coordinate descent at budget B starts from SNL's result at the next larger budget of the list
// (B_ref; by default 10% -> 5% is the paper's B_ref -> B_ref / 2 comparison); its cost columns
// count both stages.
// DeepReDuce's points are its culling/thinning steps down to the fewest ReLUs they reach
// (criticality measured once, each step followed by KD, a final KD finetune at the end).
#include "../examples/cli.hpp"

#include <linearize/linearize.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace lz = linearize;

namespace {

constexpr const char* usage = R"(usage: pareto [options]
  --budgets LIST        budgets, largest first: counts, percentages or fractions  [10%,5%,3%,1%]
  --methods LIST        any of snl, bcd, deepreduce, random               [snl,bcd,deepreduce,random]
  --data NAME           dataset                                                  [fashion-mnist]
  --data-dir DIR        where it is (fashion-mnist: Debian's path by default)
  --model NAME          resnet18_in, wide_resnet_22_8, mobilenet_v1                 [resnet18_in]
  --width W             the model's width knob (resnet18_in: 16)
  --train-subset N      training images the methods use (0: all)                          [10000]
  --held-out-subset N   held-out images for model selection and BCD scoring (0: all)          [0]
  --test-subset N       test images (0: all)                                                  [0]
  --search-epochs N     SNL's planned mask-search epochs (budget_tracking)                    [3]
  --step-scale X        l1_mix step_scale (how fast the masks move under Adam)               [10]
  --lambda0 X           SNL's initial penalty weight                                       [3e-4]
  --max-change X        budget_tracking: the most the weight changes per correction        [1.1]
  --finetune-epochs N   KD epochs after every method (the same for all)                       [2]
  --bcd-iterations N    coordinate-descent iterations per run (DRC follows)                  [10]
  --bcd-tries N         K: candidate blocks per iteration                                    [10]
  --bcd-adt X           accuracy-drop threshold, points                                     [0.5]
  --bcd-scoring-size N  held-out images scoring each candidate                             [2000]
  --criticality-epochs N  DeepReDuce: KD epochs per stage when measuring criticality        [1]
  --step-epochs N       DeepReDuce: KD epochs after each culling/thinning step               [1]
  --layers-of M@B       the result whose per-layer ReLUs are plotted      [snl@ smallest budget]
  --seed N                                                                                    [0]
  --out DIR                                                                      [runs/pareto]
  --quick               width 4, 1,000 training images, budgets 10%,5%, one epoch each
  --help
)";

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

struct settings {
  std::vector<std::string> budgets, methods;
  lz::train::baseline_spec spec;
  lz::train::baseline_options baseline;
  int64_t train_subset = 10000, held_out_subset = 0, test_subset = 0;
  int64_t search_epochs = 3, finetune_epochs = 2;
  double step_scale = 10;
  // Measured on ResNet18-IN width 16 (README): with the library's max_change of 2 the weight
  // winds up while the masks are still on their way down (the count only moves once they cross
  // the threshold), and the count collapses far below the plan; 1.1 a correction keeps it near.
  double lambda0 = 3e-4, max_change = 1.1;
  int64_t bcd_iterations = 10, bcd_tries = 10, bcd_scoring = 2000;
  double bcd_adt = 0.5;
  int64_t criticality_epochs = 1, step_epochs = 1;
  std::string layers_of;
  uint64_t seed = 0;
  fs::path out = "runs/pareto";
  bool quick = false;
};

settings parse(cli::arguments& args) {
  settings s;
  s.quick = args.flag("quick");
  if (s.quick) {  // small enough for CI; its numbers say nothing about the methods
    s.spec.width = 4;
    s.train_subset = 1000;
    s.held_out_subset = 500;
    s.test_subset = 1000;
    s.search_epochs = 1;
    s.finetune_epochs = 1;
    s.bcd_iterations = 3;
    s.bcd_tries = 3;
    s.bcd_scoring = 500;
    s.criticality_epochs = 1;
    s.step_epochs = 1;
    s.baseline.recipe.epochs = 1;
    s.out = "runs/pareto_quick";
  }
  s.budgets = split_list(args.text("budgets", s.quick ? "10%,5%" : "10%,5%,3%,1%"));
  s.methods = split_list(args.text("methods", "snl,bcd,deepreduce,random"));
  s.spec.data = args.text("data", s.spec.data);
  s.spec.data_dir = args.text("data-dir", "");
  s.spec.model = args.text("model", s.spec.model);
  if (auto w = args.number<double>("width", 0, cli::non_negative, "a positive width"); w > 0) s.spec.width = w;
  const auto count = [&](const char* name, int64_t& v) {
    v = args.number<int64_t>(name, v, cli::non_negative, "a count >= 0");
  };
  const auto positive = [&](const char* name, int64_t& v) {
    v = args.number<int64_t>(name, v, cli::positive, "a positive count");
  };
  count("train-subset", s.train_subset);
  count("held-out-subset", s.held_out_subset);
  count("test-subset", s.test_subset);
  positive("search-epochs", s.search_epochs);
  s.step_scale = args.number<double>("step-scale", s.step_scale, cli::positive, "a positive factor");
  s.lambda0 = args.number<double>("lambda0", s.lambda0, cli::positive, "a positive weight");
  s.max_change = args.number<double>("max-change", s.max_change, [](double v) { return v > 1; }, "a factor > 1");
  count("finetune-epochs", s.finetune_epochs);
  positive("bcd-iterations", s.bcd_iterations);
  positive("bcd-tries", s.bcd_tries);
  s.bcd_adt = args.number<double>("bcd-adt", s.bcd_adt, cli::non_negative, "accuracy points >= 0");
  count("bcd-scoring-size", s.bcd_scoring);
  positive("criticality-epochs", s.criticality_epochs);
  count("step-epochs", s.step_epochs);
  s.layers_of = args.text("layers-of", "");
  s.seed = args.number<uint64_t>("seed", 0, cli::non_negative, "a seed");
  s.out = args.text("out", s.out.string());
  args.finish();

  const std::set<std::string> known = {"snl", "bcd", "deepreduce", "random"};
  for (const auto& m : s.methods)
    if (!known.count(m)) throw cli::usage_error{"--methods: unknown method '" + m + "'; expected snl, bcd, deepreduce or random"};
  if (s.budgets.empty()) throw cli::usage_error{"--budgets is empty; expected e.g. 8%,4%,2%"};
  if (s.quick) s.baseline.out = s.out / "baseline.pt";  // not the cached width-16 baseline
  return s;
}

bool wants(const settings& s, const std::string& method) {
  return std::find(s.methods.begin(), s.methods.end(), method) != s.methods.end();
}

/// A pipeline's result as a benchmark row; `start` adds the cost of the stage it started from.
lz::io::result_row row_of(const lz::run_result& r, const std::string& method, const std::string& budget_text,
                          const lz::run_result* start = nullptr) {
  auto row = lz::result_row(r, method, lz::pi::delphi());
  row.set("budget_text", budget_text);
  if (start) {
    row.wall_time_s += start->seconds;
    row.images_forwarded += start->images_forwarded;
    row.set("start_relus", start->relu_count);
    row.set("own_images_forwarded", r.images_forwarded);
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  return cli::main(argc, argv, usage, [](cli::arguments& args) {
    const auto s = parse(args);
    const auto rt = lz::runtime::configure();
    std::printf("linearize pareto: %d threads, %s, fused kernel %s%s\n", rt.threads, rt.allocator_name().c_str(),
                lz::kernels::simd_name(), s.quick ? "; --quick: a smoke run, not a measurement" : "");

    // One baseline and one split for every method.
    const auto base = lz::train::load_or_train_baseline(s.spec, s.baseline);
    auto data = lz::baseline_run_data(base.record, s.spec.data_dir);
    if (s.train_subset > 0) data.train = data.train.take(s.train_subset);
    if (s.held_out_subset > 0) data.held_out = data.held_out.take(s.held_out_subset);
    if (s.test_subset > 0) data.test = data.test.take(s.test_subset);
    const int64_t total = lz::MaskSet(*base.net).total_relus();
    std::printf("baseline %s: test top-1 %.2f%%, %lld ReLUs; methods see %lld train, %lld held-out, %lld test images\n",
                base.record.model.c_str(), 100 * base.record.test_top1, static_cast<long long>(total),
                static_cast<long long>(data.train.size()), static_cast<long long>(data.held_out.size()),
                static_cast<long long>(data.test.size()));

    std::vector<int64_t> counts;
    for (const auto& b : s.budgets) counts.push_back(lz::parse_budget(b).resolve(total));
    for (size_t i = 1; i < counts.size(); ++i)
      lz::require(counts[i] < counts[i - 1], "pareto: --budgets must be largest first and distinct; '",
                  s.budgets[i], "' (", counts[i], " ReLUs) follows '", s.budgets[i - 1], "' (", counts[i - 1], ")");

    lz::run_options options;
    options.seed = s.seed;
    options.augment = base.record.recipe.augment;
    options.progress.mode = lz::train::progress_mode::lines;
    const auto finetune = lz::finetune::distill{.epochs = s.finetune_epochs};
    const auto work = [&](const std::string& name) {
      auto o = options;
      o.work_dir = s.out / "work" / name;
      return o;
    };

    std::vector<lz::io::result_row> rows;
    std::map<std::string, lz::Network> nets;  // "method@budget" -> the network it left
    const auto keep = [&](lz::io::result_row row, const std::string& key, const lz::Network& net) {
      std::printf("  -> %s: %lld ReLUs, test %.2f%%, %.3f s PI latency, %.0f s, %lld images forwarded\n", key.c_str(),
                  static_cast<long long>(row.relu_count), row.accuracy, row.pi_latency_s, row.wall_time_s,
                  static_cast<long long>(row.images_forwarded));
      rows.push_back(std::move(row));
      nets[key] = net;
      lz::io::write_csv(s.out / "pareto.csv", rows);  // after every result: an interruption loses none
      lz::io::write_json(s.out / "pareto.json", rows);
    };
    {
      lz::io::result_row row{.method = "baseline", .budget = static_cast<double>(total), .relu_count = total,
                             .accuracy = 100 * lz::train::evaluate(*base.net, data.test).top1,
                             .pi_latency_s = lz::pi::delphi().latency(total)};
      keep(row, "baseline", base.net);
    }

    // SNL at every budget (BCD starts from these).
    std::map<int64_t, lz::run_result> snl_results;
    if (wants(s, "snl") || wants(s, "bcd")) {
      const auto snl = lz::pipeline(lz::relax::l1_mix{.step_scale = s.step_scale},
                                    lz::schedule::budget_tracking{.epochs = s.search_epochs, .lambda0 = s.lambda0,
                                                                  .max_change = s.max_change},
                                    lz::select::top_k{}, finetune);
      for (size_t i = 0; i < counts.size(); ++i) {
        if (!wants(s, "snl") && i + 1 == counts.size()) break;  // only BCD's starting points
        std::printf("\n== SNL to %s (%lld ReLUs)\n", s.budgets[i].c_str(), static_cast<long long>(counts[i]));
        auto net = base.net->copy();
        const auto r = lz::run(snl, net, base.net, data, lz::budget(counts[i]), work("snl_" + s.budgets[i]));
        snl_results[counts[i]] = r;
        if (wants(s, "snl")) keep(row_of(r, "snl", s.budgets[i]), "snl@" + s.budgets[i], net);
        else nets["snl@" + s.budgets[i]] = net;
      }
    }

    // Coordinate descent from SNL's result at the next larger budget.
    if (wants(s, "bcd")) {
      for (size_t i = 1; i < counts.size(); ++i) {
        const auto& start = snl_results.at(counts[i - 1]);
        const int64_t drc = std::max<int64_t>(1, (start.relu_count - counts[i] + s.bcd_iterations - 1) / s.bcd_iterations);
        std::printf("\n== coordinate descent %s -> %s (%lld -> %lld ReLUs, DRC %lld)\n", s.budgets[i - 1].c_str(),
                    s.budgets[i].c_str(), static_cast<long long>(start.relu_count), static_cast<long long>(counts[i]),
                    static_cast<long long>(drc));
        const auto bcd = lz::pipeline(lz::select::coordinate_block{.tries = s.bcd_tries, .adt = s.bcd_adt,
                                                                   .scoring_size = s.bcd_scoring,
                                                                   .finetune_epochs = 1},
                                      lz::schedule::fixed_step{.drc = drc}, finetune);
        auto net = nets.at("snl@" + s.budgets[i - 1])->copy();
        const auto r = lz::run(bcd, net, base.net, data, lz::budget(counts[i]), work("bcd_" + s.budgets[i]));
        auto row = row_of(r, "snl+bcd", s.budgets[i], &start);
        const auto rep = lz::select::coordinate_report::of(r.stages.at(0));
        row.set("bcd_iterations", rep.iterations).set("bcd_tries", rep.tries)
            .set("bcd_early_rejections", rep.early_rejections).set("bcd_fallbacks", rep.fallbacks)
            // The prototype scores every try on the whole training set.
            .set("prototype_scoring_images", rep.tries * data.train.size());
        keep(row, "bcd@" + s.budgets[i], net);
      }
    }

    // DeepReDuce: its steps are its points.
    if (wants(s, "deepreduce")) {
      std::printf("\n== DeepReDuce\n");
      const auto o = work("deepreduce");
      const auto measured = lz::select::measure_criticality(base.net, base.net, data, o,
                                                    {.epochs = s.criticality_epochs}, finetune);
      std::cout << lz::select::describe_criticality(measured.rows);
      const lz::select::stage_criticality selection{.ranking = measured.ranking};
      const int64_t floor = lz::select::fewest_planned(lz::MaskSet(*base.net).per_slot(), measured.ranking,
                                                       {.thin = selection.thin, .keep_stages = selection.keep_stages});
      const auto deepreduce = lz::pipeline(selection,
                                           lz::schedule::stagewise{.cull_per_step = 1, .thin_per_step = 1,
                                                                   .step_epochs = s.step_epochs},
                                           finetune);
      auto net = base.net->copy();
      const auto r = lz::run(deepreduce, net, base.net, data, lz::budget(floor), o);
      for (const auto& step : lz::select::deepreduce_report::of(r.stages.at(0)).steps) {
        lz::io::result_row row{.method = "deepreduce", .budget = static_cast<double>(floor),
                               .relu_count = step.relu_count, .accuracy = 100 * step.test_accuracy_finetuned,
                               .pi_latency_s = lz::pi::delphi().latency(step.relu_count)};
        row.set("step", step.name).set("accuracy_before_finetune", 100 * step.test_accuracy_selected);
        rows.push_back(row);
      }
      auto row = row_of(r, "deepreduce", "fewest");
      row.wall_time_s += measured.seconds;
      row.images_forwarded += measured.images_forwarded;
      row.set("step", "final finetune");
      keep(row, "deepreduce@fewest", net);
    }

    // The control: uniform-random ReLUs at every budget, the same finetune.
    if (wants(s, "random")) {
      const auto random = lz::pipeline(lz::select::random{}, finetune);
      for (size_t i = 0; i < counts.size(); ++i) {
        std::printf("\n== random to %s\n", s.budgets[i].c_str());
        auto net = base.net->copy();
        const auto r = lz::run(random, net, base.net, data, lz::budget(counts[i]), work("random_" + s.budgets[i]));
        keep(row_of(r, "random", s.budgets[i]), "random@" + s.budgets[i], net);
      }
    }

    // Plots.
    auto plot = lz::io::accuracy_plot(rows, base.record.dataset + ", " + base.record.model);
    lz::io::write_svg(s.out / "accuracy_vs_relus.svg", plot);
    std::string layers_key = s.layers_of;
    if (layers_key.empty()) layers_key = nets.count("snl@" + s.budgets.back()) ? "snl@" + s.budgets.back() : nets.rbegin()->first;
    lz::require(nets.count(layers_key), "pareto: --layers-of '", layers_key, "' is not a result of this run");
    const lz::MaskSet masks(*nets.at(layers_key));
    lz::io::bar_chart chart;
    chart.title = layers_key + ": ReLUs kept per layer (" + std::to_string(masks.relu_count()) + " of " +
                  std::to_string(total) + ")";
    chart.bars = lz::io::bars_from(masks.per_slot());
    lz::io::write_svg(s.out / "relus_per_layer.svg", chart);

    // The table, and a check that what was written reads back.
    const auto back = lz::io::read_csv(s.out / "pareto.csv");
    lz::require(back.size() == rows.size(), "pareto: ", s.out / "pareto.csv", " holds ", back.size(), " rows; wrote ",
                rows.size());
    std::printf("\n%-12s %-8s %10s %10s %12s %10s %14s\n", "method", "budget", "ReLUs", "test top-1", "PI latency",
                "wall", "images fwd");
    for (const auto& r : back) {
      lz::require(r.method == "baseline" || r.method == "deepreduce" || r.relu_count <= r.budget,
                  "pareto: ", r.method, " kept ", r.relu_count, " ReLUs over its budget of ", r.budget);
      std::printf("%-12s %-8s %10lld %9.2f%% %11.3fs %9.0fs %14lld\n", r.method.c_str(),
                  r.method == "deepreduce" ? "-" : lz::io::detail::number_text(r.budget).c_str(),
                  static_cast<long long>(r.relu_count), r.accuracy, r.pi_latency_s, r.wall_time_s,
                  static_cast<long long>(r.images_forwarded));
    }
    std::printf("wrote %s/{pareto.csv, pareto.json, accuracy_vs_relus.svg, relus_per_layer.svg}\n", s.out.c_str());
    return 0;
  });
}
