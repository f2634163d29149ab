// BatchNorm re-estimation: statistics become the data's, momentum and mode are restored.
#include "test_support.hpp"

#include <linearize/train/batchnorm.hpp>

using namespace linearize;
using linearize::testing::close;

namespace {
struct BnNetImpl : NetworkImpl {
  BnNetImpl() { bn = register_module("bn", torch::nn::BatchNorm2d(2)); }
  torch::Tensor forward(torch::Tensor x) override { return bn(x); }
  std::shared_ptr<NetworkImpl> copy() const override { return nullptr; }
  std::string describe() const override { return "bn"; }
  torch::nn::BatchNorm2d bn{nullptr};
};
}  // namespace

TEST_CASE("recalibrate_batchnorm averages the data's statistics over whole batches", "[train]") {
  data::image_dataset d;
  d.name = "bn";
  d.images = torch::randint(0, 256, {64, 2, 3, 3}, torch::kLong).to(torch::kByte);
  d.labels = torch::zeros({64}, torch::kLong);
  d.classes = 1;
  d.mean = {0.0, 0.0};
  d.stdev = {1.0, 1.0};
  BnNetImpl net;
  net.eval();
  const auto seen = train::recalibrate_batchnorm(net, d, /*batches=*/100, /*batch_size=*/64);
  CHECK(seen == 64);
  const auto x = d.images.to(torch::kFloat) / 255;
  CHECK(close(net.bn->running_mean, x.mean({0, 2, 3}), 1e-4, 1e-5));
  CHECK(close(net.bn->running_var, x.var({0, 2, 3}, /*unbiased=*/true), 1e-3, 1e-4));
  CHECK_FALSE(net.is_training());
  REQUIRE(net.bn->options.momentum().has_value());
  CHECK(*net.bn->options.momentum() == Approx(0.1));
}
