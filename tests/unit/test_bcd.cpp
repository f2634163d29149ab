// Coordinate descent (select::coordinate_block + schedule::fixed_step): the sequential drop test,
// block proposals, the first-order estimate, and whole searches on a tiny network: exact
// iteration counts, blocks that never come back, finetune triggers, the reference, resume after a
// kill, chaining after SNL, errors.
#include "killed_run.hpp"
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/pipeline/run.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/schedule/budget_tracking.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/select/coordinate_block.hpp>
#include <linearize/select/magnitude.hpp>

#include <cmath>
#include <vector>

using namespace linearize;
using linearize::testing::expect_error;
using linearize::testing::finetune_calls;
using linearize::testing::throwing_finetune;
using linearize::testing::stripes;
using linearize::testing::temp_dir;
using linearize::testing::quick_options;
using linearize::testing::tiny_conv;
using select::coordinate_block;
using select::coordinate_report;

namespace {

torch::Tensor bools(const std::vector<int>& v) {
  return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kLong).to(torch::kBool);
}

run_data tiny_data(int64_t held_out = 96) {
  return {.train = stripes(192, 1), .held_out = stripes(held_out, 2), .test = stripes(96, 3)};
}

/// A tiny network trained for a few epochs, so that linearizing ReLUs costs accuracy.
std::shared_ptr<testing::TinyConvImpl> trained_tiny(uint64_t seed) {
  auto net = tiny_conv(seed, 4, 0.0);
  train::options o;
  o.epochs = 4;
  o.batch_size = 32;
  o.optimizer = train::sgd{.lr = 0.05, .momentum = 0.9};
  o.progress.mode = train::progress_mode::silent;
  o.seed = seed;
  (void)train::fit(*net, stripes(192, 1), o);
  return net;
}

/// A stage's budget-free finetune: no BatchNorm re-estimation, no epochs (fast searches).
constexpr auto no_finetune = finetune::distill{.epochs = 0, .recalibrate_bn = false};

std::vector<int64_t> bcd_counts(const run_result& r) {
  std::vector<int64_t> counts;
  for (const auto& row : r.history)
    if (row.phase == "bcd") counts.push_back(row.relu_count);
  return counts;
}

bool subset(const torch::Tensor& inner, const torch::Tensor& outer) {
  return !inner.logical_and(outer.logical_not()).any().item<bool>();
}

/// A network with per-channel masks: 6 channels of 6x6 = 36 ReLUs per entry.
struct ChannelNetImpl : NetworkImpl {
  ChannelNetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 6, 3).padding(1)));
    relu = register_module("relu", ReluSlot(slot_options{.grain = granularity::channel, .shape = {6, 6, 6}}));
    head = register_module("head", torch::nn::Linear(6 * 36, 3));
  }
  torch::Tensor forward(torch::Tensor x) override { return head(relu(conv(x)).flatten(1)); }
  std::shared_ptr<NetworkImpl> copy() const override {
    auto out = std::make_shared<ChannelNetImpl>();
    copy_state(*this, *out);
    return out;
  }
  std::string describe() const override { return "channel_net"; }
  torch::nn::Conv2d conv{nullptr};
  ReluSlot relu{nullptr};
  torch::nn::Linear head{nullptr};
};

}  // namespace

// ---- the sequential drop test --------------------------------------------------------------------

TEST_CASE("drop_test: the drop is the paired accuracy difference; passes only below the threshold",
          "[bcd]") {
  const auto ref = bools({1, 1, 1, 1, 0, 0, 1, 1, 1, 0});   // 7 of 10 right
  const auto cand = bools({1, 0, 1, 1, 1, 0, 1, 1, 0, 0});  // 6 of 10 right
  select::drop_test t(ref, 0.1, {.enabled = false});
  CHECK_FALSE(t.add(cand.slice(0, 0, 4)));
  CHECK_FALSE(t.complete());
  CHECK_FALSE(t.add(cand.slice(0, 4, 10)));
  CHECK(t.complete());
  CHECK(t.drop() == Approx(0.1));
  CHECK_FALSE(t.passed());  // a drop equal to the threshold fails
  select::drop_test loose(ref, 0.11, {.enabled = false});
  (void)loose.add(cand);
  CHECK(loose.passed());
  expect_error([&] { (void)loose.add(cand.slice(0, 0, 1)); }, "1 more samples after 10 of 10");
}

