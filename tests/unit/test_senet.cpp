// SENet (select::senet): the allocator on constructed sensitivity tables, the per-slot choice of
// the largest differences, the difference a linearized entry shows against its teacher, the
// sensitivity measurement on a trained network, and whole runs: alone, behind a relaxation, and
// followed by coordinate descent.
#include "killed_run.hpp"
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/pipeline/run.hpp>
#include <linearize/relax/autorep.hpp>
#include <linearize/schedule/density_hinge.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/select/coordinate_block.hpp>
#include <linearize/select/random.hpp>
#include <linearize/select/senet.hpp>
#include <linearize/select/sensitivity.hpp>

#include <cmath>
#include <initializer_list>
#include <numeric>
#include <vector>

using namespace linearize;
using linearize::testing::expect_error;
using linearize::testing::finetune_calls;
using linearize::testing::throwing_finetune;
using linearize::testing::quick_options;
using linearize::testing::stripes;
using linearize::testing::tiny_conv;
using select::allocate_entries;
using select::sensitivity_curve;

namespace {

run_data tiny_data() {
  return {.train = stripes(192, 1), .held_out = stripes(64, 2), .test = stripes(96, 3)};
}

/// Two slots (4x6x6 each, 288 ReLUs): conv, BatchNorm, slot, twice, then a head.
struct TwoSlotImpl : NetworkImpl {
  explicit TwoSlotImpl(granularity first = granularity::element) : first_grain(first) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(4));
    relu1 = register_module("relu1", ReluSlot(slot_options{.grain = first, .shape = {4, 6, 6}}));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3).padding(1)));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(4));
    relu2 = register_module("relu2", ReluSlot(slot_options{.shape = {4, 6, 6}}));
    head = register_module("head", torch::nn::Linear(4 * 36, 3));
  }
  torch::Tensor forward(torch::Tensor x) override {
    return head(relu2(bn2(conv2(relu1(bn1(conv1(x)))))).flatten(1));
  }
  std::shared_ptr<NetworkImpl> copy() const override {
    auto out = std::make_shared<TwoSlotImpl>(first_grain);
    copy_state(*this, *out);
    return out;
  }
  std::string describe() const override { return "two_slot"; }
  granularity first_grain;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  ReluSlot relu1{nullptr}, relu2{nullptr};
  torch::nn::Linear head{nullptr};
};

template <class Net>
std::shared_ptr<Net> trained(std::shared_ptr<Net> net, uint64_t seed) {
  train::options o;
  o.epochs = 4;
  o.batch_size = 32;
  o.optimizer = train::sgd{.lr = 0.05, .momentum = 0.9};
  o.progress.mode = train::progress_mode::silent;
  o.seed = seed;
  (void)train::fit(*net, stripes(192, 1), o);
  return net;
}

std::shared_ptr<TwoSlotImpl> two_slot(uint64_t seed, granularity first = granularity::element) {
  torch::manual_seed(seed);
  auto net = trained(std::make_shared<TwoSlotImpl>(first), seed);
  const MaskSet masks(*net);
  masks.harden(torch::ones({masks.entries()}, torch::kBool));  // training moved the masks off 1
  return net;
}

std::vector<int64_t> ints(std::initializer_list<int64_t> v) { return v; }

int64_t relus(const std::vector<sensitivity_curve>& curves, const std::vector<int64_t>& entries) {
  int64_t n = 0;
  for (size_t i = 0; i < curves.size(); ++i) n += entries[i] * curves[i].relus_per_entry;
  return n;
}

/// A small SENet for the stripes data.
select::senet small_senet(int64_t epochs = 2) {
  return {.epochs = epochs, .batches = 2, .batch_size = 32, .sensitivity_images = 64};
}

}  // namespace

