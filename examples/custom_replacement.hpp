#pragma once
// A user's replacement in one file: where a ReLU is linearized, a per-channel affine map
// r(x) = s_c * x + b_c takes its place instead of the identity (starting as the identity:
// s = 1, b = 0). Affine in x with the server's weights, it costs what a linear layer costs in
// private inference (replacement_cost::linear), and its parameters train with the weights, go
// into checkpoints and copies like any others. linearize::replace_linearized(net,
// channel_affine{}) installs it on every slot.
#include <linearize/core/replacement.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace user_policies {

class ChannelAffineImpl : public torch::nn::Cloneable<ChannelAffineImpl> {
 public:
  explicit ChannelAffineImpl(int64_t channels_ = 1, torch::TensorOptions options_ = {})
      : channels(channels_), options(options_) {
    reset();
  }
  void reset() override {
    scale = register_parameter("scale", torch::ones({channels}, options));
    shift = register_parameter("shift", torch::zeros({channels}, options));
  }
  /// x: [batch, C, ...]: every channel scaled and shifted.
  torch::Tensor forward(const torch::Tensor& x) {
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[1] = channels;
    return x * scale.view(shape) + shift.view(shape);
  }
  [[nodiscard]] linearize::replacement_cost cost() const { return linearize::replacement_cost::linear; }

  int64_t channels;
  torch::TensorOptions options;
  torch::Tensor scale, shift;
};

struct channel_affine {
  [[nodiscard]] std::shared_ptr<ChannelAffineImpl> make(const linearize::replacement_site& site) const {
    return std::make_shared<ChannelAffineImpl>(site.channels(), site.options);
  }
};

}  // namespace user_policies
