#pragma once
// MobileNetV1 for 32x32 inputs (the CIFAR variant): a stride-1 3x3 conv to 32 channels, then 13
// depthwise-separable blocks (3x3 depthwise conv + BN, 1x1 pointwise conv + BN) with the usual
// (channels, stride) configuration, global average pool and a linear head; a slot after every
// BN. A width multiplier scales every channel count. 411,648 ReLUs on 3x32x32 at multiplier 1.
// Stages for stage-level methods: "stem", then a new stage at every stride-2 block
// (stage1 at 32x32, stage2 at 16x16, ..., stage5 at 2x2).
// Parameter names follow the common PyTorch CIFAR MobileNet: conv1, bn1, layers.0.conv1 (the
// depthwise conv), layers.0.bn1, layers.0.conv2 (pointwise), layers.0.bn2, linear.
#include <linearize/core/granularity.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/models/batch_norm.hpp>
#include <linearize/models/layers.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace linearize::models {

struct mobilenet_v1_options {
  int64_t classes = 10;
  int64_t channels = 3;
  int64_t size = 32;
  double multiplier = 1.0;  ///< width multiplier (alpha): every channel count is scaled by it
  granularity grain = granularity::element;
};

/// (output channels, stride) of the 13 depthwise-separable blocks, before the multiplier.
[[nodiscard]] inline std::vector<std::pair<int64_t, int64_t>> mobilenet_v1_blocks() {
  std::vector<std::pair<int64_t, int64_t>> blocks{{64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2}};
  for (int i = 0; i < 5; ++i) blocks.emplace_back(512, 1);
  blocks.emplace_back(1024, 2);
  blocks.emplace_back(1024, 1);
  return blocks;
}

/// Depthwise 3x3 conv + BN + slot, pointwise 1x1 conv + BN + slot.
class SeparableBlockImpl : public torch::nn::Module {
 public:
  SeparableBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t size, granularity grain,
                     const std::string& stage, int layer) {
    const int64_t out_size = strided_size(size, stride);
    conv1 = register_module("conv1", conv(in, in, 3, stride, /*groups=*/in));
    bn1 = register_module("bn1", BatchNorm2d(in));
    relu1 = register_module("relu1", slot(grain, in, out_size, stage, layer));
    conv2 = register_module("conv2", conv(in, out, 1));
    bn2 = register_module("bn2", BatchNorm2d(out));
    relu2 = register_module("relu2", slot(grain, out, out_size, stage, layer + 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return relu2(bn2(conv2(relu1(bn1(conv1(x))))));
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr};
  ReluSlot relu1{nullptr}, relu2{nullptr};
};
TORCH_MODULE(SeparableBlock);

class MobileNetV1Impl : public NetworkFromOptions<MobileNetV1Impl> {
 public:
  static constexpr const char* model_name = "mobilenet_v1";

  explicit MobileNetV1Impl(mobilenet_v1_options options_ = {}) : options(options_) {
    require(options.multiplier > 0, model_name, ": multiplier = ", options.multiplier,
            "; expected a positive number");
    require_positive(model_name, "classes", options.classes);
    require_positive(model_name, "channels", options.channels);
    require_positive(model_name, "size", options.size);
    require_input_size(model_name, options.size, 16);
    const int64_t stem = scaled(32);
    conv1 = register_module("conv1", conv(options.channels, stem, 3));
    bn1 = register_module("bn1", BatchNorm2d(stem));
    relu = register_module("relu", slot(options.grain, stem, options.size, "stem", 0));

    layers = register_module("layers", torch::nn::Sequential());
    int64_t in = stem, size = options.size;
    int stage = 0, layer = 0;
    for (const auto& [channels, stride] : mobilenet_v1_blocks()) {
      if (stage == 0 || stride != 1) {  // a stride-2 block starts a new stage
        ++stage;
        layer = 0;
      }
      const int64_t out = scaled(channels);
      layers->push_back(SeparableBlock(in, out, stride, size, options.grain,
                                       "stage" + std::to_string(stage), layer));
      layer += 2;
      in = out;
      size = strided_size(size, stride);
    }
    linear = register_module("linear", torch::nn::Linear(in, options.classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    require_input(model_name, x, options.channels, options.size);
    x = layers->forward(relu(bn1(conv1(x))));
    return linear(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }


  [[nodiscard]] std::string describe() const override {
    std::ostringstream out;
    out << model_name << "(classes=" << options.classes << ", channels=" << options.channels
        << ", size=" << options.size << ", multiplier=" << options.multiplier;
    if (options.grain != granularity::element) out << ", grain=" << to_string(options.grain);
    out << ")";
    return out.str();
  }

  const mobilenet_v1_options options;
  torch::nn::Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  ReluSlot relu{nullptr};
  torch::nn::Sequential layers{nullptr};
  torch::nn::Linear linear{nullptr};

 private:
  [[nodiscard]] int64_t scaled(int64_t channels) const {
    const auto c = static_cast<int64_t>(static_cast<double>(channels) * options.multiplier);
    require(c >= 1, model_name, ": multiplier = ", options.multiplier, " leaves ", channels,
            " channels with none; expected a multiplier >= ", 1.0 / static_cast<double>(channels));
    return c;
  }
};

/// MobileNetV1 with the given options; the defaults are the CIFAR network for 3x32x32 inputs.
[[nodiscard]] inline std::shared_ptr<MobileNetV1Impl> mobilenet_v1(mobilenet_v1_options options = {}) {
  return std::make_shared<MobileNetV1Impl>(options);
}

namespace detail {
inline Network make_mobilenet_v1(const model_spec& s) {
  return mobilenet_v1({.classes = s.classes,
                       .channels = s.channels,
                       .size = s.size,
                       .multiplier = *s.width,
                       .grain = s.grain});
}
}  // namespace detail

/// make_model("mobilenet_v1", spec): the width is the width multiplier.
inline const registration mobilenet_v1_registration{{.name = "mobilenet_v1",
                                                     .make = detail::make_mobilenet_v1,
                                                     .width_knob = "width multiplier",
                                                     .default_width = 1.0}};

}  // namespace linearize::models