TEST_CASE("senet allocation: sums to the budget and favours the more sensitive slot", "[senet]") {
  // Slot 0 loses 5 with none of its 100 ReLUs, slot 1 only 1: per ReLU, slot 0's first half
  // is worth 0.08, its second 0.02, slot 1's halves 0.01 each.
  const std::vector<sensitivity_curve> table = {{.kept = {0, 50, 100}, .loss = {5, 1, 0}},
                                                {.kept = {0, 50, 100}, .loss = {1, 0.5, 0}}};
  CHECK(allocate_entries(table, 0) == ints({0, 0}));
  CHECK(allocate_entries(table, 30) == ints({30, 0}));
  CHECK(allocate_entries(table, 100) == ints({100, 0}));
  CHECK(allocate_entries(table, 150) == ints({100, 50}));
  CHECK(allocate_entries(table, 200) == ints({100, 100}));
  CHECK(allocate_entries(table, 1000) == ints({100, 100}));  // all there is
  for (int64_t b = 0; b <= 220; b += 7) {
    const auto a = allocate_entries(table, b);
    INFO("budget " << b);
    CHECK(relus(table, a) == std::min<int64_t>(b, 200));
    CHECK(a[0] >= a[1]);
  }
  // Swapped order: the sensitive slot still comes first.
  const std::vector<sensitivity_curve> swapped = {table[1], table[0]};
  CHECK(allocate_entries(swapped, 100) == ints({0, 100}));
}

TEST_CASE("senet allocation: greedy on the lower convex hull, not segment by segment", "[senet]") {
  // Slot 0 gains little from its first 50 ReLUs and much from the next 50 (0.05 per ReLU over
  // its hull); slot 1 gains 0.03 per ReLU. Segment-wise greedy would give slot 1 the budget.
  const std::vector<sensitivity_curve> table = {{.kept = {0, 50, 100}, .loss = {5, 4.9, 0}},
                                                {.kept = {0, 100}, .loss = {3, 0}}};
  CHECK(allocate_entries(table, 100) == ints({100, 0}));
  CHECK(allocate_entries(table, 130) == ints({100, 30}));
  // Loss rising with more ReLUs (noise) still fills the budget: the allocation is exact.
  const std::vector<sensitivity_curve> noisy = {{.kept = {0, 10, 20}, .loss = {1, 1.5, 2}},
                                                {.kept = {0, 10}, .loss = {0, 0.1}}};
  CHECK(relus(noisy, allocate_entries(noisy, 25)) == 25);
}

TEST_CASE("senet allocation with coarse entries: within the budget, no entry that fits left out",
          "[senet]") {
  // Slot 0: 4 channels of 36 ReLUs; slot 1: 50 elements.
  const std::vector<sensitivity_curve> table = {
      {.relus_per_entry = 36, .kept = {0, 1, 2, 4}, .loss = {4, 2, 1, 0}},
      {.relus_per_entry = 1, .kept = {0, 12, 25, 50}, .loss = {1, 0.8, 0.5, 0}}};
  for (int64_t b : {0, 10, 35, 36, 40, 71, 72, 100, 150, 193, 194, 500}) {
    const auto a = allocate_entries(table, b);
    INFO("budget " << b);
    const int64_t used = relus(table, a);
    CHECK(used <= b);
    CHECK(a[0] <= 4);
    CHECK(a[1] <= 50);
    const int64_t left = b - used;
    CHECK_FALSE((a[0] < 4 && left >= 36));
    CHECK_FALSE((a[1] < 50 && left >= 1));
  }
  // 72 ReLUs: two channels of the sensitive slot (0.056 and 0.028 per ReLU) before any element
  // of slot 1 (0.017 at most).
  CHECK(allocate_entries(table, 72) == ints({2, 0}));
}

TEST_CASE("senet allocation: bad tables and budgets are errors naming the value", "[senet]") {
  expect_error([] { (void)allocate_entries({{.kept = {0, 10}, .loss = {1, 0}}}, -1); }, "budget -1");
  expect_error([] { (void)allocate_entries({{.kept = {5, 10}, .loss = {1, 0}}}, 3); }, "the first count 0");
  expect_error([] { (void)allocate_entries({{.kept = {0, 10, 10}, .loss = {1, 0, 0}}}, 3); },
               "strictly ascending");
  expect_error([] { (void)allocate_entries({{.kept = {0, 10}, .loss = {NAN, 0}}}, 3); }, "finite");
  expect_error([] { select::senet{.epochs = -1}.validate(); }, "epochs -1");
  expect_error([] { select::senet{.batches = 0}.validate(); }, "batches 0");
  expect_error([] { select::senet{.fractions = {0.5}}.validate(); }, "fractions start at 0.5");
  expect_error([] { select::senet{.fractions = {0, 1.0}}.validate(); }, "fraction 1");
  expect_error([] { select::senet{.fractions = {0, 0.5, 0.25}}.validate(); }, "fraction 0.25");
  expect_error([] { select::senet{.temperature = 0}.validate(); }, "temperature 0");
}

