// What replaces a linearized ReLU: a replacement written here, in the test file, composed into a
// network's slots (values, gradients, training, copies, clones, checkpoints, mask files), and the
// library's per-channel polynomial (values, finite-difference gradients, initialisation hook,
// counts in the PI report).
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/core/replace_linearized.hpp>
#include <linearize/core/replacement.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/pi/cost_report.hpp>
#include <linearize/train/checkpoint.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/trainer.hpp>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;
using linearize::testing::temp_dir;

namespace {

// ---- a user's replacement: a trainable scale per channel, r(x) = s[c] * x --------------------
// Linear in x, so free in private inference. It counts its forward passes, so that a test can
// see when a slot does not evaluate it.
struct ChannelScaleImpl : torch::nn::Cloneable<ChannelScaleImpl> {
  ChannelScaleImpl(int64_t channels, int64_t sample_dims, double init, torch::TensorOptions options)
      : channels(channels), sample_dims(sample_dims), init(init), options(options) {
    reset();
  }
  void reset() override { s = register_parameter("s", torch::full({channels}, init, options)); }
  torch::Tensor forward(const torch::Tensor& x) {
    ++calls;
    std::vector<int64_t> view(static_cast<size_t>(sample_dims), 1);
    view[0] = channels;
    return s.view(view) * x;
  }
  [[nodiscard]] replacement_cost cost() const { return replacement_cost::linear; }

  int64_t channels, sample_dims;
  double init;
  torch::TensorOptions options;
  torch::Tensor s;
  int calls = 0;
};

// Its spec: the small value replace_linearized takes.
struct channel_scale {
  double init = 1;
  [[nodiscard]] std::shared_ptr<ChannelScaleImpl> make(const replacement_site& site) const {
    return std::make_shared<ChannelScaleImpl>(site.channels(), static_cast<int64_t>(site.shape.size()),
                                              init, site.options);
  }
};
static_assert(replacement_spec<channel_scale>);
static_assert(replacement_spec<polynomial_replacement>);
static_assert(replacement_module<ChannelScaleImpl> && replacement_module<PolynomialImpl>);
static_assert(!replacement_module<torch::nn::LinearImpl>);  // no cost()
static_assert(!replacement_spec<int>);

// A spec whose module returns the wrong shape.
struct FlattenImpl : torch::nn::Cloneable<FlattenImpl> {
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& x) { return x.flatten(); }
  [[nodiscard]] replacement_cost cost() const { return replacement_cost::linear; }
};
struct flatten_spec {
  [[nodiscard]] std::shared_ptr<FlattenImpl> make(const replacement_site&) const {
    return std::make_shared<FlattenImpl>();
  }
};

std::shared_ptr<ChannelScaleImpl> scale_of(const ReluSlot& slot) {
  auto s = slot->replacement_as<ChannelScaleImpl>();
  REQUIRE(s);
  return s;
}

train::options quiet_run(int64_t epochs = 1) {
  train::options o;
  o.epochs = epochs;
  o.batch_size = 16;
  o.optimizer = train::sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 0};
  o.progress.mode = train::progress_mode::silent;
  return o;
}

}  // namespace

