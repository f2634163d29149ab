// Do the policies' defaults keep their promises? A researcher who composes
//   pipeline(relax::X{}, schedule::budget_tracking{.epochs = 3}, select::magnitude{},
//            finetune::distill{.epochs = 1})
// from the README should get a network within the budget, as accurate as the same pipeline with
// settings hand-tuned for this network (l1_mix step_scale 10, lambda0 3e-4, max_change 1.1, the
// demo's before the defaults found them themselves). This runs both, for each relaxation and
// budget, on one quick baseline (ResNet18-IN width 16 on Fashion-MNIST, 2 epochs; `--model` and
// `--width` for others), and reports the count each search reached before the selection (a
// selection that enforces the budget must not be what meets it), the count kept, and the test
// accuracy after binarization and after the finetune, over `--seeds` seeds. Rows go to
// <out>/defaults.csv as they finish; a rerun resumes from <out>/work. At the end <out>/defaults.md
// holds mean +- standard error per pipeline and the defaults-minus-tuned difference per seed (and,
// with --readme FILE, the same tables between FILE's `<!-- defaults:begin -->` and
// `<!-- defaults:end -->` lines). --tables-only writes the tables from <out>/defaults.csv as it
// stands, training nothing.
#include "../examples/cli.hpp"

#include <linearize/linearize.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

/// The work directory of one pipeline's run.
std::filesystem::path work_dir(const std::filesystem::path& out, const std::string& relax_name,
                               const std::string& setting, const std::string& budget_text, uint64_t seed) {
  return out / "work" / fmt::format("{}_{}_{}_seed{}", relax_name, setting, budget_text, seed);
}

/// --tables-only: the row of `all` (<out>/defaults.csv) for one pipeline's run; one missing, or
/// planned otherwise than the options say (its run.json records the scheduler's epochs, the
/// multiple searched to and the plan's shape, each resolved against the relaxation; the tables'
/// header would misreport them), is an error naming it.
linearize::io::result_row row_from_file(const std::vector<linearize::io::result_row>& all,
                                        const std::filesystem::path& out, const std::string& relax_name,
                                        const std::string& setting, const std::string& budget_text, uint64_t seed,
                                        int64_t planned, const linearize::schedule::budget_tracking& plan) {
  namespace lz = linearize;
  const auto method = relax_name + "+" + setting;
  const auto s = std::to_string(seed);
  const auto it = std::find_if(all.begin(), all.end(), [&](const lz::io::result_row& r) {
    return r.method == method && lz::io::group_of(r, "budget_text") == budget_text && lz::io::seed_of(r) == s;
  });
  lz::require(it != all.end(), "defaults --tables-only: ", out / "defaults.csv", " has no row for ", method, " at ",
              budget_text, ", seed ", s, "; expected one (run without --tables-only first)");
  const auto record = work_dir(out, relax_name, setting, budget_text, seed) / "run.json";
  const auto json = lz::io::read_json_file(record);
  const auto at = nlohmann::json::json_pointer("/stages/0/scheduler/epochs");
  lz::require(json.contains(at) && json[at].is_number_integer(), "defaults --tables-only: ", record,
              " has no integer stages[0].scheduler.epochs; expected the record run() writes");
  const auto recorded = json[at].get<int64_t>();
  lz::require(recorded == planned, "defaults --tables-only: ", record, " planned ", recorded,
              " search epochs; the options say ", planned, " (--search-epochs / --defaults-epochs)");
  const double search_to = plan.search_to, plan_fraction = plan.planned_fraction();
  const bool hold_to_plan = plan.hold_to_plan.value_or(false);
  const auto to = nlohmann::json::json_pointer("/stages/0/scheduler/search_to");  // absent: 1
  const double recorded_to = json.contains(to) && json[to].is_number() ? json[to].get<double>() : 1.0;
  lz::require(recorded_to == search_to, "defaults --tables-only: ", record, " searched to ", recorded_to,
              " times the budget; the options say ", search_to, " (--search-to; 0: the relaxation's own)");
  const auto fraction = nlohmann::json::json_pointer("/stages/0/scheduler/plan_fraction");
  lz::require(json.contains(fraction) && json[fraction].is_number() && json[fraction].get<double>() == plan_fraction,
              "defaults --tables-only: ",
              record, " planned to reach the budget at another fraction of its epochs than ", plan_fraction,
              " (--plan-fraction; 0: the relaxation's own)");
  const auto linger = nlohmann::json::json_pointer("/stages/0/scheduler/hold_to_plan");  // absent: false
  const bool recorded_linger = json.contains(linger) && json[linger].is_boolean() && json[linger].get<bool>();
  lz::require(recorded_linger == hold_to_plan, "defaults --tables-only: ", record, " held to the plan's end: ",
              recorded_linger, "; the options say ", hold_to_plan,
              " (--hold-to-plan / --no-hold-to-plan; neither: the relaxation's own)");
  return *it;
}

}  // namespace

