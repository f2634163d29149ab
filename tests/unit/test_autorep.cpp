// AutoReP on the pipeline: the polynomial fit, the hysteretic hard mask with its
// straight-through gradient, the density hinge, and the method end to end (exact budget,
// polynomials trained, saved, resumed and exported; a killed search resumes to the same mask).
#include "test_support.hpp"
#include "killed_run.hpp"
#include "train_fixtures.hpp"

#include <linearize/core/polynomial.hpp>
#include <linearize/core/replace_linearized.hpp>
#include <linearize/io/pi_export.hpp>
#include <linearize/pipeline/run.hpp>
#include <linearize/relax/autorep.hpp>
#include <linearize/relax/polynomial_fit.hpp>
#include <linearize/schedule/density_hinge.hpp>
#include <linearize/select/top_k.hpp>
#include <linearize/train/checkpoint.hpp>

#include <cmath>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::quick_options;
using linearize::testing::stripes;
using linearize::testing::tiny_conv;

namespace {

run_data tiny_data() {
  return {.train = stripes(192, 1), .held_out = stripes(48, 2), .test = stripes(96, 3)};
}

/// Mean of (poly(x) - relu(x))^2 per channel, x [N, C].
torch::Tensor fit_error(const torch::Tensor& x, const std::vector<torch::Tensor>& c) {
  const auto p = (c[0] * x + c[1]) * x + c[2];
  return (p - x.clamp_min(0)).pow(2).mean(0);
}

}  // namespace

TEST_CASE("The least-squares quadratic of relu: AutoReP's on a normal input, optimal on any",
          "[autorep]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t n = 400'000;
  const auto z = torch::randn({n, 1}, gen, torch::kDouble);
  // Channels: N(0, 1); N(0, 9); uniform on [49, 51] (far from 0: cancellation); a constant -2.
  const auto x = torch::cat({z, 3 * z, 49 + 2 * torch::rand({n, 1}, gen, torch::kDouble),
                             torch::full({n, 1}, -2.0, torch::kDouble)},
                            1);
  relax::relu_moments sums;
  for (int64_t b = 0; b < n; b += 100'000) sums.add(x.slice(0, b, b + 100'000).to(torch::kFloat));
  const auto c = sums.fit();
  const double k = 1 / std::sqrt(8 * M_PI);  // 0.19947
  CHECK(c[0][0].item<double>() == Approx(k).margin(0.01));
  CHECK(c[1][0].item<double>() == Approx(0.5).margin(0.01));
  CHECK(c[2][0].item<double>() == Approx(k).margin(0.01));
  CHECK(c[0][1].item<double>() == Approx(k / 3).margin(0.005));
  CHECK(c[1][1].item<double>() == Approx(0.5).margin(0.01));
  CHECK(c[2][1].item<double>() == Approx(3 * k).margin(0.03));
  // Far from 0 relu is the identity there: slope 1, no curvature.
  CHECK(c[0][2].item<double>() == Approx(0).margin(1e-4));
  CHECK(c[1][2].item<double>() == Approx(1).margin(1e-3));
  CHECK(c[2][2].item<double>() == Approx(0).margin(0.05));
  // A constant input: the constant relu(-2) = 0.
  CHECK(c[0][3].item<double>() == 0);
  CHECK(c[1][3].item<double>() == 0);
  CHECK(c[2][3].item<double>() == 0);
  // Optimal: any small change of a coefficient fits worse.
  const auto base = fit_error(x.slice(1, 0, 2), {c[0].slice(0, 0, 2), c[1].slice(0, 0, 2), c[2].slice(0, 0, 2)});
  for (int which = 0; which < 3; ++which)
    for (double step : {-0.02, 0.02}) {
      auto moved = std::vector<torch::Tensor>{c[0].slice(0, 0, 2).clone(), c[1].slice(0, 0, 2).clone(),
                                              c[2].slice(0, 0, 2).clone()};
      moved[static_cast<size_t>(which)] += step;
      CHECK((fit_error(x.slice(1, 0, 2), moved) > base).all().item<bool>());
    }
  linearize::testing::expect_error([] { (void)relax::relu_moments{}.fit(); }, "no inputs");
}