TEST_CASE("a replacement written here: a = 1 gives relu, a = 0 the replacement, in between both", "[slot][replacement]") {
  torch::manual_seed(11);
  ReluSlot slot(slot_options{.shape = {3, 4, 4}});
  CHECK_FALSE(slot->has_replacement());
  slot->set_replacement(channel_scale{});
  REQUIRE(slot->has_replacement());
  auto scale = scale_of(slot);
  {
    torch::NoGradGuard no_grad;
    scale->s.copy_(torch::tensor({0.5, 2.0, -1.0}));
  }
  CHECK(slot->named_parameters().contains("replacement.s"));
  const auto x = torch::randn({5, 3, 4, 4});
  const auto scaled = x * torch::tensor({0.5, 2.0, -1.0}).view({3, 1, 1});

  CHECK(close(slot(x), torch::relu(x)));  // soft mask of ones: every ReLU kept
  slot->harden(torch::ones({3, 4, 4}));
  const int before = scale->calls;
  CHECK(close(slot(x), torch::relu(x)));
  CHECK(scale->calls == before);  // a fully kept slot does not evaluate the replacement
  slot->harden(torch::zeros({3, 4, 4}));
  CHECK(close(slot(x), scaled));  // fully linearized: the replacement alone
  const auto half = torch::rand({3, 4, 4}).gt(0.5);
  slot->harden(half);
  CHECK(close(slot(x), torch::where(half, torch::relu(x), scaled)));
  slot->soften();
  {
    torch::NoGradGuard no_grad;
    slot->mask().fill_(0.25);
  }
  CHECK(close(slot(x), 0.25 * torch::relu(x) + 0.75 * scaled));
  // A relaxation's gate takes the mask's place, replacement included.
  slot->set_gate(torch::zeros({3, 4, 4}));
  CHECK(close(slot(x), scaled));
  slot->clear_gate();

  // Back to the identity: the module goes, the fused masked ReLU is back.
  slot->set_replacement(identity_replacement{});
  CHECK_FALSE(slot->has_replacement());
  CHECK_FALSE(slot->replacement());
  CHECK_FALSE(slot->named_parameters().contains("replacement.s"));
  CHECK(close(slot(x), 0.25 * torch::relu(x) + 0.75 * x));
}

TEST_CASE("a replacement's parameters get gradients, with the mask's and the input's", "[slot][replacement]") {
  torch::manual_seed(12);
  ReluSlot slot(slot_options{.shape = {2, 3}, .init = 0.4});
  slot->set_replacement(channel_scale{.init = 1.5});
  auto x = torch::randn({4, 2, 3}, torch::requires_grad());
  const auto w = torch::randn({4, 2, 3});
  (slot(x) * w).sum().backward();
  const auto xd = x.detach(), s = scale_of(slot)->s.detach().view({2, 1});
  const double a = 0.4;
  // y = a relu(x) + (1 - a) s x
  CHECK(close(x.grad(), w * (a * xd.ge(0).to(torch::kFloat) + (1 - a) * s)));
  CHECK(close(slot->mask().grad(), (w * (torch::relu(xd) - s * xd)).sum(0)));
  CHECK(close(scale_of(slot)->s.grad(), ((1 - a) * w * xd).sum(std::vector<int64_t>{0, 2})));
  // The convention at x = 0: relu's slope is 1 there.
  auto zero = torch::zeros({1, 2, 3}, torch::requires_grad());
  slot(zero).sum().backward();
  CHECK(close(zero.grad(), (a + (1 - a) * s).expand({1, 2, 3})));
}

TEST_CASE("a replacement trains with the weights, and copies, clones and checkpoints carry it", "[slot][replacement][train]") {
  const auto data = testing::stripes(64, 21);
  temp_dir dir("replacement_train");
  auto net = testing::tiny_conv(5, 4, 0.0);
  CHECK(replace_linearized(*net, channel_scale{}) == 1);
  net->relu->harden(torch::rand({4, 6, 6}).gt(0.7));  // most positions linearized
  const auto start = scale_of(net->relu)->s.detach().clone();

  // The trainer builds its optimizer over net.parameters(): the scale is among them.
  auto opts = quiet_run(2);
  opts.checkpoint = dir / "run.ckpt";
  train::fit(net, data, opts);
  const auto trained = scale_of(net->relu)->s.detach().clone();
  INFO("scale before " << start << ", after " << trained);
  CHECK_FALSE(torch::equal(trained, start));
  CHECK(MaskSet(*net).polynomial_count() == 0);  // linear: free in private inference

  // copy(): the copy is built without the replacement and gets it from copy_state.
  auto copy = net->copy();
  const MaskSet copied(*copy);
  REQUIRE(copied[0].has_replacement());
  const auto copy_scale = copied[0].replacement_as<ChannelScaleImpl>();
  REQUIRE(copy_scale);
  CHECK(torch::equal(copy_scale->s, trained));
  CHECK(copy_scale->s.data_ptr() != scale_of(net->relu)->s.data_ptr());
  CHECK(copied[0].is_hard());
  net->eval();
  copy->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({3, 1, 6, 6});
  CHECK(close(copy->forward(x), net->forward(x)));

  // clone(): the slot's own Cloneable copy.
  auto cloned = std::dynamic_pointer_cast<ReluSlotImpl>(net->relu->clone());
  REQUIRE(cloned);
  const auto clone_scale = cloned->replacement_as<ChannelScaleImpl>();
  REQUIRE(clone_scale);
  CHECK(torch::equal(clone_scale->s, trained));
  CHECK(clone_scale->s.data_ptr() != scale_of(net->relu)->s.data_ptr());
  const auto act = torch::randn({2, 4, 6, 6});
  CHECK(close(cloned->forward(act), net->relu(act)));

  // The checkpoint restores the scale into a fresh network given the same kind of replacement.
  auto fresh = testing::tiny_conv(99, 4, 0.0);
  replace_linearized(*fresh, channel_scale{});
  const auto saved = train::checkpoint::read(opts.checkpoint);
  saved.restore_network(*fresh);
  CHECK(torch::equal(scale_of(fresh->relu)->s, trained));
  CHECK(testing::same_state(*fresh, *net));
  // Without the replacement the architecture differs, and the message names it.
  auto plain = testing::tiny_conv(99, 4, 0.0);
  expect_error([&] { saved.restore_network(*plain); }, "relu.replacement.s");
}