TEST_CASE("senet: each slot keeps exactly its count of the candidates with the largest scores",
          "[senet]") {
  // Slot 0: entries 0..4; slot 1: entries 5..8. Entry 1 scores highest but is no candidate.
  const auto score = torch::tensor({0.3, 9.0, 0.7, 0.1, 0.7, 2.0, 1.0, 3.0, 0.5}, torch::kDouble);
  const auto candidates = torch::tensor({1, 0, 1, 1, 1, 1, 1, 1, 1}, torch::kLong).to(torch::kBool);
  const std::vector<int64_t> offsets = {0, 5, 9};
  const auto kept = select::keep_largest(score, candidates, offsets, {2, 1});
  // Slot 0: entries 2 and 4 (0.7 each; 1 is no candidate); slot 1: entry 7 (3.0).
  const auto expected = torch::tensor({0, 0, 1, 0, 1, 0, 0, 1, 0}, torch::kLong).to(torch::kBool);
  CHECK(torch::equal(kept, expected));
  // Ties go to the lower index: one of the two 0.7s.
  const auto one = select::keep_largest(score, candidates, offsets, {1, 0});
  CHECK(torch::equal(one, torch::tensor({0, 0, 1, 0, 0, 0, 0, 0, 0}, torch::kLong).to(torch::kBool)));
  expect_error([&] { (void)select::keep_largest(score, candidates, offsets, {5, 0}); },
               "slot 0 asked to keep 5 entries; expected 0 to its 4 candidates");
}

TEST_CASE("senet: the difference of a linearized entry is what its ReLU would have changed",
          "[senet]") {
  // The student is the teacher with some entries linearized: where kept, its slot output is the
  // teacher's (difference 0); where linearized, x instead of relu(x): the sum of relu(-x).
  auto teacher = trained(tiny_conv(21, 4, 0.0), 21);
  MaskSet(*teacher).harden(torch::ones({144}, torch::kBool));  // training moved the mask off 1
  auto student_ptr = teacher->copy();
  const MaskSet masks(*student_ptr);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const auto mask = torch::randperm(144, gen, torch::kLong).lt(72);
  masks.harden(mask);
  const auto data = stripes(40, 7);

  // Every image (the draw is a permutation of all 40), in eval mode: x = bn(conv(image)).
  torch::Tensor relu_loss;
  {
    torch::NoGradGuard no_grad;
    teacher->eval();
    const auto x = data::make_batch(data.images, data.mean, data.stdev, data::augmentation{}, 0);
    const auto pre = teacher->bn(teacher->conv(x));
    relu_loss = (-pre).clamp_min(0).sum(0).reshape({-1}).to(torch::kDouble);
    teacher->train();
  }
  int64_t images = 0;
  const Network teacher_net = teacher;
  const auto out = select::accumulate_difference(*student_ptr, teacher_net, data, 4, 16, 9,
                                                 select::feature_difference::output, images);
  CHECK(images == 40);
  CHECK(relu_loss.gt(0).logical_and(mask.logical_not()).any().item<bool>());  // not all zero
  CHECK(testing::close(out, relu_loss * mask.logical_not().to(torch::kDouble), 1e-4, 1e-4));
  // Compared with the linearized output, kept entries show what linearizing them would change.
  images = 0;
  const auto lin = select::accumulate_difference(*student_ptr, teacher_net, data, 4, 16, 9,
                                                 select::feature_difference::linearized, images);
  CHECK(testing::close(lin, relu_loss, 1e-4, 1e-4));
  // Hence the selection: with 40 of 144 to keep, the linearized entries with the largest loss.
  const auto kept = select::keep_largest(out, torch::ones({144}, torch::kBool), {0, 144}, {40});
  CHECK(kept.sum().item<int64_t>() == 40);
  CHECK_FALSE(kept.logical_and(mask).logical_and(out.gt(0).logical_not()).any().item<bool>());
}

