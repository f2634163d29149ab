#pragma once
// A user's model in one file: VGG16 with BatchNorm for small images, its ReLUs as slots, and
// its registration, so that make_model("vgg16", spec), train::load_or_train_baseline and every
// command line that takes --model know it wherever this header is included. No library file
// names it.
//
// 13 3x3 convolutions in five blocks (64, 128, 256, 512, 512 channels at width 64; 2, 2, 3, 3,
// 3 convolutions), each followed by BatchNorm and a slot, a 2x2 max-pool after every block
// (ceil mode, so 28x28 inputs work too: 28 -> 14 -> 7 -> 4 -> 2 -> 1), then a linear head.
// 276,480 ReLUs on 3x32x32 at width 64, the count usually quoted for VGG16 on CIFAR without
// its classifier ReLUs. The width knob is the channels of block 1; the others scale with it.
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/models/layers.hpp>
#include <linearize/models/registry.hpp>

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace user_models {

struct vgg16_options {
  int64_t classes = 10;
  int64_t channels = 3;  ///< input channels
  int64_t size = 32;     ///< input height = width
  int64_t width = 64;    ///< channels of block 1; blocks 2..5 have 2x, 4x, 8x, 8x
  linearize::granularity grain = linearize::granularity::element;
};

class Vgg16Impl : public linearize::NetworkFromOptions<Vgg16Impl> {
 public:
  static constexpr const char* model_name = "vgg16";

  explicit Vgg16Impl(vgg16_options options_ = {}) : options(options_) {
    namespace models = linearize::models;
    models::require_positive(model_name, "classes", options.classes);
    models::require_positive(model_name, "channels", options.channels);
    models::require_positive(model_name, "width", options.width);
    models::require_positive(model_name, "size", options.size);
    const std::array<int64_t, 5> convs{2, 2, 3, 3, 3}, scale{1, 2, 4, 8, 8};
    int64_t in = options.channels, size = options.size;
    for (size_t b = 0; b < 5; ++b) {
      const std::string stage = "block" + std::to_string(b + 1);
      const int64_t out = scale[b] * options.width;
      for (int64_t c = 0; c < convs[b]; ++c) {
        features->push_back(models::conv(in, out, 3));
        features->push_back(torch::nn::BatchNorm2d(out));
        features->push_back(models::slot(options.grain, out, size, stage, static_cast<int>(c)));
        in = out;
      }
      features->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).ceil_mode(true)));
      size = (size + 1) / 2;
    }
    register_module("features", features);
    classifier = register_module("classifier", torch::nn::Linear(in, options.classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    linearize::models::require_input(model_name, x, options.channels, options.size);
    x = torch::adaptive_avg_pool2d(features->forward(x), {1, 1}).flatten(1);
    return classifier(x);
  }

  [[nodiscard]] std::string describe() const override {
    return std::string(model_name) + "(classes=" + std::to_string(options.classes) +
           ", channels=" + std::to_string(options.channels) + ", size=" + std::to_string(options.size) +
           ", width=" + std::to_string(options.width) + ")";
  }

  const vgg16_options options;
  torch::nn::Sequential features;
  torch::nn::Linear classifier{nullptr};
};

inline linearize::Network make_vgg16(const linearize::models::model_spec& s) {
  return std::make_shared<Vgg16Impl>(vgg16_options{
      .classes = s.classes,
      .channels = s.channels,
      .size = s.size,
      .width = linearize::models::whole_width(Vgg16Impl::model_name, *s.width),
      .grain = s.grain});
}

/// The registration: one object per program (an inline variable), made before main() runs.
inline const linearize::models::registration vgg16_registration{{.name = Vgg16Impl::model_name,
                                                                  .make = make_vgg16,
                                                                  .width_knob = "channels of block 1",
                                                                  .default_width = 64,
                                                                  .baseline_width = 16}};

}  // namespace user_models