TEST_CASE("fit_polynomials fits each slot to the inputs it sees, better than the identity",
          "[autorep]") {
  auto net = tiny_conv(5, 4, 0.0);
  replace_linearized(*net, polynomial_replacement{});
  const auto data = stripes(64, 7);
  CHECK(relax::fit_polynomials(*net, data, {.batches = 2, .batch_size = 32}) == 64);
  const auto poly = net->relu->replacement_as<PolynomialImpl>();
  REQUIRE(poly);
  // The slot's inputs, computed by hand: bn(conv(x)) in eval mode, every image once.
  torch::Tensor inputs;
  {
    torch::NoGradGuard no_grad;
    net->eval();
    inputs = net->bn(net->conv(data::make_batch(data.images, data.mean, data.stdev, data::augmentation{}, 0)));
    net->train();
  }
  relax::relu_moments sums;
  sums.add(inputs);
  const auto expected = sums.fit();
  CHECK(close(poly->c2, expected[0].to(torch::kFloat), 1e-4, 1e-5));
  CHECK(close(poly->c1, expected[1].to(torch::kFloat), 1e-4, 1e-5));
  CHECK(close(poly->c0, expected[2].to(torch::kFloat), 1e-4, 1e-5));
  const auto per_channel = inputs.transpose(0, 1).reshape({4, -1}).transpose(0, 1).to(torch::kDouble);
  const auto fitted = fit_error(per_channel, {poly->c2.detach().to(torch::kDouble), poly->c1.detach().to(torch::kDouble),
                                              poly->c0.detach().to(torch::kDouble)});
  const auto identity = fit_error(per_channel, {torch::zeros({4}, torch::kDouble), torch::ones({4}, torch::kDouble),
                                                torch::zeros({4}, torch::kDouble)});
  CHECK((fitted < identity).all().item<bool>());
}

TEST_CASE("autorep's mask: hard values, hysteresis inside the band, softplus straight-through",
          "[autorep]") {
  const relax::autorep r{.threshold = 0, .band = 0.1};
  const auto param = torch::tensor({-0.2, -0.05, 0.05, 0.2});
  CHECK(torch::equal(r.gate(param, torch::ones({4})), torch::tensor({0.f, 1.f, 1.f, 1.f})));
  CHECK(torch::equal(r.gate(param, torch::zeros({4})), torch::tensor({0.f, 0.f, 0.f, 1.f})));
  CHECK(torch::equal(r.gate(param), torch::tensor({0.f, 0.f, 1.f, 1.f})));  // no state yet
  // A parameter wandering inside the band never flips the gate; without hysteresis it would
  // flip at every step.
  auto gate = r.gate(torch::tensor({0.5}));
  int flips = 0, stateless_flips = 0;
  for (int step = 0; step < 20; ++step) {
    const auto p = torch::tensor({step % 2 ? 0.05 : -0.05});
    const auto next = r.gate(p, gate);
    flips += !torch::equal(next, gate);
    stateless_flips += step > 0 && !torch::equal(r.gate(p), r.gate(torch::tensor({step % 2 ? -0.05 : 0.05})));
    gate = next;
  }
  CHECK(flips == 0);
  CHECK(gate.item<float>() == 1);
  CHECK(stateless_flips == 19);
  CHECK(r.gate(torch::tensor({-0.15}), gate).item<float>() == 0);  // out of the band: off
  // Gradient: softplus(param) times the incoming one, whatever the hard value.
  auto p = torch::tensor({-0.2, -0.05, 0.05, 0.2}, torch::requires_grad());
  const auto w = torch::tensor({1.0, -2.0, 3.0, 0.5});
  (r.gate(p, torch::ones({4})) * w).sum().backward();
  CHECK(close(p.grad(), w * torch::softplus(p.detach())));
  // Kept and removed entries start outside the band; a band that swallows them is refused.
  CHECK(torch::equal(r.kept(r.from_binary(torch::tensor({true, false}))), torch::tensor({true, false})));
  linearize::testing::expect_error([] { (void)relax::autorep{.band = 2}.from_binary(torch::ones({1})); },
                                   "band");
}

