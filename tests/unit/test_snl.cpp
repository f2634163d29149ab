// SNL end to end on a tiny network and synthetic data: the pipeline's run() with mask search,
// selection, binarization and finetuning.
#include "test_support.hpp"
#include "killed_run.hpp"
#include "train_fixtures.hpp"

#include <linearize/io/json.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/pipeline/report.hpp>
#include <linearize/pipeline/run.hpp>
#include <linearize/relax/autorep.hpp>
#include <linearize/relax/hard_threshold.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/relax/sigmoid_mask.hpp>
#include <linearize/schedule/budget_tracking.hpp>
#include <linearize/select/magnitude.hpp>
#include <linearize/select/random.hpp>
#include <linearize/select/top_k.hpp>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;
using linearize::testing::stripes;
using linearize::testing::quick_options;
using linearize::testing::tiny_conv;

namespace {

run_data tiny_data() {
  return {.train = stripes(192, 1), .held_out = stripes(48, 2), .test = stripes(96, 3)};
}

// To the budget (l1_mix's own search_to is 4): these tests check the controller reaching it.
constexpr auto tracking = schedule::budget_tracking{.epochs = 10, .check_every = 2, .search_to = 1};

}  // namespace

TEST_CASE("SNL: the count falls and stops at or below the budget; one history row per epoch",
          "[snl]") {
  auto net = tiny_conv(11, 4, 0.0);
  const auto snl = pipeline(relax::l1_mix{}, tracking, select::magnitude{},
                            finetune::distill{.epochs = 2});
  const auto result = run(snl, net, net->copy(), tiny_data(), budget(40), quick_options());
  REQUIRE(result.stages.size() == 1);
  const auto& stage = result.stages[0];
  CHECK(result.total_relus == 144);
  CHECK(result.relu_count <= 40);
  CHECK(stage.budget_met);
  CHECK(result.relu_count == MaskSet(*net).relu_count());
  CHECK(MaskSet(*net)[0].is_hard());
  int64_t search_rows = 0, finetune_rows = 0, first = -1, last = -1;
  for (const auto& row : result.history) {
    if (row.phase == "search") {
      if (first < 0) first = row.relu_count;
      last = row.relu_count;
      ++search_rows;
      CHECK(row.penalty_weight > 0);
    }
    if (row.phase == "finetune") ++finetune_rows;
  }
  CHECK(search_rows == stage.search_epochs);
  CHECK(search_rows >= 1);
  CHECK(finetune_rows == 2);
  CHECK(last <= 40);
  CHECK(last < 144);
  CHECK(std::isfinite(result.test_accuracy_before_finetune));
  CHECK(std::isfinite(result.test_accuracy_after_finetune));
  CHECK(result.images_forwarded > 0);
}

TEST_CASE("budget_tracking{.search_to} stops the search above the budget; magnitude cuts the rest",
          "[snl]") {
  auto net = tiny_conv(11, 4, 0.0);
  auto to = tracking;
  to.search_to = 2;
  const auto snl = pipeline(relax::l1_mix{}, to, select::magnitude{}, finetune::distill{.epochs = 1});
  const auto result = run(snl, net, net->copy(), tiny_data(), budget(20), quick_options());
  int64_t searched = -1;
  for (const auto& row : result.history)
    if (row.phase == "search") searched = row.relu_count;
  INFO("search ended at " << searched);
  CHECK(searched <= 40);  // the search's own target, 2 x 20
  CHECK(searched > 20);   // and not beyond it: the selection did the rest
  CHECK(result.relu_count == 20);
  CHECK(result.relu_count == MaskSet(*net).relu_count());
}

