// DeepReDuce: the planner's counts on ResNet18 with a stem ReLU (no forward pass needed: slots
// know their shapes), its budget guarantee and errors, reshaping through the model factory, and
// the whole method (criticality, plan, steps with distillation) on a tiny staged network.
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/models/resnet18_in.hpp>
#include <linearize/pipeline/run.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/select/deepreduce_reshape.hpp>
#include <linearize/select/stage_criticality.hpp>

#include <cmath>
#include <set>

using namespace linearize;
using linearize::testing::expect_error;
using linearize::testing::stripes;

namespace {

// The ranking DeepReDuce reports for ResNet18: stem and stage 1 go first, then stage 4.
const std::vector<std::string> paper_ranking{"stem", "layer1", "layer4", "layer2", "layer3"};

const std::vector<relu_tally>& resnet18_stem_slots() {
  static const auto slots = MaskSet(*models::resnet18_in({.stem_relu = true})).per_slot();
  return slots;
}

std::vector<int64_t> step_counts(const select::deepreduce_plan& plan) {
  std::vector<int64_t> out;
  for (const auto& s : plan.steps) out.push_back(s.relu_count);
  return out;
}

int64_t stage_active(const MaskSet& masks, const std::string& stage) {
  for (const auto& s : masks.per_stage())
    if (s.name == stage) return s.active;
  return -1;
}

// Three stages on 1x6x6 inputs: a one-slot stem (144 ReLUs), stage "a" of two 4x6x6 slots (288)
// and stage "b" of two 8x3x3 slots (144): 576 in all.
struct StagedNetImpl : NetworkImpl {
  StagedNetImpl() {
    const auto conv = [](int64_t in, int64_t out, int64_t stride) {
      return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
    };
    const auto slot = [](std::vector<int64_t> shape, const std::string& stage, int layer) {
      return ReluSlot(slot_options{.shape = std::move(shape), .stage = stage, .layer = layer});
    };
    c0 = register_module("c0", conv(1, 4, 1));
    b0 = register_module("b0", torch::nn::BatchNorm2d(4));
    s0 = register_module("s0", slot({4, 6, 6}, "stem", 0));
    c1 = register_module("c1", conv(4, 4, 1));
    b1 = register_module("b1", torch::nn::BatchNorm2d(4));
    s1 = register_module("s1", slot({4, 6, 6}, "a", 0));
    c2 = register_module("c2", conv(4, 4, 1));
    b2 = register_module("b2", torch::nn::BatchNorm2d(4));
    s2 = register_module("s2", slot({4, 6, 6}, "a", 1));
    c3 = register_module("c3", conv(4, 8, 2));
    b3 = register_module("b3", torch::nn::BatchNorm2d(8));
    s3 = register_module("s3", slot({8, 3, 3}, "b", 0));
    c4 = register_module("c4", conv(8, 8, 1));
    b4 = register_module("b4", torch::nn::BatchNorm2d(8));
    s4 = register_module("s4", slot({8, 3, 3}, "b", 1));
    head = register_module("head", torch::nn::Linear(72, 3));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = s0(b0(c0(x)));
    x = s1(b1(c1(x)));
    x = s2(b2(c2(x)) + x);
    x = s3(b3(c3(x)));
    x = s4(b4(c4(x)) + x);
    return head(x.flatten(1));
  }
  std::shared_ptr<NetworkImpl> copy() const override {
    auto out = std::make_shared<StagedNetImpl>();
    copy_state(*this, *out);
    out->train(is_training());
    return out;
  }
  std::string describe() const override { return "staged_net"; }
  torch::nn::Conv2d c0{nullptr}, c1{nullptr}, c2{nullptr}, c3{nullptr}, c4{nullptr};
  torch::nn::BatchNorm2d b0{nullptr}, b1{nullptr}, b2{nullptr}, b3{nullptr}, b4{nullptr};
  ReluSlot s0{nullptr}, s1{nullptr}, s2{nullptr}, s3{nullptr}, s4{nullptr};
  torch::nn::Linear head{nullptr};
};

std::shared_ptr<StagedNetImpl> staged_net(uint64_t seed) {
  torch::manual_seed(seed);
  return std::make_shared<StagedNetImpl>();
}

run_data tiny_data() {
  return {.train = stripes(192, 1), .held_out = stripes(48, 2), .test = stripes(96, 3)};
}

run_options quiet() {
  run_options o;
  o.batch_size = 32;
  o.augment = data::augmentation{};
  o.progress.mode = train::progress_mode::silent;
  return o;
}

}  // namespace