TEST_CASE("senet sensitivity: curves at the given fractions, a loss that falls as ReLUs come back",
          "[senet]") {
  auto teacher = two_slot(31);
  auto net = teacher->copy();
  const MaskSet masks(*net);
  const auto candidates = torch::ones({masks.entries()}, torch::kBool);
  const auto m = select::measure_sensitivity(*net, teacher, stripes(64, 2), candidates,
                                             {.images = 64, .batch_size = 32, .seed = 3});
  REQUIRE(m.curves.size() == 2);
  CHECK(m.full_loss < 1e-6);  // the student is the teacher
  for (const auto& c : m.curves) {
    CHECK(c.kept == ints({0, 36, 72, 144}));
    REQUIRE(c.loss.size() == 4);
    CHECK(c.loss[0] > c.loss[3] + 1e-3);  // removing every ReLU of a slot costs something
    CHECK(c.loss[3] == m.full_loss);
  }
  CHECK(m.images_forwarded == 64 * (1 + 2 * 3));
  CHECK(masks.relu_count() == 288);  // the mask as it was
  CHECK(m.importance.numel() == 288);
  // Fewer candidates: the curve ends at the slot's candidates.
  auto fewer = candidates.clone();
  fewer.slice(0, 0, 100).fill_(false);
  const auto f = select::measure_sensitivity(*net, teacher, stripes(64, 2), fewer,
                                             {.images = 64, .batch_size = 32, .seed = 3});
  CHECK(f.curves[0].kept == ints({0, 11, 22, 44}));
  CHECK(f.curves[1].kept == ints({0, 36, 72, 144}));
}

TEST_CASE("senet alone: the budget exactly, the allocation in the report, finite accuracy", "[senet]") {
  auto teacher = two_slot(41);
  for (int64_t b : {1, 60, 200}) {
    auto net = teacher->copy();
    const auto r = run(pipeline(small_senet(), finetune::distill{.epochs = 1}), net, teacher, tiny_data(),
                       budget(b), quick_options());
    INFO("budget " << b);
    CHECK(r.relu_count == b);
    CHECK(std::isfinite(r.stages[0].test_accuracy_finetuned));
    const auto& rep = select::senet_report::of(r.stages[0]);
    CHECK(std::accumulate(rep.allocated.begin(), rep.allocated.end(), int64_t{0}) == b);
    CHECK(rep.changed.size() == 2);
    CHECK(rep.sensitivity_images == 64 * (1 + 2 * 3));
    CHECK(rep.difference_images == 2 * 2 * 32);
    CHECK(r.stages[0].images_forwarded >= rep.sensitivity_images + rep.difference_images);
    // Per slot, the mask holds what was allocated.
    const MaskSet masks(*net);
    CHECK(masks[0].relu_count() == rep.allocated[0]);
    CHECK(masks[1].relu_count() == rep.allocated[1]);
  }
  // Seeded: the same run, the same mask.
  auto a = teacher->copy(), b = teacher->copy();
  const auto ra = run(pipeline(small_senet(1), finetune::distill{.epochs = 0}), a, teacher, tiny_data(),
                      budget(100), quick_options());
  const auto rb = run(pipeline(small_senet(1), finetune::distill{.epochs = 0}), b, teacher, tiny_data(),
                      budget(100), quick_options());
  CHECK(torch::equal(ra.mask, rb.mask));
}

TEST_CASE("senet with channel masks in one slot: whole channels there, the budget exactly",
          "[senet]") {
  auto teacher = two_slot(43, granularity::channel);  // slot 0: 4 channels of 36 ReLUs
  for (int64_t b : {30, 100, 250}) {
    auto net = teacher->copy();
    const auto r = run(pipeline(small_senet(1), finetune::distill{.epochs = 0}), net, teacher, tiny_data(),
                       budget(b), quick_options());
    INFO("budget " << b);
    const MaskSet masks(*net);
    CHECK(r.relu_count == b);  // slot 1's elements fill what channels leave
    CHECK(masks[0].relu_count() % 36 == 0);
    CHECK(masks[0].relu_count() + masks[1].relu_count() == b);
  }
}

TEST_CASE("senet: against the slot outputs as they are, every round swaps the whole kept set; "
          "against the linearized outputs the mask settles", "[senet]") {
  auto teacher = two_slot(41);
  const auto changed = [&](select::feature_difference how) {
    auto net = teacher->copy();
    auto s = small_senet(4);
    s.difference = how;
    const auto r = run(pipeline(s, finetune::distill{.epochs = 0}), net, teacher, tiny_data(), budget(60),
                       quick_options());
    return select::senet_report::of(r.stages[0]).changed;
  };
  CHECK(changed(select::feature_difference::output) == std::vector<int64_t>(4, 120));
  const auto settled = changed(select::feature_difference::linearized);
  REQUIRE(settled.size() == 4);
  for (size_t k = 1; k < settled.size(); ++k) CHECK(settled[k] <= 60);
}