TEST_CASE("drop_test: certain rejections never reject a candidate that would pass", "[bcd]") {
  // With z = infinity only certain rejections remain: the decision must equal full scoring.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  int rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const auto ref = torch::rand({200}, gen).lt(0.85);
    const double flip = 0.02 + 0.3 * (trial % 10) / 10.0;
    const auto cand = ref.logical_xor(torch::rand({200}, gen).lt(flip));
    const double threshold = 0.003 * (trial % 7);
    select::drop_test early(ref, threshold, {.z = std::numeric_limits<double>::infinity(), .min_samples = 0});
    select::drop_test full(ref, threshold, {.enabled = false});
    for (int64_t b = 0; b < 200; b += 25)
      if (early.add(cand.slice(0, b, b + 25))) break;
    (void)full.add(cand);
    if (early.rejected()) {
      ++rejected;
      CHECK_FALSE(full.passed());
      CHECK(full.drop() >= early.drop_lower_bound());
    } else {
      CHECK(early.passed() == full.passed());
    }
  }
  CHECK(rejected > 30);  // the bound does bite on clearly bad candidates
}

TEST_CASE("drop_test: the statistical rule rejects clearly bad candidates on a prefix and keeps "
          "harmless ones", "[bcd]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto ref = torch::rand({4000}, gen).lt(0.9);
  const auto bad = ref.logical_and(torch::rand({4000}, gen).ge(0.05));  // ~4.5 points worse
  const auto same = ref.clone();
  const select::early_rejection rule{.z = 3, .min_samples = 256};
  select::drop_test t_bad(ref, 0.003, rule), t_same(ref, 0.003, rule);
  int64_t seen = 0;
  for (int64_t b = 0; b < 4000; b += 250) {
    seen += 250;
    if (t_bad.add(bad.slice(0, b, b + 250))) break;
  }
  CHECK(t_bad.rejected());
  CHECK(seen <= 500);
  for (int64_t b = 0; b < 4000; b += 250) CHECK_FALSE(t_same.add(same.slice(0, b, b + 250)));
  CHECK(t_same.passed());
  select::drop_test off(ref, 0.003, {.enabled = false});
  for (int64_t b = 0; b < 4000; b += 250) CHECK_FALSE(off.add(bad.slice(0, b, b + 250)));
  CHECK_FALSE(off.passed());
}

TEST_CASE("early rejection rarely rejects a candidate just under ADT that differs from the "
          "reference on many samples", "[bcd]") {
  // 4,000 samples, threshold 0.3 points (12 samples). Each candidate turns 60 samples the
  // reference got right wrong and 52 it got wrong right: a true drop of 8 / 4,000 = 0.2 points,
  // under the threshold, with the spread of 112 changed samples. Scored to the end it passes;
  // the sequential test must not reject it on a prefix more than rarely (z = 3 per look).
  const int64_t n = 4000;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  const auto ref = torch::rand({n}, gen).lt(0.9);
  const auto right = ref.nonzero().reshape({-1}), wrong = ref.logical_not().nonzero().reshape({-1});
  const select::early_rejection rule{.z = 3, .min_samples = 256};
  const auto candidate = [&](int64_t down, int64_t up) {
    auto c = ref.clone();
    c.index_fill_(0, right.index_select(0, torch::randperm(right.numel(), gen).slice(0, 0, down)), false);
    c.index_fill_(0, wrong.index_select(0, torch::randperm(wrong.numel(), gen).slice(0, 0, up)), true);
    return c;
  };
  const auto score = [&](const torch::Tensor& c, select::early_rejection r) {
    select::drop_test t(ref, 0.003, r);
    for (int64_t b = 0; b < n && !t.add(c.slice(0, b, b + 250)); b += 250) {
    }
    return t;
  };
  int64_t false_rejections = 0, trials = 200;
  for (int64_t k = 0; k < trials; ++k) {
    const auto c = candidate(60, 52);
    CHECK(score(c, {.enabled = false}).passed());  // the whole set says: under ADT
    false_rejections += score(c, rule).rejected();
  }
  INFO(false_rejections << " of " << trials << " rejected early");
  CHECK(false_rejections <= trials / 20);  // at most 5%
  // Just over the threshold (a drop of 18 / 4,000 = 0.45 points): never passes.
  for (int64_t k = 0; k < 20; ++k) CHECK_FALSE(score(candidate(70, 52), rule).passed());
}