TEST_CASE("budget_tracking's search_to defaults to the relaxation's own: l1_mix searches to 4x the "
          "budget (at most half its start), the gated relaxations to the budget", "[snl]") {
  const auto defaults = schedule::budget_tracking{.epochs = 10, .check_every = 2};
  CHECK(defaults.search_to == 0);
  CHECK(defaults.search_count(20) == 20);  // outside a pipeline nothing to defer to: the budget
  CHECK(pipeline(relax::l1_mix{}, defaults, select::magnitude{}).scheduler().search_to == 4);
  CHECK(pipeline(relax::sigmoid_mask{}, defaults, select::magnitude{}).scheduler().search_to == 1);
  CHECK(pipeline(relax::hard_threshold{}, defaults, select::magnitude{}).scheduler().search_to == 1);
  auto given = defaults;
  given.search_to = 2;
  CHECK(pipeline(relax::l1_mix{}, given, select::magnitude{}).scheduler().search_to == 2);

  // 144 ReLUs. To 10: the search aims at 40 and magnitude cuts the rest; the record says 4.
  const auto searched_to = [&](const schedule::budget_tracking& sched, int64_t b, linearize::testing::temp_dir& dir) {
    const auto method = pipeline(relax::l1_mix{}, sched, select::magnitude{}, finetune::distill{.epochs = 0});
    auto net = tiny_conv(11, 4, 0.0);
    auto opts = quick_options();
    opts.work_dir = dir.path;
    const auto r = run(method, net, net->copy(), tiny_data(), budget(b), opts);
    CHECK(r.relu_count == b);
    int64_t searched = -1;
    for (const auto& row : r.history)
      if (row.phase == "search") searched = row.relu_count;
    return searched;
  };
  linearize::testing::temp_dir to_10("search_to_own_10");
  const auto at_10 = searched_to(defaults, 10, to_10);
  INFO("to 10: search ended at " << at_10);
  CHECK(at_10 <= 40);
  CHECK(at_10 > 10);
  const auto record = io::read_json_file(to_10 / "run.json");
  CHECK(record.at("stages").at(0).at("scheduler").at("search_to").get<double>() == 4);
  // To 40: 4x is 160, above the 144 it starts with; capped at half the start, 72, it still
  // searches (uncapped it would stop at once and leave magnitude a tie of unit masks). Its
  // masks wait out 6 epochs of dead time here: overtime to reach 72.
  linearize::testing::temp_dir to_40("search_to_own_40");
  auto longer = defaults;
  longer.overtime = 6;
  const auto at_40 = searched_to(longer, 40, to_40);
  INFO("to 40: search ended at " << at_40);
  CHECK(at_40 <= 72);
  CHECK(at_40 > 40);
}

TEST_CASE("budget_tracking{.hold_to_plan}: a search held at the budget trains on at it to the end of "
          "its planned epochs", "[snl]") {
  // A plan longer than the search needs: the budget is met before its end.
  auto plain_plan = tracking;
  plain_plan.epochs = 16;
  plain_plan.plan_fraction = 0.5;
  auto lingering = plain_plan;
  lingering.hold_to_plan = true;
  const auto searched = [&](const schedule::budget_tracking& sched) {
    auto net = tiny_conv(11, 4, 0.0);
    const auto snl = pipeline(relax::l1_mix{}, sched, select::magnitude{.enforce_budget = false},
                              finetune::distill{.epochs = 0});
    return run(snl, net, net->copy(), tiny_data(), budget(40), quick_options());
  };
  const auto plain = searched(plain_plan), held = searched(lingering);
  const auto counts = [](const run_result& r) {
    std::vector<int64_t> out;
    for (const auto& row : r.history)
      if (row.phase == "search") out.push_back(row.relu_count);
    return out;
  };
  const auto a = counts(plain), b = counts(held);
  INFO("plain: " << a.size() << " search epochs, held: " << b.size());
  REQUIRE(!a.empty());
  REQUIRE(a.back() <= 40);
  CHECK(static_cast<int64_t>(a.size()) < plain_plan.epochs);  // met the budget early and stopped
  CHECK(static_cast<int64_t>(b.size()) == plain_plan.epochs);  // trained on at it to the plan's end
  CHECK(held.stages[0].search_epochs == plain_plan.epochs);
  // The same search up to the epoch that met the budget; from there the count stays held.
  for (size_t e = 0; e + 1 < a.size(); ++e) CHECK(b[e] == a[e]);
  for (size_t e = a.size() - 1; e < b.size(); ++e) CHECK(b[e] == b[a.size() - 1]);
  CHECK(b.back() <= 40);
  CHECK(held.relu_count == b.back());
  CHECK(held.images_forwarded > plain.images_forwarded);
}

