// Pipeline composition (compile-time): roles found in any order, defaults, chains; and the stock
// policies' arithmetic: relaxations, budget schedulers, selection rules.
#include "test_support.hpp"

#include <linearize/pipeline/mask_geometry.hpp>
#include <linearize/policy/budget.hpp>
#include <linearize/pipeline/chain.hpp>
#include <linearize/relax/hard_threshold.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/relax/sigmoid_mask.hpp>
#include <linearize/schedule/budget_tracking.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/schedule/lasso_growth.hpp>
#include <linearize/select/magnitude.hpp>
#include <linearize/select/top_k.hpp>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;

namespace {

// A user-written scheduler: works without touching the library.
struct linear_decay {
  using role = roles::scheduler;
  [[nodiscard]] std::string name() const { return "linear_decay"; }
  [[nodiscard]] int64_t max_epochs() const { return 7; }
  void start(scalars& s) const { s.try_emplace(penalty_weight_key, 1e-4); }
  [[nodiscard]] bool after_epoch(scalars&, const search_progress& p) const {
    return p.count <= p.budget;
  }
};

}  // namespace

// ---- composition: compile-time facts ------------------------------------------------------------
constexpr auto snl = pipeline(relax::l1_mix{}, schedule::lasso_growth{}, select::magnitude{},
                              finetune::distill{.epochs = 100, .temperature = 4});
constexpr auto shuffled = pipeline(finetune::distill{.epochs = 3}, select::top_k{}, relax::l1_mix{});
constexpr auto bcd_like = pipeline(select::top_k{}, schedule::fixed_step{.drc = 50});

static_assert(decltype(snl)::has_relaxation);
static_assert(std::is_same_v<decltype(shuffled.scheduler()), schedule::lasso_growth>,
              "absent scheduler defaults to lasso_growth when there is a relaxation");
static_assert(!decltype(bcd_like)::has_relaxation);
static_assert(std::is_same_v<decltype(bcd_like.finetune()), finetune::distill>,
              "absent finetune defaults to distill");
static_assert(bcd_like.scheduler_or(schedule::lasso_growth{}).drc == 50);
static_assert(shuffled.finetune().epochs == 3, "policies are found whatever their order");
static_assert(relaxation_policy<relax::l1_mix> && relaxation_policy<relax::sigmoid_mask> &&
              relaxation_policy<relax::hard_threshold>);
static_assert(penalty_scheduler<schedule::lasso_growth> &&
              stepwise_penalty_scheduler<schedule::budget_tracking> &&
              step_scheduler<schedule::fixed_step> && !penalty_scheduler<schedule::fixed_step>);
static_assert(penalty_scheduler<linear_decay>);
static_assert(probing_scheduler<schedule::budget_tracking> && mask_space_scheduler<schedule::budget_tracking>);
static_assert(!probing_scheduler<schedule::lasso_growth> && !probing_scheduler<linear_decay>);

constexpr auto both = snl | bcd_like;
static_assert(decltype(both)::size == 2);
static_assert(decltype(both | snl)::size == 3 && decltype(snl | both)::size == 3);

TEST_CASE("pipelines and chains describe themselves", "[pipeline]") {
  CHECK(snl.name() == "l1_mix+lasso_growth+magnitude+distill");
  CHECK(bcd_like.name() == "fixed_step+top_k+distill");
  CHECK(both.name() == "l1_mix+lasso_growth+magnitude+distill | fixed_step+top_k+distill");
  const auto custom = pipeline(relax::l1_mix{}, linear_decay{}, select::top_k{});
  CHECK(custom.name() == "l1_mix+linear_decay+top_k+distill");
}