TEST_CASE("senet behind a relaxation (AutoReP's polynomials) and before coordinate descent", "[senet]") {
  auto teacher = two_slot(51);
  {
    auto net = teacher->copy();
    // The default difference (linearized) goes through the slots' polynomials.
    const auto method = pipeline(relax::autorep{}, schedule::density_hinge{.epochs = 2}, small_senet(),
                                 finetune::distill{.epochs = 1});
    const auto r = run(method, net, teacher, tiny_data(), budget(80), quick_options());
    CHECK(r.relu_count <= 80);
    CHECK(std::isfinite(r.stages[0].test_accuracy_finetuned));
    const auto& rep = select::senet_report::of(r.stages[0]);
    // Within what the relaxation kept.
    CHECK(std::accumulate(rep.candidates.begin(), rep.candidates.end(), int64_t{0}) >= r.relu_count);
  }
  {
    auto net = teacher->copy();
    const auto senet = pipeline(small_senet(), finetune::distill{.epochs = 1});
    const auto bcd = pipeline(select::coordinate_block{.tries = 3, .adt = 0.5, .gradient_samples = 64},
                              schedule::fixed_step{.drc = 10}, finetune::distill{.epochs = 0});
    auto opts = quick_options();
    opts.stage_budgets = {budget(100)};
    const auto r = run(senet | bcd, net, teacher, tiny_data(), budget(60), opts);
    REQUIRE(r.stages.size() == 2);
    CHECK(r.stages[0].relu_count == 100);
    CHECK(r.stages[1].relu_count_before == 100);
    CHECK(r.relu_count <= 60);
    CHECK(r.relu_count > 50);
    CHECK(std::isfinite(r.stages[1].test_accuracy_finetuned));
  }
}

TEST_CASE("senet: a run killed between rounds resumes to the same mask and weights; settings are "
          "recorded", "[senet]") {
  auto teacher = two_slot(61);
  const auto method = [](int kill) { return pipeline(small_senet(3), throwing_finetune{.throw_on_call = kill}); };
  testing::temp_dir whole_dir("senet_whole"), killed_dir("senet_killed");
  auto opts = quick_options();
  opts.work_dir = whole_dir.path;
  auto whole_net = teacher->copy();
  const auto whole = run(method(-1), whole_net, teacher, tiny_data(), budget(70), opts);

  opts.work_dir = killed_dir.path;
  auto killed = teacher->copy();
  finetune_calls = 0;
  CHECK_THROWS_WITH(run(method(2), killed, teacher, tiny_data(), budget(70), opts), "killed before senet2");
  auto resumed_net = teacher->copy();
  const auto resumed = run(method(-1), resumed_net, teacher, tiny_data(), budget(70), opts);
  CHECK(torch::equal(whole.mask, resumed.mask));
  CHECK(testing::same_state(*whole_net, *resumed_net));
  CHECK(resumed.relu_count == 70);
  // Another setting in the same directory is refused, naming it.
  auto other = small_senet(3);
  other.fractions = {0, 0.5};
  auto again = teacher->copy();
  expect_error([&] { (void)run(pipeline(other, throwing_finetune{}), again, teacher, tiny_data(), budget(70), opts); },
               "fractions");
}

TEST_CASE("attention maps and their loss: unit rows, zero for the same activation, a known value",
          "[senet]") {
  // x[0]: channel means of x^2 over 2 channels at 2 positions = (1, 4) / 2 -> normalized (1, 4)/sqrt(17).
  const auto x = torch::tensor({1.0, 2.0, 1.0, 2.0}).reshape({1, 2, 1, 2});
  const auto a = train::attention_map(x);
  REQUIRE(a.sizes() == torch::IntArrayRef({1, 2}));
  CHECK(a[0][0].item<double>() == Approx(1 / std::sqrt(17.0)));
  CHECK(a[0][1].item<double>() == Approx(4 / std::sqrt(17.0)));
  const auto y = torch::randn({3, 4, 5, 5});
  CHECK(train::attention_map(y).norm(2, 1).sub(1).abs().max().item<double>() < 1e-6);
  CHECK(train::attention_loss(train::attention_map(y), train::attention_map(2 * y)).item<double>() < 1e-12);
  // Against a map concentrated at position 0: mean over 2 entries of ((1-s)^2 + 4^2/17 ...).
  const auto t = torch::tensor({1.0, 0.0}).reshape({1, 2});
  const double s0 = 1 / std::sqrt(17.0), s1 = 4 / std::sqrt(17.0);
  CHECK(train::attention_loss(a, t).item<double>() == Approx(((s0 - 1) * (s0 - 1) + s1 * s1) / 2));
  expect_error([&] { (void)train::attention_loss(a, torch::zeros({1, 3})); }, "expected equal shapes");
  expect_error([] { (void)train::attention_map(torch::zeros({4})); }, "expected [batch, channels, ...]");
}

