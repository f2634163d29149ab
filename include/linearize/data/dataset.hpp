#pragma once
// image_dataset: a labelled image set held in memory as uint8 pixels. Every dataset this library
// reads (Fashion-MNIST, CIFAR-10/100, TinyImageNet) fits in memory as bytes (TinyImageNet's
// training set is 1.2 GB), so batches are cut from memory and augmented on the fly; nothing is
// read from disk during training.
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace linearize::data {

struct image_dataset {
  std::string name;
  torch::Tensor images;        ///< uint8 [N, C, H, W], CPU, contiguous
  torch::Tensor labels;        ///< int64 [N], each in [0, classes)
  int64_t classes = 0;
  std::vector<double> mean{};  ///< per channel, of pixels scaled to [0, 1]
  std::vector<double> stdev{}; ///< per channel, of pixels scaled to [0, 1]

  [[nodiscard]] int64_t size() const { return images.defined() ? images.size(0) : 0; }
  [[nodiscard]] int64_t channels() const { return images.size(1); }
  [[nodiscard]] int64_t height() const { return images.size(2); }
  [[nodiscard]] int64_t width() const { return images.size(3); }

  /// Checks shapes, dtypes, label range and normalization constants; names the first problem.
  void validate() const {
    require(images.defined() && images.dim() == 4 && images.scalar_type() == torch::kByte,
            "dataset '", name, "': images must be uint8 [N, C, H, W], got ",
            images.defined() ? images.sizes() : torch::IntArrayRef{});
    require(labels.defined() && labels.dim() == 1 && labels.scalar_type() == torch::kLong &&
                labels.size(0) == images.size(0),
            "dataset '", name, "': labels must be int64 [", images.size(0), "]");
    require(classes > 0, "dataset '", name, "': class count ", classes, " must be positive");
    if (labels.numel() > 0) {
      const auto lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
      require(lo >= 0 && hi < classes, "dataset '", name, "': label ", lo < 0 ? lo : hi,
              " out of range [0, ", classes, ")");
    }
    require(static_cast<int64_t>(mean.size()) == images.size(1) &&
                static_cast<int64_t>(stdev.size()) == images.size(1),
            "dataset '", name, "': need one mean and one std per channel (", images.size(1), ")");
    for (double s : stdev) require(s > 0, "dataset '", name, "': std ", s, " must be positive");
  }

  /// The samples at `indices` (int64), in that order.
  [[nodiscard]] image_dataset subset(const torch::Tensor& indices) const {
    image_dataset out = *this;
    out.images = images.index_select(0, indices).contiguous();
    out.labels = labels.index_select(0, indices).contiguous();
    return out;
  }
  /// The first n samples. More than the set holds is an error, not a silent cap: a run asked
  /// for 100,000 images of a 54,000-image set would otherwise report 54,000 as if asked.
  [[nodiscard]] image_dataset take(int64_t n) const {
    require(n >= 0 && n <= size(), "dataset '", name, "': cannot take ", n, " samples; expected 0 to ",
            size(), ", the samples it holds");
    return subset(torch::arange(n));
  }
};

struct split_datasets {
  image_dataset train;
  image_dataset held_out;
};

/// Splits off a held-out part of a training set (model selection, BCD's scoring set) by a
/// seeded permutation: the same seed gives the same split.
[[nodiscard]] inline split_datasets split(const image_dataset& data, double held_out_fraction,
                                          uint64_t seed) {
  require(held_out_fraction > 0 && held_out_fraction < 1, "held-out fraction ", held_out_fraction,
          " must lie in (0, 1)");
  const int64_t n = data.size();
  const auto held = static_cast<int64_t>(static_cast<double>(n) * held_out_fraction);
  require(held > 0 && held < n, "dataset '", data.name, "' of ", n,
          " samples is too small to hold out a fraction of ", held_out_fraction);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto order = torch::randperm(n, gen, torch::kLong);
  return {data.subset(order.slice(0, held)), data.subset(order.slice(0, 0, held))};
}

}  // namespace linearize::data