TEST_CASE("DeepReDuce counts on ResNet18 with a stem ReLU: the paper's steps", "[deepreduce]") {
  const auto& slots = resnet18_stem_slots();
  const auto net = models::resnet18_in({.stem_relu = true});
  const MaskSet masks(*net);
  CHECK(masks.total_relus() == 557'056);
  CHECK(select::fewest_reachable(slots, {}) == 16'384 + 32'768);  // layer4 and layer3 thinned
  CHECK(select::fewest_planned(slots, paper_ranking, {}) == 98'304);
  CHECK(select::fewest_planned(slots, paper_ranking, {.keep_stages = 1}) == 32'768);

  SECTION("stem and stage 1 culled: 229,376") {
    const auto plan = select::plan_deepreduce(slots, paper_ranking, 229'376);
    CHECK(plan.start_count == 557'056);
    CHECK(plan.relu_count == 229'376);
    CHECK(plan.culled == std::vector<std::string>{"stem", "layer1"});
    CHECK(plan.thinned.empty());
    CHECK(step_counts(plan) == std::vector<int64_t>{491'520, 229'376});
    // The scheduler's grouping: both culls in one step.
    const auto one = select::plan_deepreduce(slots, paper_ranking, 229'376, {.cull_per_step = 0});
    CHECK(step_counts(one) == std::vector<int64_t>{229'376});
    CHECK(one.steps[0].stages == std::vector<std::string>{"stem", "layer1"});
  }
  SECTION("stage 4 culled too: 196,608") {
    const auto plan = select::plan_deepreduce(slots, paper_ranking, 196'608);
    CHECK(plan.culled == std::vector<std::string>{"stem", "layer1", "layer4"});
    CHECK(step_counts(plan) == std::vector<int64_t>{491'520, 229'376, 196'608});
  }
  SECTION("each thinned: 114,688 and 98,304") {
    const auto a = select::plan_deepreduce(slots, paper_ranking, 114'688);
    CHECK(a.culled == std::vector<std::string>{"stem", "layer1"});
    CHECK(a.thinned == std::vector<std::string>{"layer4", "layer2", "layer3"});
    CHECK(step_counts(a) == std::vector<int64_t>{491'520, 229'376, 114'688});
    CHECK(a.steps.back().kind == select::step_kind::thin);
    const auto b = select::plan_deepreduce(slots, paper_ranking, 98'304);
    CHECK(b.culled == std::vector<std::string>{"stem", "layer1", "layer4"});
    CHECK(b.thinned == std::vector<std::string>{"layer2", "layer3"});
    CHECK(step_counts(b) == std::vector<int64_t>{491'520, 229'376, 196'608, 98'304});
    // Thinning one stage per step shows each stage's half.
    const auto fine = select::plan_deepreduce(slots, paper_ranking, 98'304, {.thin_per_step = 1});
    CHECK(step_counts(fine) == std::vector<int64_t>{491'520, 229'376, 196'608, 131'072, 98'304});
  }
  SECTION("the masks give the planned counts; thinning keeps relu1 or relu2 of each block") {
    const auto plan = select::plan_deepreduce(slots, paper_ranking, 98'304);
    for (size_t i = 0; i <= plan.steps.size(); ++i) {
      const auto mask = select::plan_mask(masks, plan, i);
      const auto kept = (mask.to(torch::kLong) * masks.relus_per_entry()).sum().item<int64_t>();
      CHECK(kept == (i == 0 ? 557'056 : plan.steps[i - 1].relu_count));
    }
    masks.harden(select::plan_mask(masks, plan, plan.steps.size()));
    CHECK(masks.relu_count() == 98'304);
    CHECK(stage_active(masks, "stem") == 0);
    CHECK(stage_active(masks, "layer1") == 0);
    CHECK(stage_active(masks, "layer4") == 0);
    CHECK(stage_active(masks, "layer2") == 65'536);
    CHECK(stage_active(masks, "layer3") == 32'768);
    CHECK(net->layers[1]->named_modules()["0.relu1"]->as<ReluSlot>()->relu_count() == 32'768);
    CHECK(net->layers[1]->named_modules()["0.relu2"]->as<ReluSlot>()->relu_count() == 0);
    CHECK(net->layers[1]->named_modules()["1.relu1"]->as<ReluSlot>()->relu_count() == 32'768);

    const auto odd = select::plan_deepreduce(slots, paper_ranking, 98'304, {.thin = select::thinning::keep_odd});
    CHECK(odd.relu_count == 98'304);
    const auto fresh = models::resnet18_in({.stem_relu = true});
    const MaskSet other(*fresh);
    other.harden(select::plan_mask(other, odd, odd.steps.size()));
    CHECK(other.relu_count() == 98'304);
    CHECK(fresh->layers[1]->named_modules()["0.relu1"]->as<ReluSlot>()->relu_count() == 0);
    CHECK(fresh->layers[1]->named_modules()["0.relu2"]->as<ReluSlot>()->relu_count() == 32'768);
  }
  SECTION("the plan is reported before it runs") {
    const auto text = select::plan_deepreduce(slots, paper_ranking, 98'304).describe();
    INFO(text);
    CHECK(text.find("557,056 -> 98,304 ReLUs (budget 98,304)") != std::string::npos);
    CHECK(text.find("1. cull stem") != std::string::npos);
    CHECK(text.find("4. thin layer2, layer3 (keep even slots)") != std::string::npos);
  }
}

TEST_CASE("DeepReDuce planner: most ReLUs within the budget, never over it", "[deepreduce]") {
  const auto& slots = resnet18_stem_slots();
  // Partial thinning: stem + layer1 culled, layer4 and layer2 thinned.
  CHECK(select::plan_deepreduce(slots, paper_ranking, 150'000).relu_count == 147'456);
  CHECK(select::plan_deepreduce(slots, paper_ranking, 150'000, {.partial_thinning = false}).relu_count == 114'688);
  CHECK(select::plan_deepreduce(slots, paper_ranking, 557'056).steps.empty());
  CHECK(select::plan_deepreduce(slots, paper_ranking, 500'000).culled == std::vector<std::string>{"stem"});

  const auto reshapes = select::reshape_options("resnet18_in", {.width = 64, .stem_relu = true}, {64, 32}, {32, 16});
  REQUIRE(reshapes.size() == 3);
  const select::plan_settings with_reshape{.allow_reshape = true, .reshapes = reshapes};
  std::set<int64_t> budgets{1, 12'287, 12'288, 49'152, 57'344, 98'303, 98'304, 114'688, 196'608, 229'376, 557'056};
  for (double b = 1000; b < 557'056; b *= 1.07) budgets.insert(static_cast<int64_t>(b));
  int planned = 0, reshaped = 0, refused = 0;
  for (const int64_t budget : budgets) {
    for (const bool allow : {false, true}) {
      INFO("budget " << budget << (allow ? " with" : " without") << " reshaping");
      try {
        const auto plan = select::plan_deepreduce(slots, paper_ranking, budget,
                                                  allow ? with_reshape : select::plan_settings{});
        ++planned;
        CHECK(plan.relu_count <= budget);
        int64_t previous = plan.start_count;
        for (const auto& step : plan.steps) {
          CHECK(step.relu_count < previous);
          previous = step.relu_count;
        }
        CHECK(previous == plan.relu_count);
        if (plan.reshape) {
          ++reshaped;
          CHECK(allow);
          CHECK(budget < 98'304);
          CHECK(plan.steps.back().kind == select::step_kind::reshape);
        } else {
          CHECK(budget >= 98'304);
        }
      } catch (const linearize::error&) {
        ++refused;
        CHECK(budget < (allow ? 12'288 : 98'304));
      }
    }
  }
  CHECK(planned > 0);
  CHECK(reshaped > 0);
  CHECK(refused > 0);
}

TEST_CASE("DeepReDuce planner: budgets the steps cannot reach and bad rankings are errors", "[deepreduce]") {
  const auto& slots = resnet18_stem_slots();
  expect_error([&] { (void)select::plan_deepreduce(slots, paper_ranking, 98'303); },
               "budget of 98,303 ReLUs is below 98,304, the fewest that culling and thinning reach");
  expect_error([&] { (void)select::plan_deepreduce(slots, paper_ranking, 50'000); }, "reshaping is disabled");
  expect_error([&] { (void)select::plan_deepreduce(slots, paper_ranking, 50'000, {.allow_reshape = true}); },
               "no reshape options were given");
  const auto reshapes = select::reshape_options("resnet18_in", {.width = 64, .stem_relu = true}, {32}, {16});
  expect_error([&] {
    (void)select::plan_deepreduce(slots, paper_ranking, 10'000, {.allow_reshape = true, .reshapes = reshapes});
  }, "even with reshaping the fewest is 12,288 (width 32, size 16)");
  expect_error([&] { (void)select::plan_deepreduce(slots, {"stem", "layer1", "layer4", "layer2"}, 200'000); },
               "ranking lacks stage 'layer3'");
  expect_error([&] { (void)select::plan_deepreduce(slots, {"stem", "layer1", "layer4", "layer2", "layer5"}, 200'000); },
               "ranking names stage 'layer5', which the network does not have");
  expect_error([&] { (void)select::plan_deepreduce(slots, {"stem", "layer1", "layer1", "layer2", "layer3"}, 200'000); },
               "more than once");
  expect_error([&] { (void)select::plan_deepreduce(slots, paper_ranking, 0); }, "budget of 0 ReLUs");
  // Keeping one stage reaches further.
  CHECK(select::plan_deepreduce(slots, paper_ranking, 50'000, {.keep_stages = 1}).relu_count == 32'768);
}

TEST_CASE("DeepReDuce reshaping: exact counts from the factory, the paper's reshaped points", "[deepreduce]") {
  const auto& slots = resnet18_stem_slots();
  const models::model_spec base{.width = 64, .stem_relu = true};
  const auto options = select::reshape_options("resnet18_in", base, {32}, {32, 16});
  REQUIRE(options.size() == 2);
  CHECK(options[0].name == "width 32, size 32");
  CHECK(options[1].name == "width 32, size 16");
  const select::plan_settings settings{.allow_reshape = true, .reshapes = options};
  // alpha = 0.5 on the 114,688 configuration; alpha = rho = 0.5 on 98,304.
  const auto half = select::plan_deepreduce(slots, paper_ranking, 57'344, settings);
  REQUIRE(half.reshape.has_value());
  CHECK(half.reshape->name == "width 32, size 32");
  CHECK(half.relu_count == 57'344);
  CHECK(half.steps.back().describe() == "reshape to width 32, size 32");
  const auto eighth = select::plan_deepreduce(slots, paper_ranking, 12'288, settings);
  REQUIRE(eighth.reshape.has_value());
  CHECK(eighth.reshape->name == "width 32, size 16");
  CHECK(eighth.relu_count == 12'288);
  CHECK(eighth.mask_steps() == eighth.steps.size() - 1);

  const auto net = select::build_reshaped("resnet18_in", base, eighth);
  CHECK(MaskSet(*net).relu_count() == 12'288);
  CHECK(net->describe() == "resnet18_in(classes=10, channels=3, size=16, width=32, stem_relu=true)");
  expect_error([&] { (void)select::build_reshaped("resnet18_in", base, select::plan_deepreduce(slots, paper_ranking, 98'304)); },
               "the plan has no reshape step");
  // The Fashion-MNIST network of the example: width 16 on 1x28x28 holds 96,000 ReLUs.
  const auto fm = MaskSet(*models::resnet18_in({.channels = 1, .size = 28, .width = 16})).per_stage();
  REQUIRE(fm.size() == 4);
  CHECK(fm[0].total == 50'176);
  CHECK(fm[1].total == 25'088);
  CHECK(fm[2].total == 12'544);
  CHECK(fm[3].total == 8'192);
}

TEST_CASE("DeepReDuce in the pipeline: a given ranking, steps with distillation, the report", "[deepreduce]") {
  auto net = staged_net(21);
  const auto method = pipeline(select::stage_criticality{.ranking = {"stem", "a", "b"}},
                               schedule::stagewise{.step_epochs = 1}, finetune::distill{.epochs = 1});
  CHECK(method.name() == "stagewise+stage_criticality+distill");
  const auto result = run(method, net, net->copy(), tiny_data(), budget(300), quiet());
  REQUIRE(result.stages.size() == 1);
  const auto& report = select::deepreduce_report::of(result.stages[0]);
  CHECK(result.stages[0].budget_met);
  // 576 -> cull stem (432) -> thin a (288): the most ReLUs within 300.
  CHECK(result.total_relus == 576);
  CHECK(result.relu_count == 288);
  REQUIRE(report.steps.size() == 2);
  CHECK(report.steps[0].name == "cull stem");
  CHECK(report.steps[0].relu_count == 432);
  CHECK(report.steps[1].name == "thin a");
  CHECK(report.steps[1].relu_count == 288);
  for (const auto& step : report.steps) {
    CHECK(step.finetune_epochs == 1);
    CHECK(std::isfinite(step.test_accuracy_selected));
    CHECK(std::isfinite(step.test_accuracy_finetuned));
    CHECK(std::isfinite(step.held_out_accuracy_finetuned));
  }
  CHECK(report.plan.find("1. cull stem") != std::string::npos);
  REQUIRE(report.criticality.size() == 3);
  CHECK(report.criticality[0].name == "stem");
  CHECK(report.criticality[0].rank == 0);
  CHECK(report.criticality[1].relus == 288);
  CHECK(std::isnan(report.criticality[1].accuracy));  // given, not measured
  CHECK(net->s0->relu_count() == 0);
  CHECK(net->s1->relu_count() == 144);
  CHECK(net->s2->relu_count() == 0);
  CHECK(net->s3->relu_count() == 72);
  CHECK(net->s4->relu_count() == 72);
  int64_t step_rows = 0;
  for (const auto& row : result.history)
    if (row.phase == "step1" || row.phase == "step2") ++step_rows;
  CHECK(step_rows == 2);
  CHECK(result.stages[0].finetune_epochs == 3);  // one per step, one final
}

TEST_CASE("DeepReDuce criticality: every mode measures each stage and restores the network", "[deepreduce]") {
  const auto data = tiny_data();
  for (const auto mode : {select::criticality_mode::evaluate, select::criticality_mode::finetune,
                          select::criticality_mode::train}) {
    INFO("mode " << select::to_string(mode));
    auto net = staged_net(22);
    const auto before = net->copy();
    const auto teacher = net->copy();
    freeze(*teacher);
    const auto options = quiet();
    stage_context ctx(*net, teacher, data, options, 0, 300, finetune::distill{.epochs = 1},
                      schedule::stagewise{});
    const auto rows = select::measure_stage_criticality(ctx, {.mode = mode, .epochs = 1});
    REQUIRE(rows.size() == 3);
    std::set<size_t> ranks;
    for (const auto& row : rows) {
      CHECK(row.accuracy >= 0);
      CHECK(row.accuracy <= 1);
      CHECK(row.score == Approx(row.accuracy / static_cast<double>(row.relus)));
      ranks.insert(row.rank);
    }
    CHECK(ranks == std::set<size_t>{0, 1, 2});
    CHECK(rows[0].relus == 144);
    CHECK(rows[1].relus == 288);
    CHECK(rows[2].relus == 144);
    CHECK(ctx.spent.images_forwarded > 3 * data.held_out.size());
    CHECK(linearize::testing::same_state(*net, *before));
    CHECK(!net->s0->is_hard());
    if (mode != select::criticality_mode::evaluate) {
      int64_t rows_a = 0;
      for (const auto& h : ctx.spent.history) rows_a += h.phase == "criticality_a";
      CHECK(rows_a == 1);
    }
  }
}

TEST_CASE("DeepReDuce measured end to end: deterministic; unreachable budgets fail before training",
          "[deepreduce]") {
  const auto method = pipeline(select::stage_criticality{.mode = select::criticality_mode::evaluate},
                               schedule::stagewise{.step_epochs = 0}, finetune::distill{.epochs = 0});
  auto a = staged_net(23), b = staged_net(23);
  const auto ra = run(method, a, a->copy(), tiny_data(), budget(300), quiet());
  const auto rb = run(method, b, b->copy(), tiny_data(), budget(300), quiet());
  CHECK(torch::equal(ra.mask, rb.mask));
  CHECK(ra.relu_count <= 300);
  const auto& da = select::deepreduce_report::of(ra.stages[0]);
  const auto& db = select::deepreduce_report::of(rb.stages[0]);
  REQUIRE(da.criticality.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(da.criticality[i].rank == db.criticality[i].rank);
    CHECK(std::isfinite(da.criticality[i].accuracy));
  }
  CHECK(!da.steps.empty());

  // Two stages kept: at best stem (144, one slot) and b thinned (72): 216.
  auto c = staged_net(24);
  expect_error([&] { (void)run(method, c, c->copy(), tiny_data(), budget(200), quiet()); },
               "budget of 200 ReLUs is below 216, the fewest that culling and thinning reach");
  // The default scheduler is stagewise{}.
  auto d = staged_net(25);
  const auto plain = pipeline(select::stage_criticality{.ranking = {"a", "stem", "b"}, .keep_stages = 1},
                              finetune::distill{.epochs = 0});
  const auto rd = run(plain, d, d->copy(), tiny_data(), budget(100), quiet());
  CHECK(rd.relu_count == 72);  // a, stem culled; b thinned
  const auto& dd = select::deepreduce_report::of(rd.stages[0]);
  REQUIRE(dd.steps.size() == 3);
  CHECK(dd.steps[0].finetune_epochs == 2);
}

TEST_CASE("DeepReDuce resumes from its work directory to the same result", "[deepreduce]") {
  linearize::testing::temp_dir dir("deepreduce_resume");
  auto opts = quiet();
  opts.work_dir = dir.path;
  const auto method = pipeline(select::stage_criticality{.mode = select::criticality_mode::finetune, .epochs = 1},
                               schedule::stagewise{.step_epochs = 1}, finetune::distill{.epochs = 1});
  auto a = staged_net(26);
  const auto first = run(method, a, a->copy(), tiny_data(), budget(300), opts);
  CHECK(std::filesystem::exists(dir / "stage0_criticality_a.ckpt"));
  CHECK(std::filesystem::exists(dir / "stage0_step1.ckpt"));
  auto b = staged_net(26);
  const auto again = run(method, b, b->copy(), tiny_data(), budget(300), opts);
  CHECK(torch::equal(first.mask, again.mask));
  CHECK(linearize::testing::same_state(*a, *b));
  const auto& d_first = select::deepreduce_report::of(first.stages[0]);
  const auto& d_again = select::deepreduce_report::of(again.stages[0]);
  REQUIRE(d_again.criticality.size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK(d_again.criticality[i].accuracy == d_first.criticality[i].accuracy);
  CHECK(d_again.plan == d_first.plan);
}