TEST_CASE("mask files do not hold replacements: they save and load as before", "[slot][replacement][mask_set]") {
  temp_dir dir("replacement_mask_file");
  auto net = testing::tiny_conv(6, 4, 0.0);
  const auto architecture = MaskSet(*net).architecture();
  replace_linearized(*net, polynomial_replacement{});
  const MaskSet masks(*net);
  CHECK(masks.architecture() == architecture);
  auto flat = torch::rand({masks.entries()}).gt(0.5);
  masks.harden(flat);
  masks.save(dir / "net.mask");
  auto other = testing::tiny_conv(7, 4, 0.0);  // no replacement: the same mask file applies
  const MaskSet other_masks(*other);
  other_masks.load(dir / "net.mask");
  CHECK(torch::equal(other_masks.binary(), flat));
  replace_linearized(*other, polynomial_replacement{});
  other_masks.load(dir / "net.mask");
  CHECK(torch::equal(other_masks.binary(), flat));
}

TEST_CASE("a slot that learns its shape builds its replacement on the first forward", "[slot][replacement]") {
  ReluSlot slot;
  slot->set_replacement(polynomial_replacement{.init = {.c2 = 0.5, .c1 = 0, .c0 = 1}});
  CHECK(slot->has_replacement());
  CHECK_FALSE(slot->replacement());  // shape unknown: nothing built yet
  CHECK(slot->named_parameters().is_empty());
  const auto x = torch::randn({2, 5, 3, 3});
  CHECK(close(slot(x), torch::relu(x)));
  const auto poly = slot->replacement_as<PolynomialImpl>();
  REQUIRE(poly);
  CHECK(poly->channels() == 5);
  CHECK(slot->named_parameters().contains("replacement.c2"));
  slot->harden(torch::zeros({5, 3, 3}));
  CHECK(close(slot(x), 0.5 * x * x + 1));
}

TEST_CASE("replacements: bad input is a named error", "[slot][replacement]") {
  ReluSlot slot(slot_options{.shape = {2, 3}});
  slot->set_replacement(flatten_spec{});
  slot->harden(torch::zeros({2, 3}));
  expect_error([&] { slot(torch::randn({4, 2, 3})); }, "returned shape [24] for input of shape [4, 2, 3]");
  expect_error([] { replace_linearized(*torch::nn::Sequential(torch::nn::Linear(2, 2)), polynomial_replacement{}); },
               "contains no ReluSlot");
  expect_error([] { Polynomial(0, 3); }, "0 channels");
  expect_error([] { Polynomial(2, 1, polynomial_coefficients{.c2 = NAN}); }, "expected finite values");
  Polynomial p(3, 3);
  expect_error([&] { p(torch::randn({2, 4, 5, 5})); }, "input of shape [2, 4, 5, 5]; expected [batch, 3, ...]");
  expect_error([&] { p->set_coefficients(torch::ones({2}), torch::ones({3}), torch::ones({3})); },
               "2 coefficient values; expected 3 (one per channel) or 1");
}

// ---- the library's polynomial ------------------------------------------------------------------

