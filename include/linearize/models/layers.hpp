#pragma once
// The few pieces every model of the zoo is built from: bias-free convolutions with "same"
// padding, the feature-map size after a strided convolution (slots are built with their
// activation shape known, so every model tracks its sizes), a slot factory and option checks.
#include <linearize/core/granularity.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace linearize::models {

/// kxk convolution, stride `stride`, padding k/2, no bias (a BatchNorm follows every one).
[[nodiscard]] inline torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel,
                                            int64_t stride = 1, int64_t groups = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                               .stride(stride)
                               .padding(kernel / 2)
                               .groups(groups)
                               .bias(false));
}

/// Side of the map a kxk convolution with padding k/2 (k odd) and this stride produces.
[[nodiscard]] constexpr int64_t strided_size(int64_t size, int64_t stride) {
  return (size - 1) / stride + 1;
}

/// A slot whose activation map is {channels, size, size}.
[[nodiscard]] inline ReluSlot slot(granularity grain, int64_t channels, int64_t size,
                                   std::string stage, int layer) {
  return ReluSlot(slot_options{.grain = grain,
                               .shape = {channels, size, size},
                               .stage = std::move(stage),
                               .layer = layer});
}

/// Option checks shared by the models; `model` names the network in the message.
inline void require_positive(std::string_view model, std::string_view option, int64_t value) {
  require(value > 0, model, ": ", option, " = ", value, "; expected a positive number");
}

/// Every stride-2 step must really halve a map: an input smaller than the network's total
/// stride would collapse to 1x1 before the last stage.
inline void require_input_size(std::string_view model, int64_t size, int64_t total_stride) {
  require(size >= total_stride, model, ": input size ", size,
          " is too small for the network's total stride ", total_stride, "; expected size >= ",
          total_stride);
}

/// Checks that `x` is a batch of `channels` x `size` x `size` images.
inline void require_input(std::string_view model, const torch::Tensor& x, int64_t channels,
                          int64_t size) {
  require(x.dim() == 4 && x.size(1) == channels && x.size(2) == size && x.size(3) == size, model,
          ": input of shape ", x.sizes(), "; expected [batch, ", channels, ", ", size, ", ", size,
          "]");
}

}  // namespace linearize::models