TEST_CASE("budget_tracking's plan defers to the relaxation: hard_threshold reaches the budget at half "
          "its planned epochs and trains at it to the plan's end, the others keep 0.8 and stop", "[snl]") {
  const auto defaults = schedule::budget_tracking{.epochs = 16, .check_every = 2};
  CHECK(defaults.plan_fraction == 0);
  CHECK(defaults.planned_fraction() == schedule::budget_tracking::default_plan_fraction);
  CHECK(!defaults.hold_to_plan.has_value());
  const auto own = pipeline(relax::hard_threshold{}, defaults, select::magnitude{}).scheduler();
  CHECK(own.plan_fraction == 0.5);
  CHECK(own.hold_to_plan == std::optional<bool>{true});
  for (const auto& s : {pipeline(relax::l1_mix{}, defaults, select::magnitude{}).scheduler(),
                        pipeline(relax::sigmoid_mask{}, defaults, select::magnitude{}).scheduler()}) {
    CHECK(s.planned_fraction() == 0.8);
    CHECK(s.hold_to_plan == std::optional<bool>{false});
  }
  auto given = defaults;  // the plan every relaxation had before: kept as given
  given.plan_fraction = 0.8;
  given.hold_to_plan = false;
  const auto kept = pipeline(relax::hard_threshold{}, given, select::magnitude{}).scheduler();
  CHECK(kept.plan_fraction == 0.8);
  CHECK(kept.hold_to_plan == std::optional<bool>{false});

  // Run: its own plan meets the budget early and trains at it for all 16 planned epochs, and
  // the record says so; the plan given as before stops at the end of the epoch that met it.
  const auto searched = [&](const schedule::budget_tracking& sched, linearize::testing::temp_dir& dir) {
    auto net = tiny_conv(11, 4, 0.0);
    auto opts = quick_options();
    opts.work_dir = dir.path;
    return run(pipeline(relax::hard_threshold{}, sched, select::magnitude{.enforce_budget = false},
                        finetune::distill{.epochs = 0}),
               net, net->copy(), tiny_data(), budget(40), opts);
  };
  linearize::testing::temp_dir own_dir("hard_own_plan"), given_dir("hard_given_plan");
  const auto a = searched(defaults, own_dir), b = searched(given, given_dir);
  INFO("own plan: " << a.stages[0].search_epochs << " search epochs, given: " << b.stages[0].search_epochs);
  CHECK(a.relu_count <= 40);
  CHECK(b.relu_count <= 40);
  CHECK(a.stages[0].search_epochs == 16);
  CHECK(b.stages[0].search_epochs < 16);
  const auto record = io::read_json_file(own_dir / "run.json").at("stages").at(0).at("scheduler");
  CHECK(record.at("plan_fraction").get<double>() == 0.5);
  CHECK(record.at("hold_to_plan").get<bool>());
  const auto before = io::read_json_file(given_dir / "run.json").at("stages").at(0).at("scheduler");
  CHECK(before.at("plan_fraction").get<double>() == 0.8);
  CHECK(!before.contains("hold_to_plan"));
}

TEST_CASE("budget_tracking corrects at least once an epoch when an epoch is shorter than "
          "check_every", "[snl]") {
  // 192 images at batch 32: 6 steps an epoch, fewer than check_every. A one-epoch plan, so that
  // the plan's count falls below the start within the first epoch.
  // Three epochs of overtime: l1_mix's masks need 3.3 epochs to cross at this lr.
  const auto slow = schedule::budget_tracking{
      .epochs = 1, .lambda0 = 1e-3, .check_every = 1000, .overtime = 3};
  auto net = tiny_conv(11, 4, 0.0);
  const auto snl = pipeline(relax::l1_mix{}, slow, select::magnitude{}, finetune::distill{.epochs = 0});
  const auto result = run(snl, net, net->copy(), tiny_data(), budget(40), quick_options());
  REQUIRE_FALSE(result.history.empty());
  REQUIRE(result.history.front().phase == "search");
  // Corrected within the first epoch already: the weight it ended with is not lambda0.
  CHECK(result.history.front().penalty_weight != Approx(1e-3));
}