// ---- proposals -------------------------------------------------------------------------------------

TEST_CASE("blocks: exactly DRC active entries with element masks, seeded; at least DRC ReLUs with "
          "coarse entries", "[bcd]") {
  const auto active = torch::arange(3, 503, torch::kLong);  // 500 active entries
  const auto ones = torch::ones({500}, torch::kLong);
  const auto a = select::draw_block(active, ones, 37, 11);
  CHECK(a.numel() == 37);
  CHECK(a.slice(0, 1).gt(a.slice(0, 0, -1)).all().item<bool>());  // sorted, hence distinct
  CHECK(a.min().item<int64_t>() >= 3);
  CHECK(a.max().item<int64_t>() < 503);
  CHECK(torch::equal(a, select::draw_block(active, ones, 37, 11)));
  CHECK_FALSE(torch::equal(a, select::draw_block(active, ones, 37, 12)));
  CHECK(select::draw_block(active.slice(0, 0, 5), ones.slice(0, 0, 5), 37, 1).numel() == 5);

  const auto coarse = torch::full({500}, 36, torch::kLong);
  const auto c = select::draw_block(active, coarse, 100, 5);
  CHECK(c.numel() == 3);  // 3 x 36 = 108 >= 100 > 2 x 36
  expect_error([&] { (void)select::draw_block(active, ones, 0, 1); }, "drc 0 must be positive");
}

TEST_CASE("ranked blocks: the first try is the greedy block, later tries reach further", "[bcd]") {
  const auto active = torch::arange(0, 100, torch::kLong);
  const auto ones = torch::ones({100}, torch::kLong);
  const auto damage = torch::arange(100, 0, -1, torch::kFloat);  // entry 99 is the cheapest
  const auto r = select::rank_entries(active, ones, damage, 4);
  CHECK(torch::equal(r.entries.slice(0, 0, 3), torch::tensor({99, 98, 97}, torch::kLong)));
  CHECK(torch::equal(select::ranked_block(r, 10, 0, 1.0, 1), torch::arange(90, 100, torch::kLong)));
  const auto later = select::ranked_block(r, 10, 2, 1.0, 1);  // from the best 30
  CHECK(later.numel() == 10);
  CHECK(later.min().item<int64_t>() >= 70);
}

