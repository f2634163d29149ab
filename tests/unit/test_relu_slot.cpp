// The fused masked-ReLU kernel and the ReluSlot module: results and gradients equal the plain
// formula and finite differences, for every granularity, soft and hard, odd sizes, batch 1,
// non-contiguous input and double; bad input is a linearize::error naming the value.
#include "test_support.hpp"

#include <linearize/core/kernels.hpp>
#include <linearize/core/relu_slot.hpp>

#include <boost/core/demangle.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <typeinfo>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;

namespace {

// Gate of `g` granularity for per-sample shape `shape`, flat.
int64_t gate_entries(granularity g, const std::vector<int64_t>& shape) {
  int64_t all = 1;
  for (auto d : shape) all *= d;
  return g == granularity::element ? all : g == granularity::channel ? shape[0] : 1;
}

torch::Tensor make_gate(int64_t n, bool hard, torch::ScalarType dtype) {
  // Soft SNL masks are raw parameters: any real value, not just [0, 1].
  auto a = hard ? torch::randint(0, 2, {n}).to(dtype) : torch::rand({n}, dtype) * 2 - 0.5;
  return a;
}

struct grads {
  torch::Tensor y, dx, da;
};

grads run(const torch::Tensor& x0, const torch::Tensor& a0, const torch::Tensor& g, bool fused,
          bool gate_grad) {
  auto x = x0.detach().clone().requires_grad_(true);
  auto a = a0.detach().clone().requires_grad_(gate_grad);
  auto y = fused ? kernels::masked_relu(x, a) : kernels::composed_masked_relu(x, a);
  y.backward(g);
  return {y.detach(), x.grad(), gate_grad ? a.grad() : torch::Tensor()};
}

void compare_fused_with_composed(const torch::Tensor& x, granularity gran, bool hard,
                                 double rtol, double atol) {
  const std::vector<int64_t> shape(x.sizes().begin() + 1, x.sizes().end());
  auto a = make_gate(gate_entries(gran, shape), hard, x.scalar_type());
  auto g = torch::randn(x.sizes(), x.options());
  REQUIRE(kernels::fused_applies(x, a));
  const auto f = run(x, a, g, true, !hard);
  const auto c = run(x, a, g, false, !hard);
  CHECK(close(f.y, c.y, rtol, atol));
  CHECK(close(f.dx, c.dx, rtol, atol));
  if (!hard) CHECK(close(f.da, c.da, rtol, 1e-4));
}

}  // namespace

TEST_CASE("fused masked ReLU equals the plain formula", "[kernels]") {
  torch::manual_seed(1);
  const std::vector<std::vector<int64_t>> shapes = {
      {5, 3, 7, 9},    // odd: no dimension a multiple of the vector width
      {1, 3, 7, 9},    // batch 1
      {4, 16, 8, 8},   // multiples of the vector width
      {3, 11},         // 2-d activation (channel = feature)
      {2, 64, 32, 32}, // large enough to be split across threads
      {6, 5, 4, 4},    // batch not a multiple of the kernel's 4-sample blocks
      {1, 16, 64, 64}, // batch 1 with enough entries that the entries are split across threads
  };
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const auto& s : shapes) {
      for (auto gran : {granularity::element, granularity::channel, granularity::layer}) {
        for (bool hard : {false, true}) {
          INFO("dtype " << dtype << " shape " << torch::IntArrayRef(s) << " granularity "
                        << to_string(gran) << (hard ? " hard" : " soft"));
          auto x = torch::randn(s, torch::TensorOptions().dtype(dtype));
          compare_fused_with_composed(x, gran, hard, 1e-5, 1e-5);
        }
      }
    }
  }
}

TEST_CASE("fused masked ReLU streams large outputs past the cache, same values", "[kernels]") {
  // Outputs of at least detail::stream_bytes take the non-temporal-store path; batch 6 also
  // leaves two samples for the ordinary path after one 4-sample block.
  torch::manual_seed(4);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    const int64_t bytes = torch::elementSize(dtype);
    const int64_t entries = kernels::detail::stream_bytes / (6 * bytes);
    auto x = torch::randn({6, entries}, torch::TensorOptions().dtype(dtype));
    REQUIRE(x.numel() * bytes >= kernels::detail::stream_bytes);
    auto a = make_gate(entries, false, dtype);
    torch::NoGradGuard no_grad;
    const auto y = kernels::masked_relu(x, a), expected = x - a * x.clamp_max(0);
    INFO("dtype " << dtype << ", largest difference " << (y - expected).abs().max().item<double>());
    CHECK(close(y, expected, 1e-6, 1e-6));  // not bit-equal: the kernel may fuse multiply-add
  }
}