TEST_CASE("budgets resolve to counts and reject out-of-range values", "[pipeline]") {
  CHECK(budget(15'000).resolve(491'520) == 15'000);
  CHECK(budget::fraction(0.1).resolve(491'520) == 49'152);
  CHECK(budget(491'520).resolve(491'520) == 491'520);
  expect_error([] { (void)budget(0).resolve(100); }, "budget of 0 ReLUs out of range: expected 1 to 100");
  expect_error([] { (void)budget(101).resolve(100); }, "budget of 101 ReLUs out of range");
  expect_error([] { (void)budget::fraction(1.5).resolve(100); }, "budget fraction 1.5 out of range");
  expect_error([] { (void)budget::fraction(0).resolve(100); }, "budget fraction 0 out of range");
}

TEST_CASE("budgets parse as counts, percentages and fractions", "[pipeline]") {
  CHECK(parse_budget("2880").resolve(96'000) == 2880);
  CHECK(parse_budget("3%").resolve(96'000) == 2880);
  CHECK(parse_budget("0.03").resolve(96'000) == 2880);
  CHECK(parse_budget("100%").resolve(96'000) == 96'000);
  for (const char* bad : {"", "abc", "3%%", "-5", "0", "1.5", "12x"})
    expect_error([&] { (void)parse_budget(bad); }, "not understood");
  expect_error([&] { (void)parse_budget("200%"); }, "above 100%");
  expect_error([&] { (void)parse_budget("96001").resolve(96'000); }, "expected 1 to 96000");
}

TEST_CASE("relaxations: gates, penalties, kept entries", "[pipeline][relax]") {
  auto p = torch::tensor({-0.5f, 0.005f, 0.02f, 0.7f, 1.0f});
  relax::l1_mix l1;
  CHECK(close(l1.gate(p), p));
  CHECK(close(l1.penalty(p), p.abs()));
  CHECK(torch::equal(l1.kept(p), torch::tensor({false, false, true, true, true})));

  relax::l1_mix fast{.step_scale = 10};
  const auto theta = fast.from_binary(torch::tensor({true, false}));
  CHECK(close(theta, torch::tensor({0.1f, 0.0f})));
  CHECK(close(fast.gate(theta), torch::tensor({1.0f, 0.0f})));
  CHECK(fast.kept(theta)[0].item<bool>());
  CHECK_FALSE(fast.gate_is_parameter());
  CHECK(l1.gate_is_parameter());

  relax::sigmoid_mask sg{.temperature = 0.5};
  CHECK(close(sg.gate(torch::zeros({1})), torch::full({1}, 0.5)));
  const auto st = sg.from_binary(torch::tensor({true, false}));
  CHECK(sg.kept(st)[0].item<bool>());
  CHECK_FALSE(sg.kept(st)[1].item<bool>());
  CHECK(sg.gate(st)[0].item<double>() > 0.99);

  relax::hard_threshold ht;
  auto t = torch::tensor({0.2f, 0.8f}, torch::requires_grad());
  auto g = ht.gate(t);
  CHECK(close(g, torch::tensor({0.0f, 1.0f})));
  (g * torch::tensor({3.0f, 5.0f})).sum().backward();
  CHECK(close(t.grad(), torch::tensor({3.0f, 5.0f})));  // straight-through
}

// Steps from the first crossing to the last when every mask gets the same push: under Adam each
// moves about lr per step whatever the gradient's size (relax/stagger.hpp).
static int64_t crossing_span(const relax::sigmoid_mask& r, double lr) {
  auto theta = r.from_binary(torch::ones({1000})).clone().requires_grad_(true);
  torch::optim::Adam adam({theta}, torch::optim::AdamOptions(lr));
  int64_t first = -1, last = -1;
  for (int64_t step = 0; step < 1000 && last < 0; ++step) {
    adam.zero_grad();
    r.penalty(theta).sum().backward();
    adam.step();
    const auto count = r.kept(theta.detach()).sum().item<int64_t>();
    if (count < 1000 && first < 0) first = step;
    if (count == 0) last = step;
  }
  REQUIRE(last >= 0);
  return last - first;
}

TEST_CASE("sigmoid_mask's kept masks start spread over [init, 2 init] and cross one after another",
          "[pipeline]") {
  const relax::sigmoid_mask sg;  // init 4, stagger 1
  auto binary = torch::ones({2000});
  binary.index_put_({torch::indexing::Slice(1000, 1010)}, 0);
  const auto start = sg.from_binary(binary.reshape({20, 100})).reshape({-1}).to(torch::kDouble);
  const auto kept = start.index({binary.to(torch::kBool)}), removed = start.index({binary.eq(0)});
  CHECK(start[0].item<double>() == Approx(8));  // the mask geometry's travel: the farthest start
  CHECK((removed == -4).all().item<bool>());
  CHECK((kept > 4 - 1e-6).all().item<bool>());  // every gate >= sigmoid(4) = 0.982 at the start
  CHECK((kept <= 8 + 1e-6).all().item<bool>());
  // Evenly spread: each tenth of the range holds a tenth of the entries, within 1%.
  const auto tenth = ((kept - 4) / 4 * 10).floor().clamp(0, 9).to(torch::kLong);
  const auto per_tenth = torch::bincount(tenth, {}, 10).to(torch::kDouble) / kept.numel();
  INFO("fractions per tenth: " << per_tenth);
  CHECK(((per_tenth - 0.1).abs() < 0.01).all().item<bool>());
  // Travel 4 to 8 at about 0.05 a step would put the last crossing 80 steps after the first; the
  // far masks gain on the near ones (their gradient, sigmoid', grows as they fall, and Adam's
  // step with it): 39 steps measured. All at init (stagger 0) every mask crosses in one step.
  const auto spread = crossing_span(sg, 0.05), together = crossing_span(relax::sigmoid_mask{.stagger = 0}, 0.05);
  INFO("steps from the first crossing to the last: " << spread << " spread, " << together << " together");
  CHECK(together <= 1);
  CHECK(spread >= 25);
  expect_error([] { (void)relax::sigmoid_mask{.stagger = -1}.from_binary(torch::ones({1})); }, "stagger -1");
}

TEST_CASE("lasso_growth follows SNL's rule", "[pipeline][schedule]") {
  schedule::lasso_growth s;
  scalars st;
  s.start(st);
  CHECK(st[penalty_weight_key] == Approx(1e-5));
  search_progress p{.total = 1000, .budget = 100};
  // Epochs 0..4: new minima remembered, never growth.
  for (int e = 0; e < 5; ++e) {
    p.epoch = e;
    p.count = 900 - e;
    CHECK_FALSE(s.after_epoch(st, p));
  }
  CHECK(st[penalty_weight_key] == Approx(1e-5));
  p.epoch = 5;
  p.count = 950;  // not a new minimum: lambda *= 1.1
  CHECK_FALSE(s.after_epoch(st, p));
  CHECK(st[penalty_weight_key] == Approx(1.1e-5));
  p.epoch = 6;
  p.count = 800;  // new minimum: no growth
  CHECK_FALSE(s.after_epoch(st, p));
  CHECK(st[penalty_weight_key] == Approx(1.1e-5));
  CHECK(st["best_count"] == 800);
  p.epoch = 7;
  p.count = 100;  // within budget: stop
  CHECK(s.after_epoch(st, p));
  schedule::lasso_growth capped{.epoch_cap = 3};
  scalars st2;
  capped.start(st2);
  p.count = 999;
  p.epoch = 2;
  CHECK(capped.after_epoch(st2, p));
}

TEST_CASE("budget_tracking raises the weight when behind the plan and lowers it when ahead",
          "[pipeline][schedule]") {
  schedule::budget_tracking s{.epochs = 10, .plan_fraction = 0.5};
  search_progress p{.steps_per_epoch = 100, .total = 10'000, .budget = 100, .start_count = 10'000};
  CHECK(s.target(p, 0) == Approx(10'000));
  CHECK(s.target(p, 2.5) == Approx(1'000));  // halfway on a log scale
  CHECK(s.target(p, 5) == Approx(100));
  CHECK(s.target(p, 9) == Approx(100));
  scalars st;
  s.start(st);
  const double w0 = st[penalty_weight_key];
  p.epoch = 2;
  p.step = 49;
  p.count = 5'000;  // plan says 1,000
  s.after_step(st, p);
  CHECK(st[penalty_weight_key] > w0);
  const double w1 = st[penalty_weight_key];
  p.count = 200;  // ahead of the plan
  s.after_step(st, p);
  CHECK(st[penalty_weight_key] < w1);
  CHECK(st[penalty_weight_key] <= w1 * 2);
  p.count = 100;
  CHECK(s.after_epoch(st, p));
}

TEST_CASE("budget_tracking does not wind up once the count stops responding",
          "[pipeline][schedule]") {
  // The count falls with the weight at first, then sticks at a floor far above the budget (as
  // gates jittering around the threshold do): the weight must stay within windup_limit of the
  // weight at the last new minimum, and the search ends once the plan is done and an epoch at
  // the cap brought no new minimum.
  schedule::budget_tracking s{.epochs = 4, .plan_fraction = 0.5, .lambda0 = 1e-3,
                              .check_every = 1, .max_change = 1.5, .windup_limit = 4};
  search_progress p{.steps_per_epoch = 20, .total = 10'000, .budget = 100, .start_count = 10'000};
  scalars st;
  s.start(st);
  double weight_at_floor = 0;
  bool stopped = false;
  for (p.epoch = 0; p.epoch < s.max_epochs() && !stopped; ++p.epoch) {
    for (p.step = 0; p.step < p.steps_per_epoch; ++p.step) {
      const double w = st[penalty_weight_key];
      // Responds like 10,000 * (1e-3 / w) down to a floor of 3,000.
      p.count = std::max<int64_t>(3'000, static_cast<int64_t>(10'000 * std::min(1.0, 1e-3 / w)));
      if (p.count == 3'000 && weight_at_floor == 0) weight_at_floor = w;
      s.after_step(st, p);
      if (weight_at_floor > 0) CHECK(st[penalty_weight_key] <= weight_at_floor * 4 * 1.5 + 1e-12);
    }
    stopped = s.after_epoch(st, p);
    if (stopped) CHECK(s.saturated(st, p));
  }
  REQUIRE(weight_at_floor > 0);  // the count did reach its floor
  CHECK(stopped);
  CHECK(p.epoch < s.max_epochs());  // ended by saturation, before the overtime ran out
  expect_error([] {
    scalars fresh;
    schedule::budget_tracking{.windup_limit = 1}.start(fresh);
  }, "windup_limit 1 > 1");
}

namespace {

/// A mask search with dead time, in miniature: entries whose importance spans four decades, each
/// moving `step` a step towards removal while the weight exceeds its importance and back up to
/// its start otherwise (Adam moves a mask by about its step whatever the gradient's size). The
/// count moves only once a mask has travelled from 1 to the boundary 0.01.
struct dead_time_plant {
  mask_geometry geometry{.kept_start = 1, .removed_start = 0, .boundary = 0.01};
  torch::Tensor importance, param;
  double step;
  dead_time_plant(int64_t n, double step_size)
      : importance(torch::pow(10.0, torch::linspace(-6, -2, n, torch::kDouble))),
        param(torch::ones({n}, torch::kDouble)), step(step_size) {}
  void advance(double weight) {
    param = torch::where(importance.lt(weight), param - step, (param + step).clamp_max(1.0));
  }
  [[nodiscard]] int64_t count() const { return param.gt(geometry.boundary).sum().item<int64_t>(); }
  /// What the search's probe would measure: each entry goes once the weight passes it (`off`:
  /// a probe that many times too high).
  [[nodiscard]] weight_probe probe(double off = 1) const {
    return {importance * off, torch::ones({importance.numel()}, torch::kLong), 0};
  }
};

struct plant_outcome {
  int64_t count = 0;
  double max_weight = 0;
  int64_t epochs = 0;
};

/// Drives the plant with `s` for at most its max_epochs, as mask_search.hpp drives a network,
/// holding the masks from the step the count is within the budget when `s.hold`.
plant_outcome drive(const schedule::budget_tracking& s, int64_t budget, bool probe, double probe_off = 1) {
  const int64_t n = 10'000, steps = 80;
  const double lr = 1e-3;
  const double speed = s.mask_speed({.travel = 0.99, .margin = 0.01, .lr = lr, .steps_per_epoch = steps});
  dead_time_plant plant(n, lr * speed);
  search_progress p{.steps_per_epoch = steps, .count = n, .total = n, .budget = budget,
                    .start_count = n, .mask_speed = speed,
                    .crossing_epochs = 0.99 / (lr * speed * static_cast<double>(steps))};
  const auto observe = [&] { p.count = plant.count(); };
  scalars st;
  if (probe) {
    p.step = -1;
    s.start(st, p, plant.probe(probe_off));
  } else {
    s.start(st);
  }
  plant_outcome out;
  bool held = false;
  for (p.epoch = 0; p.epoch < s.max_epochs(); ++p.epoch) {
    for (p.step = 0; p.step < steps; ++p.step) {
      if (held) continue;
      plant.advance(st[penalty_weight_key]);
      if (s.hold && plant.count() <= budget) {
        held = true;
        continue;
      }
      if ((p.step + 1) % s.check_every == 0) {
        observe();
        s.after_step(st, p);
        out.max_weight = std::max(out.max_weight, st[penalty_weight_key]);
      }
    }
    p.step = steps - 1;
    observe();
    if (s.after_epoch(st, p) || held) break;
  }
  out.count = plant.count();
  out.epochs = std::min(p.epoch + 1, s.max_epochs());
  return out;
}

}  // namespace

TEST_CASE("budget_tracking reaches the budget on a plant with dead time, without winding up",
          "[pipeline][schedule]") {
  for (const int64_t budget : {500, 2'000})
    for (const int64_t epochs : {3, 10}) {
      INFO(epochs << " planned epochs, budget " << budget);
      // The weight that keeps exactly `budget` of the 10,000 entries.
      const double needed = std::pow(10.0, -6 + 4 * static_cast<double>(10'000 - budget) / 9'999.0);
      const auto r = drive(schedule::budget_tracking{.epochs = epochs}, budget, /*probe=*/true);
      CHECK(r.count <= budget);
      CHECK(r.count >= budget / 2);
      CHECK(r.epochs <= epochs + 2);  // within the overtime
      CHECK(r.max_weight <= 4 * needed);  // no windup
    }
  // The old controller (masks at the optimizer's step, counted only at the boundary, feedback
  // from SNL's 1e-5) on the same plant: the count does not move within the plan, the weight
  // winds up meanwhile.
  const auto old = drive(schedule::budget_tracking{.epochs = 3, .lambda0 = 1e-5, .speed = 1,
                                                   .feedback_rate = 1e300},
                         500, /*probe=*/false);
  CHECK(old.max_weight > 100 * std::pow(10.0, -6 + 4 * 9'500.0 / 9'999.0));
  CHECK(old.count == 10'000);
}

TEST_CASE("budget_tracking on the dead-time plant with a probe 3x off: the hold keeps the count "
          "between half the budget and just above it", "[pipeline][schedule]") {
  // Measured: 455 and 496 held against 214 and 167 without the hold (probe 3x low with a 3-epoch
  // plan, 3x high with a 10-epoch one); a probe 3x low with a 10-epoch plan saturates at 502,
  // which the selection cuts to the budget; 3x high with 3 epochs crosses from above 500 to
  // 259 in one step (the plant's masks pushed together cross together), held or not.
  for (const double off : {1.0 / 3, 3.0})
    for (const int64_t epochs : {3, 10}) {
      const int64_t budget = 500;
      const auto held = drive(schedule::budget_tracking{.epochs = epochs}, budget, true, off);
      const auto free = drive(schedule::budget_tracking{.epochs = epochs, .hold = false}, budget, true, off);
      INFO("probe x" << off << ", " << epochs << " planned epochs: " << held.count << " held, " << free.count
                     << " without the hold");
      CHECK(held.count <= budget + budget / 100);
      CHECK(held.count >= budget / 2);
      CHECK(held.epochs <= epochs + 2);
      CHECK(free.count <= held.count);
    }
}

TEST_CASE("budget_tracking: a re-probe moves the weight by at most reprobe_rate an epoch, up only behind the plan",
          "[pipeline][schedule]") {
  const int64_t n = 10'000;
  const auto thresholds = torch::pow(10.0, torch::linspace(-6, -2, n, torch::kDouble));
  const auto probe = [&](double scale) {
    return weight_probe{thresholds * scale, torch::ones({n}, torch::kLong), 0};
  };
  const search_progress p{.epoch = 0, .step = -1, .steps_per_epoch = 80, .count = n, .total = n, .budget = 500,
                          .start_count = n, .mask_speed = 10, .crossing_epochs = 1.25};
  // At the end of the third epoch of the default 8-epoch plan the planned count is ~46% of the
  // start: a count still at the start is behind it; one at the planned count is not.
  search_progress behind = p;
  behind.epoch = 2;
  behind.step = 79;
  search_progress on_plan = behind;
  on_plan.count = static_cast<int64_t>(schedule::budget_tracking{}.target(behind, behind.epochs_done()));
  REQUIRE(on_plan.count < n / 2);
  // The weight the curve gives where the refresh looks: one crossing time past this epoch's end.
  const auto weight_after = [&](const schedule::budget_tracking& s, double scale, const search_progress& at) {
    scalars st;
    s.start(st, p, probe(1));
    const double ahead = at.epochs_done() + s.lag_epochs(at);
    const double before = s.feedforward(st, s.target(at, ahead));
    if (s.wants_probe(st, at)) s.refresh(st, at, probe(scale));
    return s.feedforward(st, s.target(at, ahead)) / before;
  };
  // Behind the plan the network asks for 10x the weight (or a tenth): the curve follows by 3x.
  CHECK(weight_after({}, 10, behind) == Approx(3).epsilon(1e-9));
  CHECK(weight_after({}, 0.1, behind) == Approx(1.0 / 3).epsilon(1e-9));
  CHECK(weight_after({}, 1.5, behind) == Approx(1.5).epsilon(1e-9));  // within the bound: as measured
  CHECK(weight_after({.reprobe_rate = 1.7}, 10, behind) == Approx(1.7).epsilon(1e-9));
  // On the plan (or ahead of it) the curve may lower the weight, never raise it.
  CHECK(weight_after({}, 10, on_plan) == Approx(1).epsilon(1e-9));
  CHECK(weight_after({}, 1.5, on_plan) == Approx(1).epsilon(1e-9));
  CHECK(weight_after({}, 0.1, on_plan) == Approx(1.0 / 3).epsilon(1e-9));
  CHECK(weight_after({.reprobe = false}, 10, behind) == 1);
  CHECK(weight_after({.lambda0 = 3e-4}, 10, behind) == 1);  // a given weight takes no probe
  expect_error([] {
    scalars fresh;
    schedule::budget_tracking{.reprobe_rate = 0.5}.start(fresh);
  }, "reprobe_rate 0.5 >= 1");
}

TEST_CASE("fixed_step: T = ceil((B_ref - B_target) / DRC)", "[pipeline][schedule]") {
  CHECK(schedule::fixed_step{.drc = 100}.steps(15'000, 7'500) == 75);
  CHECK(schedule::fixed_step{.drc = 100}.steps(15'001, 7'500) == 76);
  CHECK(schedule::fixed_step{.drc = 7}.steps(100, 100) == 0);
  expect_error([] { (void)schedule::fixed_step{.drc = 0}.steps(10, 5); }, "drc 0 must be positive");
}

TEST_CASE("selection rules: magnitude thresholds, top_k hits the budget exactly", "[pipeline][select]") {
  struct ctx_t {
    torch::Tensor scores, relus_per_entry;
    int64_t budget;
    torch::Tensor kept{};
  };
  auto scores = torch::tensor({0.3f, -1.0f, 0.9f, 0.005f, 0.9f, 0.5f});
  ctx_t ctx{scores, torch::ones({6}, torch::kLong), 3, scores.gt(0.4)};
  CHECK(torch::equal(select::magnitude{.threshold = 0.01, .enforce_budget = false}.select(ctx),
                     torch::tensor({true, false, true, false, true, true})));
  // Four kept for a budget of three: the lowest-scored kept entry (0.3) goes.
  CHECK(torch::equal(select::magnitude{.threshold = 0.01}.select(ctx),
                     torch::tensor({false, false, true, false, true, true})));
  // Without a threshold: what the relaxation counted as kept.
  CHECK(torch::equal(select::magnitude{}.select(ctx), torch::tensor({false, false, true, false, true, true})));
  auto k = select::top_k{}.select(ctx);
  CHECK(k.sum().item<int64_t>() == 3);
  CHECK(torch::equal(k, torch::tensor({false, false, true, false, true, true})));
  // Coarse entries: each entry costs its ReLUs; the largest count within the budget.
  ctx_t coarse{scores, torch::tensor({4, 4, 4, 4, 4, 4}, torch::kLong), 10, ctx.kept};
  CHECK(select::top_k{}.select(coarse).sum().item<int64_t>() == 2);
}
