#pragma once
// A tiny network and a tiny synthetic image set for the trainer's tests: small enough that a
// two-epoch run takes milliseconds, rich enough to exercise a convolution, BatchNorm (buffers),
// a ReluSlot (mask parameter), dropout (the random generator) and a linear head.
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/policy/run_types.hpp>

#include <torch/torch.h>

#include <memory>
#include <string>

namespace linearize::testing {

struct TinyConvImpl : NetworkImpl {
  explicit TinyConvImpl(int64_t width = 4, int64_t classes = 3, double dropout = 0.2)
      : width(width), classes(classes), dropout_p(dropout) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, width, 3).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(width));
    relu = register_module("relu", ReluSlot(slot_options{.shape = {width, 6, 6}}));
    drop = register_module("drop", torch::nn::Dropout(dropout));
    head = register_module("head", torch::nn::Linear(width * 36, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    return head(drop(relu(bn(conv(x))).flatten(1)));
  }
  std::shared_ptr<NetworkImpl> copy() const override {
    auto out = std::make_shared<TinyConvImpl>(width, classes, dropout_p);
    copy_state(*this, *out);
    return out;
  }
  std::string describe() const override {
    return "tiny_conv(width=" + std::to_string(width) + ", classes=" + std::to_string(classes) + ")";
  }
  int64_t width, classes;
  double dropout_p;
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  ReluSlot relu{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::Linear head{nullptr};
};

/// A fresh TinyConv whose initial weights come from `init_seed`.
inline std::shared_ptr<TinyConvImpl> tiny_conv(uint64_t init_seed, int64_t width = 4,
                                               double dropout = 0.2) {
  torch::manual_seed(init_seed);
  return std::make_shared<TinyConvImpl>(width, 3, dropout);
}

/// `n` 1x6x6 images of 3 classes: class k is a bright band in rows 2k, 2k+1, plus noise.
inline data::image_dataset stripes(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto labels = torch::randint(0, 3, {n}, gen, torch::kLong);
  auto images = torch::randint(0, 80, {n, 1, 6, 6}, gen, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const auto k = labels[i].item<int64_t>();
    images[i].slice(1, 2 * k, 2 * k + 2) += 150;
  }
  data::image_dataset d;
  d.name = "stripes";
  d.images = images.clamp(0, 255).to(torch::kByte).contiguous();
  d.labels = labels;
  d.classes = 3;
  d.mean = {0.3};
  d.stdev = {0.3};
  return d;
}

/// Whether every parameter and buffer of `a` equals (bit for bit) the same-named one of `b`.
inline bool same_state(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto pa = a.named_parameters(true), pb = b.named_parameters(true);
  const auto ba = a.named_buffers(true), bb = b.named_buffers(true);
  if (pa.size() != pb.size() || ba.size() != bb.size()) return false;
  for (const auto& p : pa) {
    const auto* q = pb.find(p.key());
    if (!q || !torch::equal(p.value(), *q)) return false;
  }
  for (const auto& x : ba) {
    const auto* y = bb.find(x.key());
    if (!y || !torch::equal(x.value(), *y)) return false;
  }
  return true;
}

/// Run options for pipelines on the stripes data: small batches, silent, and a fast mask
/// optimizer (with SNL's lr of 1e-3 a mask entry needs ~1000 steps to fall from 1 to the 0.01
/// threshold, more than this tiny data set has).
inline run_options quick_options() {
  run_options o;
  o.batch_size = 32;
  o.augment = data::augmentation{};
  o.search_optimizer = train::adam{.lr = 0.05};
  o.progress.mode = train::progress_mode::silent;
  return o;
}

}  // namespace linearize::testing