TEST_CASE("fused masked ReLU handles non-contiguous input", "[kernels]") {
  torch::manual_seed(2);
  auto base = torch::randn({3, 9, 7, 5});
  auto x = base.permute({0, 3, 2, 1});  // shape [3, 5, 7, 9], not contiguous
  REQUIRE_FALSE(x.is_contiguous());
  for (auto gran : {granularity::element, granularity::channel, granularity::layer})
    for (bool hard : {false, true}) compare_fused_with_composed(x, gran, hard, 1e-5, 1e-5);
}

TEST_CASE("fused gradients match finite differences (double)", "[kernels]") {
  torch::manual_seed(3);
  const double eps = 1e-6;
  for (auto gran : {granularity::element, granularity::channel, granularity::layer}) {
    INFO("granularity " << to_string(gran));
    // Values kept away from the kink at 0, where the derivative jumps.
    auto x = torch::randn({2, 3, 4, 5}, torch::kDouble);
    x = x + x.sign() * 0.1;
    const std::vector<int64_t> shape{3, 4, 5};
    auto a = make_gate(gate_entries(gran, shape), false, torch::kDouble);
    auto w = torch::randn(x.sizes(), torch::kDouble);
    auto loss = [&](const torch::Tensor& xx, const torch::Tensor& aa) {
      return (kernels::masked_relu(xx, aa) * w).sum().item<double>();
    };
    const auto analytic = run(x, a, w, true, true);
    auto xf = x.clone(), af = a.clone();
    auto* xp = xf.data_ptr<double>();
    auto* ap = af.data_ptr<double>();
    for (int64_t i = 0; i < xf.numel(); ++i) {
      const double keep = xp[i];
      xp[i] = keep + eps;
      const double up = loss(xf, af);
      xp[i] = keep - eps;
      const double down = loss(xf, af);
      xp[i] = keep;
      CHECK(analytic.dx.reshape({-1})[i].item<double>() == Approx((up - down) / (2 * eps)).margin(1e-6));
    }
    for (int64_t j = 0; j < af.numel(); ++j) {
      const double keep = ap[j];
      ap[j] = keep + eps;
      const double up = loss(xf, af);
      ap[j] = keep - eps;
      const double down = loss(xf, af);
      ap[j] = keep;
      CHECK(analytic.da[j].item<double>() == Approx((up - down) / (2 * eps)).margin(1e-6));
    }
  }
}

TEST_CASE("other dtypes fall back to plain ops", "[kernels]") {
  auto x = torch::randn({2, 3, 4}).to(torch::kBFloat16);
  auto a = torch::tensor({1.0, 0.0, 1.0}).to(torch::kBFloat16);
  CHECK_FALSE(kernels::fused_applies(x, a));
  auto y = kernels::masked_relu(x, a);
  auto expect = kernels::composed_masked_relu(x.to(torch::kFloat), a.to(torch::kFloat));
  CHECK(close(y, expect, 1e-2, 1e-2));
}

namespace {

// The convention of kernels.hpp, written out element by element, as the expected values.
double conv_y(double x, double a) {
  if (std::isnan(x) || x >= 0) return x;
  return a == 1 ? 0.0 : (1 - a) * x;
}
double conv_dx(double x, double a, double g) { return x < 0 ? g * (1 - a) : g; }
double conv_da_term(double x, double g) { return std::isnan(x) ? NAN : -g * (x < 0 ? x : 0.0); }

// One row per sample, one column per case: zero, negative zero, NaN, +inf, -inf, and finite
// values either side of 0. The second row holds finite values only, so that each column's mask
// gradient sums one special value with a finite one.
torch::Tensor special_inputs(torch::ScalarType dtype) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  return torch::tensor({0.0, -0.0, nan, inf, -inf, 1.5, -2.0, 0.0, 0.5, -1.0, 2.0, -0.5, 0.25, -4.0},
                       torch::kDouble)
      .reshape({2, 7})
      .to(dtype);
}

struct path_result {
  torch::Tensor y, dx, da;  // da undefined where the path has no mask gradient (hard slots)
};

// Runs `f` (x, gate) -> y with x and, when `gate_grad`, the gate requiring gradients; the
// incoming gradient is g = 1 + column index / 4.
path_result run_path(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& f,
                     const torch::Tensor& x0, const torch::Tensor& a0, bool gate_grad) {
  auto x = x0.detach().clone().requires_grad_(true);
  auto a = a0.detach().clone().requires_grad_(gate_grad);
  const auto y = f(x, a);
  const auto g = (1 + torch::arange(7, torch::kDouble) / 4).expand({2, 7}).to(x.scalar_type());
  y.backward(g);
  return {y.detach().to(torch::kDouble), x.grad().to(torch::kDouble),
          gate_grad ? a.grad().to(torch::kDouble) : torch::Tensor()};
}