TEST_CASE("first-order damage is -dL/da of a gate of ones (signed) or |dL/da| (magnitude); zero "
          "where the input is never negative", "[bcd]") {
  auto net = trained_tiny(21);
  auto& tiny = *net;
  {  // Channel 0's inputs to the slot are positive on every sample: its ReLUs are free.
    torch::NoGradGuard no_grad;
    tiny.bn->bias[0].fill_(100.0);
  }
  const MaskSet masks(*net);
  const auto data = stripes(64, 9);
  net->eval();
  const auto probe = data::make_batch(data.images, data.mean, data.stdev, {}, 0);
  const auto before = net->forward(probe).detach();
  const auto est = select::estimate_first_order(*net, masks, data, 64, 64, 5,
                                                select::damage_estimate::magnitude);
  const auto signed_est = select::estimate_first_order(*net, masks, data, 64, 64, 5);
  CHECK(est.images == 64);
  CHECK(est.damage.numel() == 144);
  CHECK(torch::equal(net->forward(probe), before));  // the gates are gone, the network as it was
  // The same gradient by hand: a soft copy whose mask is the parameter.
  auto soft = net->copy();
  soft->eval();
  const MaskSet soft_masks(*soft);
  soft_masks.soften();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto ids = torch::randperm(64, gen, torch::kLong);
  const auto picked = data.subset(ids);
  const auto x = data::make_batch(picked.images, picked.mean, picked.stdev, {}, 0);
  const auto loss = torch::nn::functional::cross_entropy(
      soft->forward(x), picked.labels,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  loss.backward();
  CHECK(testing::close(est.damage, soft_masks[0].mask().grad().abs().reshape({-1}), 1e-4, 1e-5));
  // The signed estimate is the first-order change of the loss: removal helps where it is < 0.
  CHECK(testing::close(signed_est.damage, -soft_masks[0].mask().grad().reshape({-1}), 1e-4, 1e-5));
  CHECK(signed_est.damage.lt(0).any().item<bool>());
  // Entries whose input is positive on every sample cost nothing.
  torch::NoGradGuard no_grad;
  const auto pre = tiny.bn(tiny.conv(x)).reshape({64, -1});
  const auto never_negative = pre.ge(0).all(0);
  REQUIRE(never_negative.any().item<bool>());
  CHECK(never_negative.sum().item<int64_t>() >= 36);
  CHECK(est.damage.index({never_negative}).abs().max().item<float>() == 0);
  CHECK(est.damage.index({never_negative.logical_not()}).gt(0).any().item<bool>());
}

// ---- whole searches ----------------------------------------------------------------------------------

TEST_CASE("coordinate descent runs exactly T = ceil((B_ref - B_target) / DRC) iterations of DRC "
          "ReLUs each", "[bcd]") {
  struct setting {
    int64_t budget, drc;
  };
  for (const auto& s : {setting{100, 7}, setting{40, 13}, setting{1, 50}, setting{143, 1}}) {
    for (auto prop : {select::proposal::uniform, select::proposal::first_order}) {
      INFO("budget " << s.budget << ", drc " << s.drc << ", " << select::to_string(prop));
      auto net = trained_tiny(31);
      const auto method = pipeline(coordinate_block{.tries = 3, .adt = 1.0, .proposals = prop,
                                                    .gradient_samples = 64},
                                   schedule::fixed_step{.drc = s.drc}, no_finetune);
      const auto result = run(method, net, net->copy(), tiny_data(), budget(s.budget), quick_options());
      const int64_t T = (144 - s.budget + s.drc - 1) / s.drc;
      const auto rep = coordinate_report::of(result.stages.at(0));
      CHECK(rep.planned_iterations == T);
      CHECK(rep.iterations == T);
      const auto counts = bcd_counts(result);
      REQUIRE(static_cast<int64_t>(counts.size()) == T);
      int64_t before = 144;
      for (const auto c : counts) {
        CHECK(c == std::max<int64_t>(0, before - s.drc));
        before = c;
      }
      CHECK(result.relu_count <= s.budget);
      CHECK(result.relu_count > s.budget - s.drc);
      CHECK(result.relu_count == std::max<int64_t>(0, 144 - T * s.drc));
      CHECK(rep.tries >= T);
      CHECK(rep.tries <= 3 * T);
      CHECK(rep.accepted + rep.fallbacks == T);
    }
  }
}

TEST_CASE("coordinate descent: a dropped ReLU never returns; a killed search resumes to the "
          "uninterrupted search's mask and weights", "[bcd]") {
  const auto method = [](int64_t stop) {
    return pipeline(coordinate_block{.tries = 4, .adt = 0.5, .gradient_samples = 64,
                                     .finetune_epochs = 1, .stop_after_iterations = stop},
                    schedule::fixed_step{.drc = 10}, finetune::distill{.epochs = 1});
  };
  auto reference_net = trained_tiny(41);
  const auto full = run(method(-1), reference_net, reference_net->copy(), tiny_data(), budget(60),
                        quick_options());
  const auto full_report = coordinate_report::of(full.stages.at(0));
  REQUIRE(full_report.iterations == 9);

  temp_dir dir("bcd_resume");
  auto opts = quick_options();
  opts.work_dir = dir.path;
  torch::Tensor previous = torch::ones({144}, torch::kBool);
  std::shared_ptr<testing::TinyConvImpl> net;
  for (int64_t stop : {2, 5, 7}) {
    INFO("stopping after " << stop << " iterations");
    // Every attempt starts as a fresh process would: the original network, rebuilt.
    net = trained_tiny(41);
    CHECK_THROWS_AS(run(method(stop), net, net->copy(), tiny_data(), budget(60), opts),
                    select::search_interrupted);
    CHECK(std::filesystem::exists(dir / "stage0_bcd.ckpt"));
    const auto mask = MaskSet(*net).binary();
    CHECK(MaskSet(*net).relu_count() == 144 - 10 * stop);
    CHECK(subset(mask, previous));  // nothing dropped came back
    previous = mask;
  }
  net = trained_tiny(41);
  const auto resumed = run(method(-1), net, net->copy(), tiny_data(), budget(60), opts);
  CHECK(subset(resumed.mask, previous));
  CHECK(torch::equal(resumed.mask, full.mask));
  CHECK(testing::same_state(*net, *reference_net));
  const auto rep = coordinate_report::of(resumed.stages.at(0));
  CHECK(rep.iterations == full_report.iterations);
  CHECK(rep.tries == full_report.tries);
  CHECK(rep.finetunes == full_report.finetunes);
  CHECK(bcd_counts(resumed) == bcd_counts(full));
  // No finetune checkpoint of the search is left behind; the search's own checkpoint says done.
  for (const auto& f : std::filesystem::directory_iterator(dir.path))
    CHECK(f.path().filename().string().find("bcd_finetune") == std::string::npos);
}

TEST_CASE("coordinate descent: a kill inside a finetune resumes that finetune to the same result",
          "[bcd]") {
  const auto method = [](int throw_on_call) {
    return pipeline(coordinate_block{.tries = 3, .adt = 0.5, .gradient_samples = 64,
                                     .finetune_every_iteration = true},
                    schedule::fixed_step{.drc = 20},
                    throwing_finetune{.epochs = 1, .throw_on_call = throw_on_call});
  };
  auto reference_net = trained_tiny(43);
  finetune_calls = 0;
  const auto full = run(method(-1), reference_net, reference_net->copy(), tiny_data(), budget(80),
                        quick_options());
  CHECK(coordinate_report::of(full.stages.at(0)).finetunes == 4);

  temp_dir dir("bcd_resume_finetune");
  auto opts = quick_options();
  opts.work_dir = dir.path;
  auto net = trained_tiny(43);
  finetune_calls = 0;
  CHECK_THROWS_WITH(run(method(2), net, net->copy(), tiny_data(), budget(80), opts),
                    "killed before bcd_finetune_2");
  net = trained_tiny(43);
  finetune_calls = 0;
  const auto resumed = run(method(-1), net, net->copy(), tiny_data(), budget(80), opts);
  CHECK(torch::equal(resumed.mask, full.mask));
  CHECK(testing::same_state(*net, *reference_net));
  CHECK(coordinate_report::of(resumed.stages.at(0)).finetunes == 4);
}

TEST_CASE("coordinate descent: finetunes follow failed iterations (or every one); the reference "
          "is measured again after each", "[bcd]") {
  const auto data = tiny_data();
  const auto search = [&](coordinate_block policy, uint64_t seed = 51) {
    auto net = trained_tiny(seed);
    const auto method = pipeline(policy, schedule::fixed_step{.drc = 12},
                                 finetune::distill{.epochs = 0, .recalibrate_bn = false});
    const auto r = run(method, net, net->copy(), data, budget(84), quick_options());
    return std::make_pair(coordinate_report::of(r.stages.at(0)), net);
  };
  {  // Every candidate passes: the first try, never a finetune.
    const auto [rep, net] = search({.tries = 5, .adt = 100.0, .gradient_samples = 64});
    CHECK(rep.iterations == 5);
    CHECK(rep.tries == 5);
    CHECK(rep.accepted == 5);
    CHECK(rep.finetunes == 0);
  }
  {  // Nothing can pass a threshold of 0 unless it improves: finetunes after each fallback.
    const auto [rep, net] = search({.tries = 2, .adt = 0.0, .gradient_samples = 64, .finetune_epochs = 1});
    CHECK(rep.fallbacks > 0);
    CHECK(rep.finetunes == rep.fallbacks);
    CHECK(rep.tries >= 2 * rep.fallbacks + rep.accepted);
    CHECK(rep.tries <= 2 * rep.iterations);
  }
  {  // Finetune after every iteration; the reference is the finetuned network's accuracy.
    const auto [rep, net] = search({.tries = 2, .adt = 100.0, .gradient_samples = 64, .finetune_epochs = 1,
                                    .finetune_every_iteration = true});
    CHECK(rep.finetunes == 5);
    CHECK(rep.reference_accuracy == Approx(train::evaluate(*net, data.held_out).top1).margin(1e-12));
  }
  {  // The prototype's stale reference: the accuracy of the network the search started from.
    const double start = train::evaluate(*trained_tiny(51), data.held_out).top1;
    const auto [rep, net] = search({.tries = 2, .adt = 100.0, .gradient_samples = 64, .finetune_epochs = 1,
                                    .finetune_every_iteration = true, .remeasure_reference = false});
    CHECK(rep.finetunes == 5);
    CHECK(rep.reference_accuracy == Approx(start).margin(1e-12));
  }
}

TEST_CASE("coordinate descent: scoring cost accounting; early rejection scores fewer images; "
          "a failed iteration takes the least drop", "[bcd]") {
  const auto data = tiny_data(600);
  const auto search = [&](select::early_rejection rule, int64_t tries = 6) {
    auto net = trained_tiny(61);
    // Blocks of a third of the ReLUs and a threshold of 0: most candidates clearly fail.
    const auto method = pipeline(coordinate_block{.tries = tries, .adt = 0.0, .scoring_batch = 50,
                                                  .rejection = rule,
                                                  .proposals = select::proposal::uniform},
                                 schedule::fixed_step{.drc = 48}, no_finetune);
    const auto r = run(method, net, net->copy(), data, budget(1), quick_options());
    return std::make_pair(coordinate_report::of(r.stages.at(0)), r);
  };
  const auto [full, full_run] = search({.enabled = false});
  // Without early rejection every try and every reference measurement sees the 600 samples.
  CHECK(full.early_rejections == 0);
  CHECK(full.scoring_images == 600 * (full.tries + 1 + full.finetunes));
  CHECK(full.gradient_images == 0);
  // Everything the search forwarded; run()'s test-set evaluations only report, uncounted.
  CHECK(full_run.stages[0].images_forwarded == full.images());
  const auto [early, early_run] = search({.z = 2, .min_samples = 100});
  CHECK(early.early_rejections > 0);
  CHECK(early.scoring_images < full.scoring_images / 2);

  // Candidate k of an iteration is the same whatever K is (its seed is (iteration, k)), so with
  // every candidate failing, 6 tries keep a block at least as good as the first try's.
  REQUIRE(full.fallbacks == full.iterations);
  const auto first_row = [](const run_result& r) {
    for (const auto& row : r.history)
      if (row.phase == "bcd") return row;
    return history_row{};
  };
  const auto one_try = search({.enabled = false}, 1).second;
  CHECK(first_row(full_run).held_out_accuracy >= first_row(one_try).held_out_accuracy);
}

TEST_CASE("coordinate descent works on a loaded mask, is seeded, and chains after SNL", "[bcd]") {
  temp_dir dir("bcd_mask");
  {
    auto net = trained_tiny(71);
    const MaskSet masks(*net);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    masks.harden(torch::randperm(144, gen, torch::kLong).lt(100));
    masks.save(dir / "start.mask");
  }
  const auto from_mask = [&](uint64_t seed) {
    auto net = trained_tiny(71);
    MaskSet(*net).load(dir / "start.mask");
    auto opts = quick_options();
    opts.seed = seed;
    const auto method = pipeline(coordinate_block{.tries = 3, .adt = 0.5, .proposals = select::proposal::uniform},
                                 schedule::fixed_step{.drc = 10}, no_finetune);
    return run(method, net, trained_tiny(71), tiny_data(), budget(50), opts);
  };
  const auto a = from_mask(0), b = from_mask(0), c = from_mask(1);
  CHECK(a.stages[0].relu_count_before == 100);
  CHECK(coordinate_report::of(a.stages[0]).iterations == 5);
  CHECK(a.relu_count == 50);
  auto loaded = trained_tiny(71);
  MaskSet(*loaded).load(dir / "start.mask");
  CHECK(subset(a.mask, MaskSet(*loaded).binary()));
  CHECK(torch::equal(a.mask, b.mask));
  CHECK_FALSE(torch::equal(a.mask, c.mask));

  // SNL to 80 ReLUs, then coordinate descent to 40 in steps of 7.
  auto net = trained_tiny(72);
  const auto snl = pipeline(relax::l1_mix{},
                            schedule::budget_tracking{.epochs = 8, .check_every = 2},
                            select::magnitude{}, finetune::distill{.epochs = 1});
  const auto bcd = pipeline(coordinate_block{.tries = 3, .adt = 0.5, .gradient_samples = 64},
                            schedule::fixed_step{.drc = 7},
                            no_finetune);
  auto opts = quick_options();
  opts.stage_budgets = {budget(80)};
  const auto r = run(snl | bcd, net, net->copy(), tiny_data(), budget(40), opts);
  REQUIRE(r.stages.size() == 2);
  CHECK(r.stages[0].budget == 80);
  CHECK(r.stages[0].relu_count <= 80);
  CHECK(r.stages[1].budget == 40);
  CHECK(r.stages[1].relu_count_before == r.stages[0].relu_count);
  const int64_t T = (r.stages[0].relu_count - 40 + 6) / 7;
  CHECK(coordinate_report::of(r.stages[1]).iterations == T);
  CHECK(static_cast<int64_t>(bcd_counts(r).size()) == T);
  CHECK(r.relu_count <= 40);
  CHECK(r.relu_count > 40 - 7);
  CHECK(r.stages[1].name == "fixed_step+coordinate_block+distill");
}

TEST_CASE("coordinate descent with channel masks: blocks of whole channels, at least DRC ReLUs, "
          "at most T iterations", "[bcd]") {
  torch::manual_seed(5);
  auto net = std::make_shared<ChannelNetImpl>();
  const auto method = pipeline(coordinate_block{.tries = 2, .adt = 1.0}, schedule::fixed_step{.drc = 50},
                               no_finetune);
  const auto r = run(method, net, net->copy(), tiny_data(), budget(100), quick_options());
  const auto rep = coordinate_report::of(r.stages.at(0));
  CHECK(r.total_relus == 216);
  CHECK(rep.planned_iterations == 3);  // ceil((216 - 100) / 50): an upper bound here
  CHECK(rep.iterations == 2);           // each block is 2 channels = 72 ReLUs
  CHECK(bcd_counts(r) == std::vector<int64_t>{144, 72});
  CHECK(r.relu_count <= 100);
}

TEST_CASE("coordinate descent rejects bad settings with messages that name them", "[bcd]") {
  auto net = trained_tiny(81);
  const auto try_run = [&](coordinate_block p, int64_t drc = 10, run_data data = tiny_data()) {
    (void)run(pipeline(p, schedule::fixed_step{.drc = drc}, no_finetune), net, net->copy(), data,
              budget(100), quick_options());
  };
  expect_error([&] { try_run({.tries = 0}); }, "coordinate_block: tries 0 must be positive");
  expect_error([&] { try_run({.adt = -1}); }, "coordinate_block: adt -1 must be finite and >= 0");
  expect_error([&] { try_run({}, 0); }, "fixed_step: drc 0 must be positive");
  expect_error([&] { try_run({.scoring_size = 97}); },
               "scoring_size 97 is larger than the held-out set (96 samples)");
  auto no_held_out = tiny_data();
  no_held_out.held_out = {};
  expect_error([&] { try_run({}, 10, no_held_out); }, "give run_data::held_out");
  expect_error([&] { try_run({.rejection = {.z = 0}}); }, "early_rejection: z 0 must be positive");
  auto opts = quick_options();
  opts.stage_budgets = {budget(100)};
  expect_error([&] {
    (void)run(pipeline(coordinate_block{}, no_finetune), net, net->copy(), tiny_data(), budget(50), opts);
  }, "1 stage budgets for a method of 1 stage(s)");

  // Called directly (run() skips a stage already within its budget): a budget above the count.
  const run_data data = tiny_data();
  const run_options options = quick_options();
  const Network teacher = net->copy();
  stage_context ctx(*net, teacher, data, options, 0, 150, no_finetune, schedule::fixed_step{});
  expect_error([&] { (void)coordinate_block{}.select(ctx); },
               "budget of 150 ReLUs is above the network's current count of 144");
}