TEST_CASE("Polynomial: c2 x^2 + c1 x + c0 per channel, identity until set", "[slot][replacement][polynomial]") {
  torch::manual_seed(13);
  Polynomial p(3, 3);
  const auto x = torch::randn({2, 3, 4, 5});
  CHECK(close(p(x), x));  // initialised to the identity
  const auto c2 = torch::tensor({0.5f, -1.0f, 0.0f}), c1 = torch::tensor({1.0f, 0.25f, -2.0f}),
             c0 = torch::tensor({0.0f, 3.0f, -0.5f});
  p->set_coefficients(c2, c1, c0);
  for (int64_t c = 0; c < 3; ++c) {
    const auto xc = x.select(1, c);
    const auto want = c2[c] * xc * xc + c1[c] * xc + c0[c];
    CHECK(close(p(x).select(1, c), want));
  }
  // One value for every channel; 2-d activations use the features as channels.
  Polynomial q(4, 1);
  q->set_coefficients(torch::tensor(1.0), torch::tensor(0.0), torch::tensor(-1.0));
  const auto f = torch::randn({6, 4});
  CHECK(close(q(f), f * f - 1));
  // Clones have their own coefficients.
  auto copy = std::dynamic_pointer_cast<PolynomialImpl>(p->clone());
  REQUIRE(copy);
  CHECK(torch::equal(copy->c2, p->c2));
  CHECK(copy->c2.data_ptr() != p->c2.data_ptr());
  CHECK(copy->cost() == replacement_cost::polynomial);
}

TEST_CASE("polynomial replacement: putting it on a network changes nothing until it trains", "[slot][replacement][polynomial]") {
  torch::manual_seed(14);
  auto net = testing::tiny_conv(8, 4, 0.0);
  net->eval();
  net->relu->harden(torch::rand({4, 6, 6}).gt(0.5));
  const auto x = torch::randn({3, 1, 6, 6});
  torch::Tensor before;
  {
    torch::NoGradGuard no_grad;
    before = net->forward(x);
  }
  replace_linearized(net, polynomial_replacement{});
  torch::NoGradGuard no_grad;
  CHECK(close(net->forward(x), before));
}

TEST_CASE("polynomial replacement: gradients match finite differences (double)", "[slot][replacement][polynomial]") {
  torch::manual_seed(15);
  ReluSlot slot(slot_options{.shape = {3, 2, 2}});
  slot->to(torch::kDouble);
  slot->set_replacement(polynomial_replacement{});
  const auto poly = slot->replacement_as<PolynomialImpl>();
  REQUIRE(poly);
  CHECK(poly->c2.scalar_type() == torch::kDouble);  // built with the mask's dtype
  {
    torch::NoGradGuard no_grad;
    // Gates at 0, at 1 and in between; coefficients away from the identity.
    slot->mask().copy_(torch::tensor({0.0, 1.0, 0.3, 0.7, 0.0, 1.0, 0.5, 0.2, 0.9, 1.0, 0.0, 0.4}, torch::kDouble).view({3, 2, 2}));
    poly->set_coefficients(torch::tensor({0.3, -0.2, 0.5}, torch::kDouble), torch::tensor({0.8, 1.2, -0.4}, torch::kDouble),
                           torch::tensor({0.1, -0.3, 0.2}, torch::kDouble));
  }
  auto x = torch::randn({2, 3, 2, 2}, torch::kDouble);
  x = x + x.sign() * 0.1;  // away from the kink at 0
  const auto w = torch::randn({2, 3, 2, 2}, torch::kDouble);
  const auto loss = [&] {
    torch::NoGradGuard no_grad;
    return (slot(x) * w).sum().item<double>();
  };
  auto xg = x.clone().requires_grad_(true);
  (slot(xg) * w).sum().backward();
  const double eps = 1e-6;
  // Perturbs one value of `t` in place and returns the central difference of the loss.
  const auto numeric = [&](torch::Tensor t, int64_t i) {
    auto flat = t.view({-1});
    const double keep = flat[i].item<double>();
    torch::NoGradGuard no_grad;
    flat[i] = keep + eps;
    const double up = loss();
    flat[i] = keep - eps;
    const double down = loss();
    flat[i] = keep;
    return (up - down) / (2 * eps);
  };
  for (int64_t i = 0; i < x.numel(); ++i)
    CHECK(xg.grad().view({-1})[i].item<double>() == Approx(numeric(x, i)).margin(1e-6));
  for (int64_t i = 0; i < slot->mask().numel(); ++i)
    CHECK(slot->mask().grad().view({-1})[i].item<double>() == Approx(numeric(slot->mask().detach(), i)).margin(1e-6));
  for (auto* c : {&poly->c2, &poly->c1, &poly->c0}) {
    REQUIRE(c->grad().defined());
    for (int64_t i = 0; i < 3; ++i)
      CHECK(c->grad()[i].item<double>() == Approx(numeric(c->detach(), i)).margin(1e-6));
  }
}

