// The trainer's parts: LR schedules, losses, optimizer construction, evaluation, progress.
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/losses.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/progress.hpp>

#include <cmath>
#include <sstream>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;

TEST_CASE("multistep multiplies by gamma at each milestone", "[train]") {
  const train::lr_schedule s = train::multistep{.milestones = {2, 4}, .gamma = 0.1};
  const auto at = [&](int64_t epoch, int64_t step) {
    return train::lr_at(s, 1.0, {.epoch = epoch, .step = step, .steps_per_epoch = 10, .run_epochs = 6});
  };
  CHECK(at(0, 0) == 1.0);
  CHECK(at(1, 9) == 1.0);
  CHECK(at(2, 0) == Approx(0.1));
  CHECK(at(3, 5) == Approx(0.1));
  CHECK(at(4, 0) == Approx(0.01));
  CHECK(at(5, 9) == Approx(0.01));
  CHECK(train::lr_at(train::constant{}, 0.3, {.epoch = 7}) == 0.3);
  expect_error([] { train::validate(train::multistep{.milestones = {4, 2}}, 1.0); },
               "strictly increasing; 2 follows 4");
  expect_error([] { train::validate(train::multistep{.milestones = {2}, .gamma = 0}, 1.0); },
               "gamma 0");
}

TEST_CASE("cosine runs from the base rate to min_lr, per step", "[train]") {
  const train::cosine c{.epochs = 10, .min_lr = 0.01};
  const auto at = [&](const train::cosine& s, int64_t epoch, int64_t step) {
    return train::lr_at(s, 0.1, {.epoch = epoch, .step = step, .steps_per_epoch = 4, .run_epochs = 20});
  };
  CHECK(at(c, 0, 0) == Approx(0.1));
  CHECK(at(c, 5, 0) == Approx(0.055));                      // half way: the mean
  CHECK(at(c, 10, 0) == Approx(0.01));                      // the end
  CHECK(at(c, 15, 2) == Approx(0.01));                      // stays there
  CHECK(at(c, 0, 1) < 0.1);                                 // moves every step
  CHECK(at(c, 0, 1) > at(c, 0, 2));
  // Length from total steps, or from the run.
  CHECK(at(train::cosine{.total_steps = 8}, 2, 0) == Approx(0.0).margin(1e-12));
  CHECK(at(train::cosine{}, 10, 0) == Approx(0.05));        // half of a 20-epoch run
  CHECK(at(train::cosine{}, 20, 0) == Approx(0.0).margin(1e-12));
  expect_error([] { train::validate(train::cosine{.min_lr = 0.5}, 0.1); },
               "min_lr 0.5 must lie in [0, base lr 0.1]");
  expect_error([] { train::validate(train::cosine{.epochs = 3, .total_steps = 9}, 0.1); },
               "not both");
}

TEST_CASE("KD loss is T^2 KL(teacher || student), zero when they agree", "[train]") {
  torch::manual_seed(3);
  const auto s = torch::randn({3, 5}, torch::requires_grad());
  const auto t = torch::randn({3, 5});
  const double T = 4;
  CHECK(train::kd_loss(t, t, T).item<double>() == Approx(0.0).margin(1e-6));
  CHECK(train::kd_loss(s * 1, s.detach(), 2.0).item<double>() == Approx(0.0).margin(1e-6));

  // By hand, in double precision.
  const auto sd = s.detach().to(torch::kDouble), td = t.to(torch::kDouble);
  double expected = 0;
  for (int64_t b = 0; b < 3; ++b) {
    double zs = 0, zt = 0;
    for (int64_t k = 0; k < 5; ++k) {
      zs += std::exp(sd[b][k].item<double>() / T);
      zt += std::exp(td[b][k].item<double>() / T);
    }
    for (int64_t k = 0; k < 5; ++k) {
      const double p = std::exp(td[b][k].item<double>() / T) / zt;
      const double q = std::exp(sd[b][k].item<double>() / T) / zs;
      expected += p * std::log(p / q);
    }
  }
  expected = expected / 3 * T * T;
  const auto kd = train::kd_loss(s, t, T);
  CHECK(kd.item<double>() == Approx(expected).epsilon(1e-5));
  CHECK(kd.item<double>() > 0);
  kd.backward();
  CHECK(s.grad().defined());

  expect_error([&] { (void)train::kd_loss(s, t, 0); }, "temperature 0 must be positive");
  expect_error([&] { (void)train::kd_loss(s, t.slice(1, 0, 4), T); }, "expected equal shapes");
  const auto labels = torch::tensor({0, 4, 2}, torch::kLong);
  CHECK(train::cross_entropy(t, labels).item<double>() ==
        Approx(torch::nn::functional::cross_entropy(t, labels).item<double>()));
}