// Values equal, NaN where NaN, infinities of the same sign.
bool same_values(const torch::Tensor& got, const torch::Tensor& want, double tol) {
  return got.sizes() == want.sizes() &&
         torch::allclose(got.to(torch::kDouble), want, tol, tol, /*equal_nan=*/true);
}

void check_convention(const path_result& r, const torch::Tensor& x, double a, double tol) {
  const auto xd = x.to(torch::kDouble);
  auto y = torch::empty_like(xd), dx = torch::empty_like(xd), da = torch::zeros({7}, torch::kDouble);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t m = 0; m < 7; ++m) {
      const double v = xd[n][m].item<double>(), g = 1 + static_cast<double>(m) / 4;
      y[n][m] = conv_y(v, a);
      dx[n][m] = conv_dx(v, a, g);
      da[m] += conv_da_term(v, g);
    }
  INFO("x " << xd << "\ny " << r.y << "\nexpected " << y);
  CHECK(same_values(r.y, y, tol));
  INFO("dx " << r.dx << "\nexpected " << dx);
  CHECK(same_values(r.dx, dx, tol));
  if (r.da.defined()) {
    INFO("da " << r.da << "\nexpected " << da);
    CHECK(same_values(r.da, da, tol));
  }
}

}  // namespace

TEST_CASE("every path follows one convention at x = 0, NaN and +-inf", "[kernels]") {
  // Gate values: linearized, soft, kept, and beyond 1 (SNL's raw mask parameters are unbounded).
  for (double a : {0.0, 0.3, 1.0, 1.7}) {
    INFO("gate " << a);
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      INFO("dtype " << dtype);
      const auto x = special_inputs(dtype);
      const auto gate = torch::full({7}, a, dtype);
      REQUIRE(kernels::fused_applies(x, gate));
      const auto fused = run_path(kernels::masked_relu, x, gate, true);
      {
        INFO("fused");
        check_convention(fused, x, a, 1e-6);
      }
      {
        INFO("plain ops, called directly");
        check_convention(run_path(kernels::plain_masked_relu, x, gate, true), x, a, 1e-6);
      }
      {
        // One gate for the whole layer takes the fused kernel's span loops.
        INFO("fused, one gate for the layer");
        const auto layer = [](const torch::Tensor& xx, const torch::Tensor& g) {
          return kernels::masked_relu(xx, g.slice(0, 0, 1));
        };
        const auto r = run_path(layer, x, gate, true);
        check_convention({r.y, r.dx, torch::Tensor()}, x, a, 1e-6);
        CHECK(same_values(r.da.slice(0, 0, 1), fused.da.sum().reshape({1}), 1e-6));
      }
    }
    {
      INFO("plain ops through masked_relu: bfloat16 is not fused");
      const auto x = special_inputs(torch::kBFloat16);
      const auto gate = torch::full({7}, a, torch::kBFloat16);
      REQUIRE_FALSE(kernels::fused_applies(x, gate));
      check_convention(run_path(kernels::masked_relu, x, gate, true), x, a, 1e-2);
    }
    for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16}) {
      INFO("slots, dtype " << dtype);
      const auto x = special_inputs(dtype);
      const auto slot_path = [&](bool hard) {
        return [&, hard](const torch::Tensor& xx, const torch::Tensor&) {
          ReluSlot slot(slot_options{.shape = {7}, .init = a});
          if (hard) slot->harden(torch::full({7}, a));
          return slot(xx);
        };
      };
      const auto gate = torch::full({7}, a, dtype);
      if (a == 0.0 || a == 1.0) {
        INFO("hard slot, fully " << (a == 1 ? "kept (relu)" : "linearized (identity)"));
        check_convention(run_path(slot_path(true), x, gate, false), x, a, dtype == torch::kBFloat16 ? 1e-2 : 1e-6);
      }
      INFO("soft slot");
      ReluSlot soft(slot_options{.shape = {7}, .init = a});
      auto xs = x.detach().clone().requires_grad_(true);
      const auto y = soft(xs);
      y.backward((1 + torch::arange(7, torch::kDouble) / 4).expand({2, 7}).to(dtype));
      check_convention({y.detach().to(torch::kDouble), xs.grad().to(torch::kDouble),
                        soft->mask().grad().to(torch::kDouble)},
                       x, a, dtype == torch::kBFloat16 ? 1e-2 : 1e-5);
    }
  }
}