TEST_CASE("polynomial positions: counted per slot and charged by the PI cost model", "[slot][replacement][polynomial][pi]") {
  // Three slots: 2x4x4 = 32 (element), 4x2x2 = 16 (channel masks), 10 (element).
  auto net = torch::nn::Sequential(
      ReluSlot(slot_options{.shape = {2, 4, 4}, .stage = "stage1", .layer = 0}),
      ReluSlot(slot_options{.grain = granularity::channel, .shape = {4, 2, 2}, .stage = "stage1", .layer = 1}),
      ReluSlot(slot_options{.shape = {10}, .stage = "head", .layer = 0}));
  const MaskSet masks(net);
  auto flat = torch::zeros({masks.entries()}, torch::kBool);
  flat.slice(0, 0, 5).fill_(true);  // slot 0 keeps 5 of 32
  flat[32] = true;                  // slot 1 keeps one channel: 4 of 16
  masks.harden(flat);               // slot 2 keeps nothing
  const auto model = pi::delphi();
  const auto identity = pi::estimate(masks, model);
  CHECK(identity.polynomials == 0);
  CHECK(pi::to_string(identity).find("polynomial") == std::string::npos);

  replace_linearized(net, polynomial_replacement{});
  CHECK(masks.polynomial_count() == 27 + 12 + 10);
  const auto rows = masks.per_slot();
  CHECK(rows[0].polynomial == 27);
  CHECK(rows[1].polynomial == 12);
  CHECK(rows[2].polynomial == 10);
  CHECK(masks.per_stage()[0].polynomial == 39);
  const auto r = pi::estimate(masks, model);
  CHECK(r.relus_kept == 9);
  CHECK(r.polynomials == 49);
  CHECK(r.slots[2].polynomials == 10);
  CHECK(r.slots[2].seconds == Approx(10 * model.seconds_per_polynomial));
  CHECK(r.seconds == model.latency(9, 0, 49));
  CHECK(r.bytes == Approx(9 * 1184.0 + 49 * 32.0));
  // A polynomial is far cheaper than a ReLU, but not free.
  CHECK(model.seconds_per_polynomial > 0);
  CHECK(model.seconds_per_polynomial < model.seconds_per_relu / 10);
  CHECK(r.seconds > identity.seconds);

  const auto text = pi::to_string(r);
  INFO(text);
  CHECK(text.find("0.61 us and 32 B per polynomial") != std::string::npos);
  CHECK(text.find("polynomials") != std::string::npos);
  const auto total = text.substr(text.find("\ntotal"));
  CHECK(total.find("9 /    58   15.5%           49") != std::string::npos);
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  size_t width = 0;
  while (std::getline(lines, line)) {  // columns line up
    if (width == 0) width = line.size();
    CHECK(line.size() == width);
  }

  // Soft gates strictly between 0 and 1 need both the ReLU and the polynomial.
  auto& head = masks[2];
  head.soften();
  {
    torch::NoGradGuard no_grad;
    head.mask().copy_(torch::tensor({0.0, 0.5, 1.0, 1.0, 0.0, 0.0, 0.2, 1.0, 1.0, 1.0}));
  }
  CHECK(head.relu_count() == 7);
  CHECK(head.polynomial_count() == 5);
  expect_error([&] { (void)pi::estimate(std::vector<relu_tally>{{"x", "", -1, 4, 1, 5}}, model); },
               "slot 'x' has 5 polynomial positions of 4");
  expect_error([&] { (void)model.latency(1, 0, -2); }, "polynomial count -2; expected >= 0");
}