TEST_CASE("optimizers cover trainable parameters only", "[train]") {
  auto net = testing::tiny_conv(1);
  const auto all = net->parameters();
  auto opt = train::make_optimizer(train::finetune_sgd, all);
  CHECK(opt->param_groups().at(0).params().size() == all.size());
  CHECK(opt->param_groups().at(0).options().get_lr() == Approx(1e-3));

  net->relu->harden(torch::ones({4, 6, 6}));  // a hard mask: frozen
  auto adam = train::make_optimizer(train::mask_search_adam, net->parameters());
  CHECK(adam->param_groups().at(0).params().size() == all.size() - 1);
  for (const auto& p : adam->param_groups().at(0).params())
    CHECK_FALSE(p.is_same(net->relu->mask()));
  train::set_lr(*adam, 0.5);
  CHECK(adam->param_groups().at(0).options().get_lr() == 0.5);

  auto teacher = net->copy();
  freeze(*teacher);
  expect_error([&] { (void)train::make_optimizer(train::baseline_sgd, teacher->parameters()); },
               "none of the");
  expect_error([&] { (void)train::make_optimizer(train::sgd{.lr = -1}, all); },
               "learning rate -1 must be positive");
  expect_error([&] { (void)train::make_optimizer(train::sgd{.momentum = 0, .nesterov = true}, all); },
               "Nesterov");
  CHECK(train::optimizer_name(train::adam{}) == "adam");
}

namespace {
// Returns a fixed row of logits per sample; the sample is identified by its first pixel.
struct LookupImpl : NetworkImpl {
  explicit LookupImpl(torch::Tensor table) : table(std::move(table)) {
    bias = register_parameter("bias", torch::zeros({1}));
  }
  torch::Tensor forward(torch::Tensor x) override {
    seen_training = is_training();
    const auto index = (x.select(1, 0).select(1, 0).select(1, 0) * 255).round().to(torch::kLong);
    return table.index_select(0, index) + bias;
  }
  std::shared_ptr<NetworkImpl> copy() const override { return std::make_shared<LookupImpl>(table); }
  std::string describe() const override { return "lookup"; }
  torch::Tensor table;
  torch::Tensor bias;
  bool seen_training = true;
};

data::image_dataset indexed(int64_t n, int64_t classes, const std::vector<int64_t>& labels) {
  data::image_dataset d;
  d.name = "indexed";
  d.images = torch::zeros({n, 1, 2, 2}, torch::kByte);
  for (int64_t i = 0; i < n; ++i) d.images[i].fill_(i);
  d.labels = torch::tensor(labels, torch::kLong);
  d.classes = classes;
  d.mean = {0};
  d.stdev = {1};
  return d;
}
}  // namespace

TEST_CASE("evaluate gives top-1, top-5 and mean loss of known outputs", "[train]") {
  // 4 samples, 6 classes. Labels 0, 1, 2, 5.
  const auto table = torch::tensor({{9., 1., 2., 3., 4., 5.},     // label 0: top-1
                                    {0., 9., 8., 7., 6., 5.},     // label 1: top-1
                                    {9., 8., 1., 7., 6., 5.},     // label 2: rank 6, missed
                                    {5., 9., 8., 7., 6., 0.5}}); // label 5: rank 6, missed
  auto table2 = table.clone();
  table2[2][2] = 6.5;  // label 2 now at rank 4: a top-5 hit
  auto net = std::make_shared<LookupImpl>(table2);
  net->train();
  const auto data = indexed(4, 6, {0, 1, 2, 5});
  const auto m = train::evaluate(net, data, /*batch_size=*/3);
  CHECK(m.samples == 4);
  CHECK(m.top1 == Approx(0.5));
  REQUIRE(m.top5.has_value());
  CHECK(*m.top5 == Approx(0.75));
  const auto ce = torch::nn::functional::cross_entropy(
      table2, torch::tensor({0, 1, 2, 5}, torch::kLong));
  CHECK(m.loss == Approx(ce.item<double>()).epsilon(1e-6));
  CHECK_FALSE(net->seen_training);  // evaluated in eval mode
  CHECK(net->is_training());        // and the mode restored

  // Fewer than 5 classes: no top-5.
  auto small = std::make_shared<LookupImpl>(torch::tensor({{1., 0., 0.}, {0., 0., 1.}}));
  small->eval();
  const auto s = train::evaluate(small, indexed(2, 3, {0, 1}), 8);
  CHECK(s.top1 == Approx(0.5));
  CHECK_FALSE(s.top5.has_value());
  CHECK_FALSE(small->is_training());
}

TEST_CASE("progress writes lines in logs, a live line on terminals, nothing when silent",
          "[train]") {
  std::ostringstream lines, live, quiet;
  {
    train::progress_meter p({.mode = train::progress_mode::lines, .line_interval_s = 0, .out = &lines});
    p.start(2, 3, 0, 0);
    p.step(0, 0, 1.5, 0.25, 100);
    p.step(0, 1, 1.25, 0.5, 100);
    p.epoch_end("epoch 1/2 done");
  }
  CHECK(lines.str().find("epoch 1/2  step 2/3  loss 1.2500  acc 50.00%") != std::string::npos);
  CHECK(lines.str().find('\r') == std::string::npos);
  CHECK(lines.str().find("ETA") != std::string::npos);
  {
    train::progress_meter p({.mode = train::progress_mode::live, .live_interval_s = 0, .out = &live});
    p.start(1, 2, 0, 0);
    p.step(0, 0, 1, 0.5, 10);
  }
  CHECK(live.str().find('\r') != std::string::npos);
  {
    train::progress_meter p({.mode = train::progress_mode::silent, .out = &quiet});
    p.start(1, 2, 0, 0);
    p.step(0, 0, 1, 0.5, 10);
    p.epoch_end("x");
  }
  CHECK(quiet.str().empty());
  CHECK(train::format_duration(3725) == "1h02m");
  CHECK(train::format_duration(187) == "3m07s");
  CHECK(train::format_duration(NAN) == "?");
}