TEST_CASE("distill with attention transfer: both networks' slots seen, the student's attention "
          "moves toward the teacher's; bad settings are errors",
          "[senet]") {
  auto teacher = two_slot(43);
  const auto data = tiny_data();
  // One capture, two networks: the student's slots first, then the teacher's.
  auto student = teacher->copy();
  std::vector<size_t> seen;
  {
    const MaskSet s(*student), t(*teacher);
    slot_capture capture(s, &t, [&](size_t i, const torch::Tensor&, const torch::Tensor&) { seen.push_back(i); });
    torch::NoGradGuard no_grad;
    (void)student->forward(data.test.images.slice(0, 0, 4).to(torch::kFloat) / 255);
    (void)teacher->forward(data.test.images.slice(0, 0, 4).to(torch::kFloat) / 255);
    expect_error([&] { slot_capture again(s, &s, [](size_t, const torch::Tensor&, const torch::Tensor&) {}); },
                 "nested capture");
  }
  CHECK(seen == std::vector<size_t>{0, 1, 2, 3});
  {
    const MaskSet s(*student);
    expect_error([&] { slot_capture twice(s, &s, [](size_t, const torch::Tensor&, const torch::Tensor&) {}); },
                 "is in both networks");
  }

  // The summed attention distance to the teacher on the test images, after a finetune from a
  // student with a third of its ReLUs at random.
  const auto distance = [&](NetworkImpl& net) {
    const MaskSet s(net), t(*teacher);
    std::vector<torch::Tensor> maps(4);
    torch::NoGradGuard no_grad;
    train::detail::mode_guard eval_s(net, false), eval_t(*teacher, false);
    const auto x = data.test.images.to(torch::kFloat).div(255).sub(0.3).div(0.3);
    {
      slot_capture capture(s, &t, [&](size_t i, const torch::Tensor&, const torch::Tensor& out) {
        maps[i] = train::attention_map(out);
      });
      (void)net.forward(x);
      (void)teacher->forward(x);
    }
    return train::attention_loss(maps[0], maps[2]).item<double>() + train::attention_loss(maps[1], maps[3]).item<double>();
  };
  const auto finetuned = [&](double beta) {
    auto net = teacher->copy();
    const auto r = run(pipeline(select::random{}, finetune::distill{.epochs = 3, .attention_weight = beta}), net,
                       teacher, data, budget(96), quick_options());
    CHECK(r.relu_count == 96);
    return std::make_pair(net, r);
  };
  const auto [plain, plain_run] = finetuned(0);
  const auto [with_at, at_run] = finetuned(1000);
  INFO("attention distance: plain " << distance(*plain) << ", with attention transfer " << distance(*with_at));
  CHECK(distance(*with_at) < 0.8 * distance(*plain));  // measured: 0.0037 against 0.0055
  // The attention term is in the training loss: the same mask, a larger loss.
  CHECK(torch::equal(plain_run.mask, at_run.mask));
  CHECK(at_run.history.front().loss > plain_run.history.front().loss);

  auto net = teacher->copy();
  expect_error([&] {
    (void)run(pipeline(select::random{}, finetune::distill{.epochs = 1, .kd_weight = 0, .attention_weight = 1}), net,
              teacher, data, budget(96), quick_options());
  }, "distill: attention_weight 1 needs a teacher and kd_weight > 0 (kd_weight is 0)");
  net = teacher->copy();
  expect_error([&] {
    (void)run(pipeline(select::random{}, finetune::distill{.epochs = 1, .attention_weight = -1}), net, teacher,
              data, budget(96), quick_options());
  }, "distill: attention_weight -1 must be finite and not negative");
}