TEST_CASE("SNL with top_k hits the budget exactly; the same seed gives the same mask", "[snl]") {
  const auto method = pipeline(relax::l1_mix{}, tracking, select::top_k{}, finetune::distill{.epochs = 0});
  auto a = tiny_conv(12, 4, 0.0), b = tiny_conv(12, 4, 0.0);
  const auto ra = run(method, a, a->copy(), tiny_data(), budget(37), quick_options());
  const auto rb = run(method, b, b->copy(), tiny_data(), budget(37), quick_options());
  CHECK(ra.relu_count == 37);
  CHECK(torch::equal(ra.mask, rb.mask));
  auto other = quick_options();
  other.seed = 99;
  auto c = tiny_conv(12, 4, 0.0);
  const auto rc = run(method, c, c->copy(), tiny_data(), budget(37), other);
  CHECK(rc.relu_count == 37);
}

TEST_CASE("run() leaves the teacher as it was: one baseline serves several runs", "[snl]") {
  const auto method = pipeline(relax::l1_mix{}, tracking, select::top_k{}, finetune::distill{.epochs = 1});
  const auto baseline = tiny_conv(14, 4, 0.0);
  const auto before = baseline->copy();
  baseline->train();
  for (const int64_t b : {60, 30}) {  // the second student is copied from the baseline after a run
    auto student = baseline->copy();
    const auto r = run(method, student, baseline, tiny_data(), budget(b), quick_options());
    CHECK(r.relu_count == b);
    CHECK(r.test_accuracy_after_finetune >= 0);
    CHECK(baseline->is_training());
    for (const auto& p : baseline->parameters()) CHECK(p.requires_grad());
    CHECK(linearize::testing::same_state(*baseline, *before));
  }
}

TEST_CASE("A budget of all ReLUs leaves the network unchanged", "[snl]") {
  auto net = tiny_conv(13, 4, 0.0);
  auto before = net->copy();
  const auto snl = pipeline(relax::l1_mix{}, tracking, select::magnitude{});
  const auto result = run(snl, net, net->copy(), tiny_data(), budget(144), quick_options());
  CHECK(result.relu_count == 144);
  CHECK(result.history.empty());
  net->eval();
  before->eval();
  const auto x = torch::randn({5, 1, 6, 6});
  CHECK(torch::equal(net->forward(x), before->forward(x)));
}

TEST_CASE("Binarized network: count as reported, output equal to the soft network's where gates "
          "are exactly 0 or 1", "[snl]") {
  auto net = tiny_conv(14, 4, 0.0);
  net->eval();
  const MaskSet masks(*net);
  {
    torch::NoGradGuard no_grad;
    masks[0].mask().copy_(torch::randint(0, 2, masks[0].mask().sizes()).to(torch::kFloat));
  }
  const auto x = torch::randn({7, 1, 6, 6});
  const auto soft = net->forward(x);
  const auto soft_count = masks.relu_count();
  masks.harden(masks.binary());
  CHECK(masks[0].is_hard());
  CHECK(masks.relu_count() == soft_count);
  CHECK(close(net->forward(x), soft));
}

TEST_CASE("run() rejects bad budgets and a teacher that is the student", "[snl]") {
  auto net = tiny_conv(15, 4, 0.0);
  const auto method = pipeline(select::top_k{});
  expect_error([&] { (void)run(method, net, net->copy(), tiny_data(), budget(0), quick_options()); },
               "budget of 0 ReLUs out of range: expected 1 to 144");
  expect_error([&] { (void)run(method, net, net->copy(), tiny_data(), budget(145), quick_options()); },
               "budget of 145 ReLUs out of range");
  expect_error([&] { (void)run(method, net, net, tiny_data(), budget(10), quick_options()); },
               "the teacher is the network being linearized");
}