TEST_CASE("kernels::relu: relu's values, slope 1 at 0, on every path", "[kernels]") {
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16}) {
    INFO("dtype " << dtype);
    const auto x = special_inputs(dtype);
    const auto r = run_path([](const torch::Tensor& xx, const torch::Tensor&) { return kernels::relu(xx); },
                            x, torch::ones({7}, dtype), false);
    check_convention(r, x, 1.0, dtype == torch::kBFloat16 ? 1e-2 : 1e-6);
    torch::NoGradGuard no_grad;
    CHECK(same_values(kernels::relu(x).to(torch::kDouble), r.y, 0));
  }
  // Non-contiguous input, large enough to be split across threads.
  auto base = torch::randn({8, 40, 33, 17});
  base.view({-1}).slice(0, 0, 1000).zero_();  // ties
  auto x = base.permute({0, 3, 2, 1}).requires_grad_(true);
  REQUIRE_FALSE(x.is_contiguous());
  const auto g = torch::randn(x.sizes());
  kernels::relu(x).backward(g);
  CHECK(torch::equal(x.grad(), torch::where(x.detach() < 0, torch::zeros_like(g), g)));
}

TEST_CASE("the fused kernel's namespace is named after the SIMD implementation it uses", "[kernels]") {
  // ODR safety: two translation units built for different capabilities must not share the
  // kernel's symbols. at::vec's own inline namespace is its CPU_CAPABILITY (AVX512, AVX2, or
  // DEFAULT / the bare macro name without one); ours must follow it.
  const std::string kernel = boost::core::demangle(typeid(kernels::detail::fused_masked_relu).name());
  const std::string relu = boost::core::demangle(typeid(kernels::detail::fused_relu).name());
  const std::string vec = boost::core::demangle(typeid(at::vec::Vectorized<float>).name());
  INFO(kernel << " / " << vec << " / simd_name() " << kernels::simd_name());
  const std::string simd = kernels::simd_name();
  std::string isa = simd.substr(0, simd.find(' '));
  if (vec.find("at::vec::AVX512::") != std::string::npos) {
    CHECK(isa == "avx512");
  } else if (vec.find("at::vec::AVX2::") != std::string::npos) {
    CHECK(isa == "avx2");
  } else {
    CHECK(isa == "scalar");
  }
  CHECK(kernel.find("linearize::kernels::" + isa + "::detail::") == 0);
  CHECK(relu.find("linearize::kernels::" + isa + "::detail::") == 0);
#if defined(CPU_CAPABILITY_AVX512)
  static_assert(std::is_same_v<kernels::detail::fused_masked_relu, kernels::avx512::detail::fused_masked_relu>);
#elif defined(CPU_CAPABILITY_AVX2)
  static_assert(std::is_same_v<kernels::detail::fused_masked_relu, kernels::avx2::detail::fused_masked_relu>);
#endif
  // What does not depend on the capability is shared by all.
  CHECK(boost::core::demangle(typeid(kernels::plain::masked_relu_function).name()) ==
        "linearize::kernels::plain::masked_relu_function");
}

TEST_CASE("gate layout errors name the sizes", "[kernels]") {
  expect_error([] { kernels::masked_relu(torch::randn({2, 3, 4}), torch::ones({5})); },
               "gate of 5 entries does not divide the 12 values");
  expect_error([] { kernels::masked_relu(torch::tensor(1.0), torch::ones({1})); },
               "batch dimension");
}

TEST_CASE("ReluSlot: ReLU at a = 1, identity at a = 0, counts per granularity", "[slot]") {
  auto x = torch::randn({4, 3, 5, 5});
  for (auto gran : {granularity::element, granularity::channel, granularity::layer}) {
    INFO("granularity " << to_string(gran));
    ReluSlot slot(slot_options{.grain = gran, .shape = {3, 5, 5}});
    CHECK(slot->total_relus() == 75);
    CHECK(slot->relu_count() == 75);
    CHECK(slot->mask_entries() * slot->relus_per_entry() == 75);
    CHECK(close(slot(x), torch::relu(x)));
    slot->harden(torch::zeros_like(slot->mask()));
    CHECK(slot->is_hard());
    CHECK(slot->relu_count() == 0);
    auto y = slot(x);
    CHECK(y.data_ptr() == x.data_ptr());  // fully linearized: no pass over the data at all
    slot->harden(torch::ones_like(slot->mask()));
    CHECK(close(slot(x), torch::relu(x)));
    CHECK(slot->relu_count() == 75);
  }
  ReluSlot ch(slot_options{.grain = granularity::channel, .shape = {3, 5, 5}});
  ch->harden(torch::tensor({1, 0, 1}));
  CHECK(ch->relu_count() == 50);
  auto y = ch(x);
  CHECK(close(y.select(1, 0), torch::relu(x.select(1, 0))));
  CHECK(close(y.select(1, 1), x.select(1, 1)));
}

