// Network's copy: parameters, buffers and each slot's soft/hard state travel; mismatches are
// named.
#include "test_support.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;

namespace {

struct TinyImpl : NetworkImpl {
  explicit TinyImpl(int64_t width) : width(width) {
    fc = register_module("fc", torch::nn::Linear(3, width));
    bn = register_module("bn", torch::nn::BatchNorm1d(width));
    relu = register_module("relu", ReluSlot(slot_options{.shape = {width}}));
  }
  torch::Tensor forward(torch::Tensor x) override { return relu(bn(fc(x))); }
  std::shared_ptr<NetworkImpl> copy() const override {
    auto out = std::make_shared<TinyImpl>(width);
    copy_state(*this, *out);
    return out;
  }
  std::string describe() const override { return "tiny(" + std::to_string(width) + ")"; }
  int64_t width;
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
  ReluSlot relu{nullptr};
};

}  // namespace

TEST_CASE("Network copy carries weights, statistics and hard masks, sharing nothing", "[network]") {
  auto net = std::make_shared<TinyImpl>(4);
  net->train();
  net->forward(torch::randn({8, 3}));  // moves BN running statistics
  net->relu->harden(torch::tensor({1, 0, 1, 0}));
  auto copy = net->copy();
  net->eval();
  copy->eval();
  auto x = torch::randn({5, 3});
  CHECK(close(copy->forward(x), net->forward(x)));
  CHECK(MaskSet(*copy).relu_count() == 2);
  CHECK(MaskSet(*copy)[0].is_hard());
  {
    torch::NoGradGuard no_grad;
    net->fc->weight.zero_();
  }
  CHECK(copy->named_parameters()["fc.weight"].abs().sum().item<double>() > 0);

  auto wide = std::make_shared<TinyImpl>(5);
  expect_error([&] { copy_state(*net, *wide); }, "parameter 'fc.weight' has shape [4, 3]");
  freeze(*copy);
  for (const auto& p : copy->parameters()) CHECK_FALSE(p.requires_grad());
  CHECK_FALSE(copy->is_training());
}