TEST_CASE("run() resumes from its work directory to the same result", "[snl]") {
  linearize::testing::temp_dir dir("snl_resume");
  auto opts = quick_options();
  opts.work_dir = dir.path;
  const auto method = pipeline(relax::l1_mix{}, tracking, select::top_k{}, finetune::distill{.epochs = 1});
  auto a = tiny_conv(16, 4, 0.0);
  const auto first = run(method, a, a->copy(), tiny_data(), budget(50), opts);
  CHECK(std::filesystem::exists(dir / "stage0_search.ckpt"));
  CHECK(std::filesystem::exists(dir / "stage0_finetune.ckpt"));
  // A second call finds every phase finished and rebuilds the same network from the files.
  auto b = tiny_conv(16, 4, 0.0);
  const auto again = run(method, b, b->copy(), tiny_data(), budget(50), opts);
  CHECK(torch::equal(first.mask, again.mask));
  CHECK(linearize::testing::same_state(*a, *b));
  // The same compute, the probes' images included (they live in the search's scalars).
  CHECK(again.images_forwarded == first.images_forwarded);
  // Test evaluations only report: a larger test set forwards the same images as compute.
  auto c = tiny_conv(16, 4, 0.0);
  auto bigger = tiny_data();
  bigger.test = stripes(960, 3);
  const auto other = run(method, c, c->copy(), bigger, budget(50), quick_options());
  CHECK(other.images_forwarded == first.images_forwarded);
}

TEST_CASE("A run's report and files: mask loads back, rows and history are written", "[snl]") {
  linearize::testing::temp_dir dir("snl_report");
  auto net = tiny_conv(17, 4, 0.0);
  const auto method = pipeline(relax::l1_mix{}, tracking, select::top_k{}, finetune::distill{.epochs = 1});
  const auto result = run(method, net, net->copy(), tiny_data(), budget(60), quick_options());
  const MaskSet masks(*net);
  std::ostringstream text;
  report(text, result, masks, pi::delphi());
  CHECK(text.str().find("ReLUs: 60 of 144") != std::string::npos);
  save_outputs(dir.path, "snl", result, masks, pi::delphi());
  auto other = tiny_conv(18, 4, 0.0);
  const MaskSet loaded(*other);
  loaded.load(dir / "mask");
  CHECK(torch::equal(loaded.binary(), result.mask));
  const auto rows = io::read_csv(dir / "result.csv");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].relu_count == 60);
  CHECK(rows[0].accuracy == Approx(100 * result.test_accuracy_after_finetune));
  CHECK(rows[0].pi_latency_s == Approx(60 * 22.5e-6));
  const auto history = read_file(dir / "history.csv");
  CHECK(std::count(history.begin(), history.end(), '\n') == static_cast<long>(result.history.size() + 1));
  CHECK(std::filesystem::file_size(dir / "relus_per_layer.svg") > 500);
}

TEST_CASE("Random selection keeps exactly the budget, only among active ReLUs, reproducibly",
          "[snl]") {
  const auto method = pipeline(select::random{}, finetune::distill{.epochs = 0});
  auto a = tiny_conv(19, 4, 0.0), b = tiny_conv(19, 4, 0.0);
  const MaskSet masks(*a);
  auto half = torch::zeros({masks.entries()}, torch::kBool);
  half.slice(0, 0, 72).fill_(true);
  masks.harden(half);
  MaskSet(*b).harden(half);
  const auto ra = run(method, a, a->copy(), tiny_data(), budget(30), quick_options());
  const auto rb = run(method, b, b->copy(), tiny_data(), budget(30), quick_options());
  CHECK(ra.relu_count == 30);
  CHECK(torch::equal(ra.mask, rb.mask));
  CHECK(ra.mask.slice(0, 72).sum().item<int64_t>() == 0);  // removed ReLUs never return
}