TEST_CASE("autorep's kept entries start staggered over (threshold + band, init], the first at init",
          "[autorep]") {
  // Under Adam masks move about lr per step whatever the penalty's size: masks that start
  // together cross together (pareto at 1%: 90% of the ReLUs in 10 steps, then collapse).
  const relax::autorep r{.threshold = 0.003, .band = 0.05, .init = 1.0};
  auto binary = torch::ones({2000});
  binary.index_put_({torch::indexing::Slice(1000, 1010)}, 0);
  const auto start = r.from_binary(binary.reshape({20, 100})).reshape({-1});
  const auto kept = start.index({binary.to(torch::kBool)}), removed = start.index({binary.eq(0)});
  CHECK(start[0].item<float>() == 1.0f);  // the mask geometry's travel: the farthest start
  CHECK((removed == -1.0f).all().item<bool>());
  CHECK((kept > 0.053).all().item<bool>());
  CHECK((kept <= 1.0).all().item<bool>());
  // Evenly spread: each tenth of the range holds a tenth of the entries, within 1%.
  const auto tenth = ((kept - 0.053) / (1 - 0.053) * 10).floor().clamp(0, 9).to(torch::kLong);
  const auto per_tenth = torch::bincount(tenth, {}, 10).to(torch::kDouble) / kept.numel();
  INFO("fractions per tenth: " << per_tenth);
  CHECK(((per_tenth - 0.1).abs() < 0.01).all().item<bool>());
  // stagger = 0: every kept entry at init, as before; a stagger outside [0, 1] is refused.
  CHECK((relax::autorep{.stagger = 0}.from_binary(torch::ones({50})) == 1.0f).all().item<bool>());
  linearize::testing::expect_error([] { (void)relax::autorep{.stagger = 1.5}.from_binary(torch::ones({1})); },
                                   "stagger 1.5");
}

TEST_CASE("density_hinge: the weight above the budget, nothing within it", "[autorep]") {
  const schedule::density_hinge h{.epochs = 3, .lambda = 140};
  scalars s;
  const weight_probe unused{};
  h.start(s, {.count = 1000, .total = 1000, .budget = 100}, unused);
  CHECK(s.at(penalty_weight_key) == Approx(0.14));
  h.after_step(s, {.count = 100, .total = 1000, .budget = 100});
  CHECK(s.at(penalty_weight_key) == 0);
  h.after_step(s, {.count = 101, .total = 1000, .budget = 100});
  CHECK(s.at(penalty_weight_key) == Approx(0.14));
  CHECK_FALSE(h.after_epoch(s, {.epoch = 1, .count = 50, .total = 1000, .budget = 100}));
  CHECK(h.after_epoch(s, {.epoch = 2, .count = 500, .total = 1000, .budget = 100}));
  // Measured: the probe's weight for the budget.
  const weight_probe probe{.thresholds = torch::tensor({5.0, 1.0, 3.0, 2.0}, torch::kDouble),
                           .relus = torch::tensor({1, 1, 1, 1}, torch::kLong)};
  scalars m;
  schedule::density_hinge{}.start(m, {.count = 4, .total = 4, .budget = 2}, probe);
  CHECK(m.at(penalty_weight_key) == Approx(4 * 2.0));  // pushes the two lowest, holds 5 and 3
  linearize::testing::expect_error([&] { schedule::density_hinge{.epochs = 0}.start(m); }, "epochs 0");
}