int main(int argc, char** argv) {
  namespace lz = linearize;
  cli::app app{"Do the policies' defaults keep their promises? Default and hand-tuned pipelines side by "
               "side: the count each search reached and the accuracy each run ended at.",
               "defaults"};
  std::string budget_list = "5%", relax_list = "l1_mix,sigmoid_mask,hard_threshold",
              settings_list = "defaults,tuned";
  const lz::schedule::budget_tracking tracking_defaults{};
  double reprobe_rate = tracking_defaults.reprobe_rate, search_to = tracking_defaults.search_to,
         plan_fraction = tracking_defaults.plan_fraction;
  int hold_to_plan = 0;  // 1: --hold-to-plan, -1: --no-hold-to-plan, 0: the relaxation's own
  int64_t search_epochs = 3, defaults_epochs = 0, finetune_epochs = 1, subset = 10000, baseline_epochs = 2,
          seeds = 2;
  uint64_t seed = 0;
  std::filesystem::path readme;
  std::string section = "defaults";
  int threads = 0;
  bool tables_only = false;
  lz::train::baseline_spec spec;
  spec.width = 16;
  std::filesystem::path out = "runs/defaults";
  app.add_option("--budgets", budget_list, "budgets, comma-separated");
  app.add_option("--relax", relax_list, "relaxations, comma-separated: l1_mix, sigmoid_mask, hard_threshold");
  app.add_option("--settings", settings_list, "defaults (the policies' own), tuned (the demo's hand-tuned ones)");
  app.add_option("--defaults-epochs", defaults_epochs,
                 "the default pipelines' planned search epochs, when not --search-epochs: the tuned ones run "
                 "over their plan, so this compares the two at equal images")
      ->check(cli::at_least<int64_t>(0));
  app.add_option("--reprobe-rate", reprobe_rate,
                 "the default pipelines' budget_tracking{.reprobe_rate} (docs/results/defaults_v2.csv ran with 1.7 on commit 9159f1d, whose re-probe also raised on the plan)")
      ->check(cli::at_least(1.0));
  app.add_option("--search-to", search_to,
                 "the default pipelines' budget_tracking{.search_to}: the search stops at this multiple of the "
                 "budget and magnitude keeps the largest masks (0, the default: the relaxation's own, 4 for "
                 "l1_mix, 1 for the gated ones)")
      ->check(cli::at_least(0.0));
  app.add_option("--plan-fraction", plan_fraction,
                 "the default pipelines' budget_tracking{.plan_fraction}: the plan reaches the budget at this "
                 "fraction of its epochs (0, the default: the relaxation's own, 0.5 for hard_threshold, 0.8 for "
                 "the others; runs before hard_threshold had its own: 0.8)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--hold-to-plan,!--no-hold-to-plan", hold_to_plan,
               "the default pipelines' budget_tracking{.hold_to_plan}: held at the budget, the search trains on "
               "to the end of its planned epochs (neither: the relaxation's own, on for hard_threshold; runs "
               "before it had its own: --no-hold-to-plan)")
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw);  // both given would cancel out silently
  app.add_option("--search-epochs", search_epochs, "planned search epochs (budget_tracking{.epochs})")
      ->check(cli::at_least<int64_t>(1));
  app.add_option("--finetune-epochs", finetune_epochs, "distill{.epochs}")->check(cli::at_least<int64_t>(0));
  app.add_option("--train-subset", subset, "training images the runs use (0: all)")->check(cli::at_least<int64_t>(0));
  app.add_option("--baseline-epochs", baseline_epochs, "epochs of the quick baseline")->check(cli::at_least<int64_t>(1));
  cli::add_baseline_spec(app, spec);
  cli::add_seed(app, seed, "the first seed; seed k of --seeds is this + k");
  app.add_option("--seeds", seeds, "seeds each pipeline runs with")->check(cli::at_least<int64_t>(1));
  app.add_option("--readme", readme,
                 "also write the tables into this markdown file, between its <!-- defaults:begin --> and "
                 "<!-- defaults:end --> lines");
  app.add_option("--section", section, "the README section --readme writes: <!-- NAME:begin --> to <!-- NAME:end -->");
  cli::add_threads(app, threads);
  app.add_option("--out", out, "where rows and checkpoints go");
  app.add_flag("--tables-only", tables_only,
               "train nothing: write the tables from <out>/defaults.csv, from its rows of the given budgets, "
               "relaxations, settings and seeds (each must be there, planned as the options say)");
  return cli::run(app, argc, argv, [&] {
    const auto budgets = cli::split_list(budget_list);
    const auto relaxations = cli::split_list(relax_list);
    const auto settings = cli::split_list(settings_list);
    for (const auto& r : relaxations)
      lz::require(r == "l1_mix" || r == "sigmoid_mask" || r == "hard_threshold", "--relax: unknown relaxation '", r,
                  "'; expected l1_mix, sigmoid_mask or hard_threshold");
    for (const auto& s : settings)
      lz::require(s == "defaults" || s == "tuned", "--settings: unknown '", s, "'; expected defaults or tuned");
    for (const auto& b : budgets) (void)lz::parse_budget(b);
    lz::require(!tables_only || std::filesystem::exists(out / "defaults.csv"), "defaults --tables-only: no ",
                out / "defaults.csv", "; expected the rows of an earlier run in --out");
    // A README without the markers is refused now, not after hours of runs.
    if (!readme.empty()) (void)lz::io::replace_section(lz::read_file(readme), section, "", readme.string());

    const auto rt = cli::configure(threads);
    fmt::print("defaults: {} threads, {}\n", rt.threads, rt.allocator_name());
    lz::train::baseline_options bopts;
    bopts.out = out / ("baseline_" + spec.model + ".pt");
    bopts.recipe.epochs = baseline_epochs;
    const auto base = lz::train::load_or_train_baseline(spec, bopts);
    fmt::print("baseline: {}, test top-1 {:.2f}%\n", base.net->describe(), 100 * base.record.test_top1);
    auto data = lz::baseline_run_data(base.record, spec.data_dir);
    if (subset > 0) data.train = data.train.take(subset);

    const int64_t planned_defaults = defaults_epochs > 0 ? defaults_epochs : search_epochs;
    const auto held = hold_to_plan == 0 ? std::nullopt : std::optional<bool>{hold_to_plan > 0};
    // The default pipelines' scheduler, per relaxation: as pipeline() resolves it (the multiple
    // searched to and the plan's shape, where the options defer them to the relaxation).
    const auto planned = [&](const std::string& relax_name) {
      const lz::schedule::budget_tracking given{.epochs = planned_defaults,
                                                .plan_fraction = plan_fraction,
                                                .reprobe_rate = reprobe_rate,
                                                .search_to = search_to,
                                                .hold_to_plan = held};
      const auto resolved = [&](auto relax) { return lz::pipeline(relax, given, lz::select::magnitude{}).scheduler(); };
      if (relax_name == "l1_mix") return resolved(lz::relax::l1_mix{});
      if (relax_name == "sigmoid_mask") return resolved(lz::relax::sigmoid_mask{});
      return resolved(lz::relax::hard_threshold{});
    };
    // The tuned settings searched to the budget on the plan every relaxation had then (their runs
    // predate search_to and the relaxations' own plans).
    const lz::schedule::budget_tracking tuned_schedule{.epochs = search_epochs,
                                                       .plan_fraction = tracking_defaults.default_plan_fraction,
                                                       .lambda0 = 3e-4,
                                                       .max_change = 1.1,
                                                       .search_to = 1,
                                                       .hold_to_plan = false};
    std::vector<lz::io::result_row> rows;
    const auto run_one = [&](const auto& relax, const std::string& relax_name, const std::string& setting,
                             const std::string& budget_text, uint64_t seed) {
      const bool tuned = setting == "tuned";
      const auto schedule = tuned ? tuned_schedule : planned(relax_name);
      const auto method = lz::pipeline(relax, schedule, lz::select::magnitude{},
                                       lz::finetune::distill{.epochs = finetune_epochs});
      lz::run_options options;
      options.seed = seed;
      options.work_dir = work_dir(out, relax_name, setting, budget_text, seed);
      auto net = base.net->copy();
      const auto r = lz::run(method, net, base.net, data, lz::parse_budget(budget_text), options);
      int64_t searched = r.total_relus;
      for (const auto& h : r.history)
        if (h.phase == "search") searched = h.relu_count;
      lz::io::result_row row{.method = relax_name + (tuned ? "+tuned" : "+defaults"),
                             .budget = static_cast<double>(r.budget),
                             .relu_count = r.relu_count,
                             .accuracy = 100 * r.test_accuracy_after_finetune,
                             .wall_time_s = r.seconds,
                             .images_forwarded = r.images_forwarded};
      row.set("budget_text", budget_text)
          .set("seed", seed)
          .set("search_count", searched)
          .set("search_epochs", r.stages.at(0).search_epochs)
          .set("accuracy_binarized", 100 * r.test_accuracy_before_finetune)
          .set("baseline_accuracy", 100 * r.baseline_test_accuracy);
      rows.push_back(row);
      lz::io::write_csv(out / "defaults.csv", rows);
      fmt::print("{:<28} {:>6}: search ended at {:>7} ReLUs (budget {}), kept {}, test {:.2f}% -> {:.2f}% ({} epochs)\n",
                 row.method, budget_text, lz::grouped(searched), lz::grouped(r.budget), lz::grouped(r.relu_count),
                 100 * r.test_accuracy_before_finetune, 100 * r.test_accuracy_after_finetune,
                 r.stages.at(0).search_epochs);
      std::fflush(stdout);
    };
    const auto written = tables_only ? lz::io::read_csv(out / "defaults.csv") : std::vector<lz::io::result_row>{};
    for (int64_t k = 0; k < seeds; ++k)
      for (const auto& budget_text : budgets)
        for (const auto& relax_name : relaxations)
          for (const auto& setting : settings) {
            const bool tuned = setting == "tuned";
            const uint64_t s = seed + static_cast<uint64_t>(k);
            if (tables_only)
              rows.push_back(row_from_file(written, out, relax_name, setting, budget_text, s,
                                           tuned ? search_epochs : planned_defaults,
                                           tuned ? tuned_schedule : planned(relax_name)));
            else if (relax_name == "l1_mix")
              run_one(lz::relax::l1_mix{.step_scale = tuned ? 10.0 : 1.0}, relax_name, setting, budget_text, s);
            else if (relax_name == "sigmoid_mask")
              run_one(lz::relax::sigmoid_mask{}, relax_name, setting, budget_text, s);
            else
              run_one(lz::relax::hard_threshold{}, relax_name, setting, budget_text, s);
          }

    // The tables, from the rows: what README quotes.
    // Named where not the plan every relaxation had before (0.8, no hold to the plan's end).
    std::string defaults_to = search_to > 0 && search_to != 1 ? fmt::format(", .search_to = {}", search_to) : "";
    for (const auto& r : relaxations)
      if (search_to == 0 && planned(r).search_to != 1)
        defaults_to += fmt::format(", {}'s own .search_to = {}", r, planned(r).search_to);
    if (plan_fraction > 0 && plan_fraction != tracking_defaults.default_plan_fraction)
      defaults_to += fmt::format(", .plan_fraction = {}", plan_fraction);
    if (hold_to_plan > 0) defaults_to += ", .hold_to_plan = true";
    for (const auto& r : relaxations) {
      const auto s = planned(r);
      std::vector<std::string> own;
      if (plan_fraction == 0 && s.planned_fraction() != tracking_defaults.default_plan_fraction)
        own.push_back(fmt::format(".plan_fraction = {}", s.planned_fraction()));
      if (hold_to_plan == 0 && s.hold_to_plan.value_or(false)) own.emplace_back(".hold_to_plan = true");
      if (!own.empty()) defaults_to += fmt::format(", {}'s own {}", r, fmt::join(own, ", "));
    }
    std::string md = fmt::format(
        "{}, {} (baseline {:.2f}%), {} training images; budget_tracking{{.epochs = {}}} ({} for the defaults{}), "
        "distill{{.epochs = {}}}; {} seed(s) from {}.\n\n",
        base.record.dataset, base.net->describe(), 100 * base.record.test_top1, lz::grouped(data.train.size()),
        search_epochs, planned_defaults, defaults_to,
        finetune_epochs, seeds, seed);
    md += lz::io::markdown_summary(lz::io::summarize_groups(rows, "budget_text"));
    std::vector<lz::io::comparison> comps;
    if (settings.size() == 2)
      for (const auto& budget_text : budgets)
        for (const auto& relax_name : relaxations)
          comps.push_back(lz::io::compare(rows, relax_name + "+defaults", relax_name + "+tuned", budget_text,
                                          "budget_text"));
    if (!comps.empty()) md += "\n" + lz::io::markdown_comparisons(comps);
    md += "\n| pipeline | budget | seed | search ended at | search epochs | images forwarded |\n"
          "|---|---|---:|---:|---:|---:|\n";
    for (const auto& r : rows)
      md += fmt::format("| {} | {} | {} | {} | {} | {} |\n", r.method, *r.get("budget_text"), *r.get("seed"),
                        *r.get("search_count"), *r.get("search_epochs"), r.images_forwarded);
    lz::write_atomically(out / "defaults.md", [&](std::ostream& o) { o << md; });
    if (!readme.empty()) lz::io::write_section(readme, section, md);
    fmt::print("\ntables in {}{}\n", (out / "defaults.md").string(),
               readme.empty() ? "" : " and " + readme.string());
    return 0;
  });
}
