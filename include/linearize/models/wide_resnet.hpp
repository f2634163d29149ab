#pragma once
// WideResNet-d-k (pre-activation), as used for WRN-22-8 in the linearization literature: a 3x3
// stem conv to 16 channels, three groups of (d - 4) / 6 blocks of BN-ReLU-conv-BN-ReLU-conv with
// widths 16k, 32k, 64k and strides 1, 2, 2, a 1x1 shortcut conv where the shape changes, then
// the final BN, global average pool and a linear head. The ReLU after that final BN is removed
// (the BN stays: it is linear, free in private inference, and keeps the usual parameter names).
// 1,359,872 ReLUs for WRN-22-8 on 3x32x32.
// Parameter names follow the common PyTorch WideResNet: conv1, block1.layer.0.bn1,
// block1.layer.0.convShortcut, bn1, fc; slots are block1.layer.0.relu1 / relu2.
#include <linearize/core/granularity.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/models/batch_norm.hpp>
#include <linearize/models/layers.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

namespace linearize::models {

struct wide_resnet_options {
  int64_t depth = 22;   ///< 6n + 4: n blocks per group
  int64_t widen = 8;    ///< widen factor k
  int64_t classes = 10;
  int64_t channels = 3;
  int64_t size = 32;
  granularity grain = granularity::element;
};

/// Pre-activation block. relu1 acts on the block's input, relu2 on the first conv's output.
/// When the shape changes, the shortcut starts from the activated input (as in the usual code).
class PreActBlockImpl : public torch::nn::Module {
 public:
  PreActBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t size, granularity grain,
                  const std::string& stage, int layer)
      : same_shape(in == out && stride == 1) {
    const int64_t out_size = strided_size(size, stride);
    bn1 = register_module("bn1", BatchNorm2d(in));
    relu1 = register_module("relu1", slot(grain, in, size, stage, layer));
    conv1 = register_module("conv1", conv(in, out, 3, stride));
    bn2 = register_module("bn2", BatchNorm2d(out));
    relu2 = register_module("relu2", slot(grain, out, out_size, stage, layer + 1));
    conv2 = register_module("conv2", conv(out, out, 3));
    if (!same_shape) convShortcut = register_module("convShortcut", conv(in, out, 1, stride));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const auto a = relu1(bn1(x));
    const auto y = conv2(relu2(bn2(conv1(a))));
    return (same_shape ? x : convShortcut(a)) + y;
  }

  const bool same_shape;
  BatchNorm2d bn1{nullptr}, bn2{nullptr};
  ReluSlot relu1{nullptr}, relu2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, convShortcut{nullptr};
};
TORCH_MODULE(PreActBlock);

/// One group of blocks at one width; holds them in `layer` (hence block1.layer.0...).
class WideGroupImpl : public torch::nn::Module {
 public:
  WideGroupImpl() { layer = register_module("layer", torch::nn::Sequential()); }
  torch::Tensor forward(const torch::Tensor& x) { return layer->forward(x); }
  torch::nn::Sequential layer{nullptr};
};
TORCH_MODULE(WideGroup);

class WideResNetImpl : public NetworkFromOptions<WideResNetImpl> {
 public:
  static constexpr const char* model_name = "wide_resnet";

  explicit WideResNetImpl(wide_resnet_options options_ = {}) : options(options_) {
    require(options.depth >= 10 && (options.depth - 4) % 6 == 0, model_name, ": depth = ",
            options.depth, "; expected 6n + 4 with n >= 1 (10, 16, 22, 28, ...)");
    require_positive(model_name, "widen", options.widen);
    require_positive(model_name, "classes", options.classes);
    require_positive(model_name, "channels", options.channels);
    require_positive(model_name, "size", options.size);
    require_input_size(model_name, options.size, 4);
    const int64_t n = (options.depth - 4) / 6;
    const std::array<int64_t, 3> widths{16 * options.widen, 32 * options.widen, 64 * options.widen};
    const std::array<int64_t, 3> strides{1, 2, 2};

    conv1 = register_module("conv1", conv(options.channels, 16, 3));
    int64_t in = 16, size = options.size;
    for (size_t g = 0; g < 3; ++g) {
      const std::string stage = "block" + std::to_string(g + 1);
      WideGroup group;
      for (int64_t b = 0; b < n; ++b) {
        const int64_t stride = b == 0 ? strides[g] : 1;
        group->layer->push_back(
            PreActBlock(in, widths[g], stride, size, options.grain, stage, static_cast<int>(2 * b)));
        in = widths[g];
        size = strided_size(size, stride);
      }
      groups[g] = register_module(stage, group);
    }
    bn1 = register_module("bn1", BatchNorm2d(in));
    fc = register_module("fc", torch::nn::Linear(in, options.classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    require_input(model_name, x, options.channels, options.size);
    x = conv1(x);
    for (auto& group : groups) x = group(x);
    x = bn1(x);  // no ReLU here: removed, as in the networks the literature counts
    return fc(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }


  [[nodiscard]] std::string describe() const override {
    std::ostringstream out;
    out << model_name << "(depth=" << options.depth << ", widen=" << options.widen
        << ", classes=" << options.classes << ", channels=" << options.channels
        << ", size=" << options.size;
    if (options.grain != granularity::element) out << ", grain=" << to_string(options.grain);
    out << ")";
    return out.str();
  }

  const wide_resnet_options options;
  torch::nn::Conv2d conv1{nullptr};
  std::array<WideGroup, 3> groups{nullptr, nullptr, nullptr};
  BatchNorm2d bn1{nullptr};
  torch::nn::Linear fc{nullptr};
};

/// WideResNet with the given options; the defaults are WRN-22-8 for 3x32x32 inputs.
[[nodiscard]] inline std::shared_ptr<WideResNetImpl> wide_resnet(wide_resnet_options options = {}) {
  return std::make_shared<WideResNetImpl>(options);
}

namespace detail {
inline Network make_wide_resnet_22_8(const model_spec& s) {
  return wide_resnet({.depth = 22,
                      .widen = whole_width("wide_resnet_22_8", *s.width),
                      .classes = s.classes,
                      .channels = s.channels,
                      .size = s.size,
                      .grain = s.grain});
}
}  // namespace detail

/// make_model("wide_resnet_22_8", spec): depth 22, the width is the widen factor.
inline const registration wide_resnet_22_8_registration{{.name = "wide_resnet_22_8",
                                                         .make = detail::make_wide_resnet_22_8,
                                                         .width_knob = "widen factor",
                                                         .default_width = 8}};

}  // namespace linearize::models