TEST_CASE("Every relaxation's own search reaches the budget with magnitude selection, at the "
          "optimizer's own learning rate", "[snl]") {
  // SNL's Adam lr of 1e-3 (not the fast one of quick_options): the masks' speed and the weight
  // come from the scheduler and its probe, and magnitude keeps what the relaxation counts as
  // kept. The budget is checked on the search's own count, before any selection could cut.
  auto opts = quick_options();
  opts.search_optimizer = train::mask_search_adam;
  opts.batch_size = 8;
  const auto check = [&](auto relax, int64_t at_least = 25) {
    INFO(relax.name());
    auto net = tiny_conv(20, 4, 0.0);
    // l1_mix crosses at most 10x faster than Adam moves it (its margin): ~4 epochs of 24 steps.
    // To the budget itself (l1_mix's own search_to is 4): the search, not the selection, meets it.
    const auto method = pipeline(relax, schedule::budget_tracking{.epochs = 12, .check_every = 2, .search_to = 1},
                                 select::magnitude{.enforce_budget = false},
                                 finetune::distill{.epochs = 0});
    const auto r = run(method, net, net->copy(), tiny_data(), budget(50), opts);
    int64_t searched = r.total_relus;
    for (const auto& h : r.history)
      if (h.phase == "search") searched = h.relu_count;
    CHECK(searched <= 50);
    CHECK(searched >= at_least);
    CHECK(r.relu_count == searched);  // magnitude keeps exactly the search's count
    CHECK(r.stages[0].search_epochs >= 1);
  };
  check(relax::l1_mix{});
  check(relax::sigmoid_mask{});
  check(relax::hard_threshold{});
  // AutoReP's hard mask with hysteresis (its gates are the kept set; the re-probes at epoch ends
  // leave them as they were) and its polynomials, under budget_tracking.
  check(relax::autorep{});
  // l1_mix's own step_scale (the scheduler then adds no speed): before the search held its
  // masks at the budget and the probe counted removed masks as gone, the masks still in flight
  // took it to 18 of 50 by the epoch's end (the dead-time plant of test_pipeline_compose.cpp
  // shows the hold's part).
  check(relax::l1_mix{.step_scale = 10});
}

namespace {
/// budget_tracking that notes its last correction's step (global, 0-based) and, with `kill`,
/// throws at the first epoch end after the search began holding its masks.
struct killed_when_held : schedule::budget_tracking {
  int64_t* last_step = nullptr;
  int64_t* steps_per_epoch = nullptr;
  bool kill = false;
  void after_step(scalars& state, const search_progress& p) const {
    *last_step = p.epoch * p.steps_per_epoch + p.step;
    *steps_per_epoch = p.steps_per_epoch;
    budget_tracking::after_step(state, p);
  }
  bool after_epoch(scalars& state, const search_progress& p) const {
    if (kill && state.contains(held_key) && state.at(held_key) != 0) throw std::runtime_error("killed mid-search");
    return budget_tracking::after_epoch(state, p);
  }
};
}  // namespace

TEST_CASE("budget_tracking holds the masks from the step the count meets the budget; a run "
          "killed while holding resumes to the same mask", "[snl]") {
  // Corrections every step, so the last one is the step before the hold.
  int64_t last_step = -1, steps_per_epoch = 0;
  int unused = 0;
  const auto method = [&](int kill_at) {
    return pipeline(relax::l1_mix{.step_scale = 10},
                    killed_when_held{{.epochs = 10, .check_every = 1, .search_to = 1}, &last_step, &steps_per_epoch, kill_at >= 0},
                    select::magnitude{.enforce_budget = false}, finetune::distill{.epochs = 1});
  };
  const auto runs = linearize::testing::run_killed_and_resumed(method, 0, unused, tiny_data(), 50, "hold");
  int64_t searched = -1;
  for (const auto& h : runs.whole.history)
    if (h.phase == "search") searched = h.relu_count;
  CHECK(searched <= 50);
  CHECK(searched >= 25);
  CHECK(runs.whole.relu_count == searched);
  // The resume took the held masks from a checkpoint written while holding (every 4 steps),
  // not from a replay of the steps before the hold.
  const int64_t held_at = last_step + 1;
  const int64_t saved_at = (held_at / 4 + 1) * 4 - 1;
  INFO("held at step " << held_at << ", " << steps_per_epoch << " steps an epoch");
  REQUIRE(steps_per_epoch > 0);
  CHECK(saved_at / steps_per_epoch == held_at / steps_per_epoch);
  CHECK(saved_at % steps_per_epoch < steps_per_epoch - 1);

}

