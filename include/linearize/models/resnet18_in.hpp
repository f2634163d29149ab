#pragma once
// ResNet18 "IN" as the SNL code defines it for small images: 3x3 stride-1 stem conv + BN with
// no ReLU and no max-pool, four stages of two BasicBlocks (widths w, 2w, 4w, 8w; strides
// 1, 2, 2, 2), a 1x1 conv + BN shortcut where the shape changes, a slot after bn1 and after the
// residual add of every block, global average pool (4x4 on 32x32 inputs) and a linear head.
// 491,520 ReLUs on 3x32x32 at w = 64; 557,056 with the optional stem ReLU.
// Parameter names follow the PyTorch code (conv1, bn1, layer1.0.conv1, layer2.0.shortcut.0,
// linear), so state dicts move between the two worlds (see io/torch_export.hpp).
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

struct resnet18_in_options {
  int64_t classes = 10;
  int64_t channels = 3;  ///< input channels
  int64_t size = 32;     ///< input height = width
  int64_t width = 64;    ///< channels of layer1; layer2..4 have 2x, 4x, 8x
  bool stem_relu = false;  ///< DeepReDuce's variant: a slot after the stem BN (stage "stem")
  granularity grain = granularity::element;
};

/// Two 3x3 convs with BN; slots after bn1 ("relu1") and after the residual add ("relu2").
class BasicBlockImpl : public torch::nn::Module {
 public:
  /// `size` is the side of the block's input map; `layer` the index of relu1 in its stage.
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t size, granularity grain,
                 const std::string& stage, int layer) {
    const int64_t out_size = strided_size(size, stride);
    conv1 = register_module("conv1", conv(in, out, 3, stride));
    bn1 = register_module("bn1", BatchNorm2d(out));
    relu1 = register_module("relu1", slot(grain, out, out_size, stage, layer));
    conv2 = register_module("conv2", conv(out, out, 3));
    bn2 = register_module("bn2", BatchNorm2d(out));
    // An empty Sequential where the shape is kept, as in the PyTorch code (no parameters).
    shortcut = register_module("shortcut", torch::nn::Sequential());
    if (stride != 1 || in != out) {
      shortcut->push_back(conv(in, out, 1, stride));
      shortcut->push_back(BatchNorm2d(out));
    }
    relu2 = register_module("relu2", slot(grain, out, out_size, stage, layer + 1));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    auto y = relu1(bn1(conv1(x)));
    y = bn2(conv2(y));
    return relu2(y + (shortcut->is_empty() ? x : shortcut->forward(x)));
  }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential shortcut{nullptr};
  ReluSlot relu1{nullptr}, relu2{nullptr};
};
TORCH_MODULE(BasicBlock);

class ResNet18InImpl : public NetworkFromOptions<ResNet18InImpl> {
 public:
  static constexpr const char* model_name = "resnet18_in";

  explicit ResNet18InImpl(resnet18_in_options options_ = {}) : options(options_) {
    require_positive(model_name, "classes", options.classes);
    require_positive(model_name, "channels", options.channels);
    require_positive(model_name, "width", options.width);
    require_positive(model_name, "size", options.size);
    require_input_size(model_name, options.size, 8);
    const int64_t w = options.width;
    conv1 = register_module("conv1", conv(options.channels, w, 3));
    bn1 = register_module("bn1", BatchNorm2d(w));
    if (options.stem_relu) relu = register_module("relu", slot(options.grain, w, options.size, "stem", 0));

    const std::array<int64_t, 4> widths{w, 2 * w, 4 * w, 8 * w};
    const std::array<int64_t, 4> strides{1, 2, 2, 2};
    int64_t in = w, size = options.size;
    for (size_t s = 0; s < 4; ++s) {
      const std::string stage = "layer" + std::to_string(s + 1);
      torch::nn::Sequential blocks;
      for (int b = 0; b < 2; ++b) {
        const int64_t stride = b == 0 ? strides[s] : 1;
        blocks->push_back(BasicBlock(in, widths[s], stride, size, options.grain, stage, 2 * b));
        in = widths[s];
        size = strided_size(size, stride);
      }
      layers[s] = register_module(stage, blocks);
    }
    linear = register_module("linear", torch::nn::Linear(8 * w, options.classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    require_input(model_name, x, options.channels, options.size);
    x = bn1(conv1(x));
    if (relu) x = relu(x);
    for (auto& layer : layers) x = layer->forward(x);
    // Global average pool: the 4x4 pool of the 32x32 network, for any input size.
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return linear(x);
  }


  [[nodiscard]] std::string describe() const override {
    std::ostringstream out;
    out << model_name << "(classes=" << options.classes << ", channels=" << options.channels
        << ", size=" << options.size << ", width=" << options.width;
    if (options.stem_relu) out << ", stem_relu=true";
    if (options.grain != granularity::element) out << ", grain=" << to_string(options.grain);
    out << ")";
    return out.str();
  }

  const resnet18_in_options options;
  torch::nn::Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  ReluSlot relu{nullptr};  ///< only with stem_relu
  std::array<torch::nn::Sequential, 4> layers{nullptr, nullptr, nullptr, nullptr};
  torch::nn::Linear linear{nullptr};
};

/// ResNet18-IN with the given options, e.g. resnet18_in({.channels = 1, .size = 28, .width = 16}).
[[nodiscard]] inline std::shared_ptr<ResNet18InImpl> resnet18_in(resnet18_in_options options = {}) {
  return std::make_shared<ResNet18InImpl>(options);
}

namespace detail {
inline Network make_resnet18_in(const model_spec& s) {
  return resnet18_in({.classes = s.classes,
                      .channels = s.channels,
                      .size = s.size,
                      .width = whole_width(ResNet18InImpl::model_name, *s.width),
                      .stem_relu = s.stem_relu,
                      .grain = s.grain});
}
}  // namespace detail

/// make_model("resnet18_in", spec). Programs' baselines use width 16 (a quarter of SNL's 64:
/// 96,000 ReLUs on 1x28x28, trainable on a CPU).
inline const registration resnet18_in_registration{{.name = ResNet18InImpl::model_name,
                                                    .make = detail::make_resnet18_in,
                                                    .width_knob = "channels of layer1",
                                                    .default_width = 64,
                                                    .baseline_width = 16,
                                                    .stem_relu = true}};

}  // namespace linearize::models