TEST_CASE("ReluSlot learns its shape on the first forward, then keeps it", "[slot]") {
  ReluSlot slot;
  CHECK_FALSE(slot->materialized());
  expect_error([&] { (void)slot->total_relus(); }, "activation shape unknown");
  slot(torch::randn({2, 3, 4, 4}));
  CHECK(slot->materialized());
  CHECK(slot->total_relus() == 48);
  expect_error([&] { slot(torch::randn({2, 3, 5, 5})); },
               "input of shape [2, 3, 5, 5] does not match the slot's activation shape [batch, 3x4x4]");
  slot(torch::randn({7, 3, 4, 4}));  // another batch size is fine
}

TEST_CASE("ReluSlot: soft masks get gradients, hard masks are frozen", "[slot]") {
  ReluSlot slot(slot_options{.shape = {2, 3}});
  auto x = torch::randn({4, 2, 3}, torch::requires_grad());
  slot(x).sum().backward();
  REQUIRE(slot->mask().grad().defined());
  CHECK(close(slot->mask().grad(), -x.detach().clamp_max(0).sum(0)));
  slot->harden_above(0.5);
  auto x2 = torch::randn({4, 2, 3}, torch::requires_grad());
  slot->mask().mutable_grad() = torch::Tensor();
  slot(x2).sum().backward();
  CHECK_FALSE(slot->mask().grad().defined());
  CHECK(x2.grad().defined());
  slot->soften();
  CHECK(slot->mask().requires_grad());
}

TEST_CASE("ReluSlot rejects bad masks with the sizes in the message", "[slot]") {
  ReluSlot slot(slot_options{.shape = {3, 4, 4}});
  expect_error([&] { slot->harden(torch::ones({3, 4})); },
               "binary mask has 12 entries; expected 48");
  expect_error([&] { slot->harden(torch::full({3, 4, 4}, 0.5)); }, "values other than 0 and 1");
  expect_error([&] { slot->set_gate(torch::ones({5})); }, "gate has 5 entries; expected 48");
  expect_error([] { ReluSlot(slot_options{.shape = {3, 0, 4}}); }, "non-positive dimension");
  expect_error([&] { slot(torch::randn({4})); }, "no per-sample dimensions");
}

TEST_CASE("ReluSlot gates from a relaxation replace the raw mask until cleared", "[slot]") {
  ReluSlot slot(slot_options{.grain = granularity::channel, .shape = {2, 3}});
  auto x = torch::randn({5, 2, 3});
  slot->set_gate(torch::tensor({0.0f, 0.0f}));
  CHECK(close(slot(x), x));
  CHECK(slot->relu_count() == 0);
  slot->clear_gate();
  CHECK(close(slot(x), torch::relu(x)));
}

TEST_CASE("ReluSlot clones keep shape, state and mask values", "[slot]") {
  ReluSlot slot(slot_options{.shape = {2, 2}});
  slot->harden(torch::tensor({1, 0, 0, 1}));
  auto copy = std::dynamic_pointer_cast<ReluSlotImpl>(slot->clone());
  REQUIRE(copy);
  CHECK(copy->is_hard());
  CHECK(copy->relu_count() == 2);
  CHECK_FALSE(copy->mask().requires_grad());
  auto x = torch::randn({3, 2, 2});
  CHECK(close(copy->forward(x), slot(x)));
}

TEST_CASE("ReluSlot on CUDA equals CPU", "[slot][cuda]") {
  if (!linearize::testing::cuda_or_skip()) return;
  for (auto gran : {granularity::element, granularity::channel, granularity::layer}) {
    ReluSlot cpu(slot_options{.grain = gran, .shape = {3, 4, 4}});
    torch::NoGradGuard no_grad;
    cpu->mask().uniform_(-0.5, 1.5);
    auto gpu = std::dynamic_pointer_cast<ReluSlotImpl>(cpu->clone(torch::kCUDA));
    auto x = torch::randn({2, 3, 4, 4});
    CHECK(close(gpu->forward(x.to(torch::kCUDA)), cpu(x)));
  }
}