TEST_CASE("The weight probe counts removed entries as gone at any weight", "[snl]") {
  // A re-probe after some masks have crossed: the removed ones must not look like the last to
  // go (l1_mix's penalty has no gradient at 0, which made their threshold infinite and the
  // curve ask for the largest weight below their count). from_binary puts them at 0.
  auto net = tiny_conv(23, 4, 0.0);
  const auto teacher = net->copy();
  const auto data = tiny_data();
  const auto opts = quick_options();
  stage_context<finetune::distill, schedule::budget_tracking> ctx(*net, teacher, data, opts, 0, 50, {}, {});
  const relax::l1_mix relax{};
  const auto entries = ctx.masks.entries();
  auto binary = torch::ones({entries}, torch::kBool);
  binary.slice(0, 0, entries / 2).fill_(false);  // the first half removed
  int64_t offset = 0;
  std::vector<double> per_entry;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < ctx.masks.size(); ++i) {
      auto& slot = ctx.masks[i];
      const auto n = slot.mask().numel();
      slot.soften();
      slot.mask().copy_(relax.from_binary(binary.slice(0, offset, offset + n).reshape(slot.mask().sizes())));
      offset += n;
      per_entry.push_back(static_cast<double>(slot.relus_per_entry()));
    }
  }
  const auto probe = linearize::detail::probe_weights(relax, ctx, 2, per_entry, 0);
  REQUIRE(probe.thresholds.numel() == entries);
  CHECK(probe.thresholds.slice(0, 0, entries / 2).eq(0).all().template item<bool>());
  const auto kept = probe.thresholds.slice(0, entries / 2);
  CHECK(kept.isfinite().all().template item<bool>());
  // Below the kept count the curve asks for a kept entry's threshold, never more.
  const double largest = kept.max().item<double>();
  for (const int64_t count : {int64_t{1}, entries / 4, entries / 2 - 1}) {
    INFO("count " << count);
    CHECK(probe.weight_for(count) <= largest);
    CHECK(probe.weight_for(count) > 0);
  }
}

TEST_CASE("budget_tracking says so when its masks cannot cross within the search", "[snl]") {
  auto opts = quick_options();
  opts.search_optimizer = train::mask_search_adam;  // l1_mix needs ~17 epochs of 6 steps
  auto net = tiny_conv(22, 4, 0.0);
  const auto method = pipeline(relax::l1_mix{}, schedule::budget_tracking{.epochs = 4},
                               select::magnitude{}, finetune::distill{.epochs = 0});
  expect_error([&] { (void)run(method, net, net->copy(), tiny_data(), budget(50), opts); },
               "epochs to cross the relaxation's boundary");
}

TEST_CASE("SNL's own schedule end to end: lasso_growth raises the weight until the count is "
          "within the budget", "[snl]") {
  auto net = tiny_conv(21, 4, 0.0);
  const auto snl = pipeline(relax::l1_mix{},
                            schedule::lasso_growth{.lambda0 = 2e-3, .factor = 1.5, .grow_from_epoch = 1,
                                                   .epoch_cap = 60},
                            select::magnitude{.enforce_budget = false}, finetune::distill{.epochs = 0});
  const auto r = run(snl, net, net->copy(), tiny_data(), budget(60), quick_options());
  CHECK(r.relu_count <= 60);
  CHECK(r.stages[0].search_epochs < 60);  // stopped by the budget, not the cap
  double first_weight = 0, last_weight = 0;
  for (const auto& h : r.history)
    if (h.phase == "search") {
      if (first_weight == 0) first_weight = h.penalty_weight;
      last_weight = h.penalty_weight;
    }
  CHECK(last_weight > first_weight);  // it grew: the count did not fall by itself
}

TEST_CASE("run() killed in the middle of its search resumes to the same mask and weights", "[snl]") {
  int calls = 0;
  const auto method = [&](int kill_at) {
    return pipeline(relax::l1_mix{},
                    linearize::testing::killed_at_step<schedule::budget_tracking>{tracking, &calls, kill_at},
                    select::magnitude{}, finetune::distill{.epochs = 1});
  };
  (void)linearize::testing::run_killed_and_resumed(method, 9, calls, tiny_data(), 50, "snl");
}