TEST_CASE("Slot gates travel in checkpoints (a hysteretic relaxation's state)", "[autorep]") {
  auto a = tiny_conv(3, 4, 0.0), b = tiny_conv(4, 4, 0.0);
  const auto gate = torch::randint(0, 2, {4, 6, 6}).to(torch::kFloat);
  a->relu->set_gate(gate);
  linearize::testing::temp_dir dir("autorep_gate");
  torch::optim::SGD opt(a->parameters(), 0.1);
  train::save_checkpoint(dir / "a.ckpt", *a, opt, {}, {});
  train::load_network(dir / "a.ckpt", *b);
  REQUIRE(b->relu->has_gate());
  CHECK(torch::equal(b->relu->gate(), gate));
  a->relu->clear_gate();
  train::save_checkpoint(dir / "a.ckpt", *a, opt, {}, {});
  train::load_network(dir / "a.ckpt", *b);
  CHECK_FALSE(b->relu->has_gate());
}

namespace {
auto autorep_method(int64_t epochs = 6) {
  return pipeline(relax::autorep{}, schedule::density_hinge{.epochs = epochs}, select::top_k{},
                  finetune::distill{.epochs = 1});
}
}  // namespace

TEST_CASE("AutoReP end to end: the search reaches the budget, top_k hits it exactly, polynomials "
          "train and export",
          "[autorep]") {
  auto net = tiny_conv(11, 4, 0.0);
  const auto teacher = net->copy();
  const auto result = run(autorep_method(), net, teacher, tiny_data(), budget(40), quick_options());
  CHECK(result.relu_count == 40);
  const MaskSet masks(*net);
  CHECK(masks.relu_count() == 40);
  CHECK(masks.polynomial_count() == 144 - 40);
  // The search itself brought the count to the budget without collapsing. Below it the hinge
  // lets go, and on this task more ReLUs still leave (measured: 116, 52, 19, 12, 9, 7 over the
  // six epochs, training accuracy 100% from the third): the polynomials, learning from the
  // identity, fit the stripes alone, so no task gradient calls them back; top_k puts back the
  // highest.
  int64_t last = -1;
  double last_accuracy = 0;
  for (const auto& row : result.history)
    if (row.phase == "search") {
      last = row.relu_count;
      last_accuracy = row.train_accuracy;
    }
  INFO("search ended at " << last << " ReLUs, training accuracy " << last_accuracy);
  CHECK(last <= 60);
  CHECK(last_accuracy >= 0.9);
  // The polynomial trained away from the identity it started at, and its parameters are the
  // network's.
  const auto poly = net->relu->replacement_as<PolynomialImpl>();
  REQUIRE(poly);
  CHECK_FALSE(torch::allclose(poly->c1, torch::ones({4})));
  CHECK(std::isfinite(result.test_accuracy_after_finetune));
  // Exported: ReLUs where the mask keeps them, the polynomial elsewhere, same outputs.
  const auto exported = io::pi_graph_of(*net, {1, 6, 6});
  CHECK(exported.relus == 40);
  CHECK(exported.polynomials == 104);
  CHECK(exported.max_difference < 1e-4);
}

TEST_CASE("A killed AutoReP run resumes to the same mask, weights and polynomials", "[autorep]") {
  int calls = 0;
  const auto method = [&](int kill_at) {
    // The polynomials fitted (fit_batches, not the default): the fit's images count once.
    return pipeline(relax::autorep{.fit_batches = 8},
                    linearize::testing::killed_at_step<schedule::density_hinge>{{.epochs = 4}, &calls, kill_at},
                    select::top_k{}, finetune::distill{.epochs = 1});
  };
  // Killed at step 13 of 24, between checkpoints (every 4 steps): the hysteresis state, the
  // hinge's weight and the polynomials all come from the checkpoint.
  const auto r = linearize::testing::run_killed_and_resumed(method, 13, calls, tiny_data(), 50, "autorep");
  CHECK(r.resumed.relu_count == 50);
  CHECK(r.resumed.images_forwarded == r.whole.images_forwarded);  // the polynomial fit's included
  REQUIRE(r.resumed_net->relu->replacement_as<PolynomialImpl>());
}
