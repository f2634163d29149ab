#pragma once
// Turning uint8 images into a normalized float batch, with the standard CIFAR augmentation
// (random crop after zero padding, horizontal flip) done in the same single pass. The crop and
// flip of each sample come from derive_seed(seed, {sample}), so a batch is reproducible, and a
// part of a batch (a rank's shard) is augmented as in the whole batch (`first`).
#include <linearize/support/error.hpp>
#include <linearize/support/seed.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace linearize::data {

struct augmentation {
  int64_t crop_padding = 0;      ///< random crop of the original size after padding by this much
  bool horizontal_flip = false;  ///< flip each sample with probability 1/2
  [[nodiscard]] bool any() const { return crop_padding > 0 || horizontal_flip; }
};

/// Members for io/json.hpp (a checkpoint records the augmentation: a resume under another is refused).
template <class F>
void json_fields(const augmentation& a, F&& f) {
  f("crop_padding", a.crop_padding);
  f("horizontal_flip", a.horizontal_flip);
}

/// The CIFAR recipe of the SNL baseline: crop with padding 4, horizontal flip.
inline constexpr augmentation cifar_augmentation{.crop_padding = 4, .horizontal_flip = true};

/// uint8 [B, C, H, W] -> float [B, C, H, W], (pixel / 255 - mean) / std per channel, with
/// padded pixels reading 0 (black) before normalization, as torchvision's RandomCrop does.
/// `first`: the position of images[0] in the batch the seed belongs to (a shard's offset).
[[nodiscard]] inline torch::Tensor make_batch(const torch::Tensor& images,
                                              const std::vector<double>& mean,
                                              const std::vector<double>& stdev,
                                              const augmentation& aug, uint64_t seed,
                                              int64_t first = 0) {
  require(images.dim() == 4 && images.scalar_type() == torch::kByte,
          "make_batch: images must be uint8 [B, C, H, W], got ", images.sizes());
  const auto src = images.contiguous();
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  require(static_cast<int64_t>(mean.size()) == C && static_cast<int64_t>(stdev.size()) == C,
          "make_batch: ", mean.size(), " means and ", stdev.size(), " stds for ", C, " channels");
  require(aug.crop_padding >= 0 && aug.crop_padding < std::max(H, W),
          "make_batch: crop padding ", aug.crop_padding, " must lie in [0, ", std::max(H, W), ")");
  auto out = torch::empty({B, C, H, W}, torch::kFloat);
  const uint8_t* in = src.data_ptr<uint8_t>();
  float* o = out.data_ptr<float>();
  std::vector<float> scale(C), shift(C), pad_value(C);
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = static_cast<float>(1.0 / (255.0 * stdev[c]));
    shift[c] = static_cast<float>(-mean[c] / stdev[c]);
    pad_value[c] = shift[c];
  }
  const int64_t pad = aug.crop_padding;
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t r = derive_seed(seed, {static_cast<uint64_t>(first + b)});
    const int64_t dy = pad ? static_cast<int64_t>(r % (2 * pad + 1)) - pad : 0;
    const int64_t dx = pad ? static_cast<int64_t>((r >> 16) % (2 * pad + 1)) - pad : 0;
    const bool flip = aug.horizontal_flip && ((r >> 40) & 1u);
    for (int64_t c = 0; c < C; ++c) {
      const uint8_t* plane = in + (b * C + c) * H * W;
      float* dst = o + (b * C + c) * H * W;
      for (int64_t i = 0; i < H; ++i) {
        const int64_t sy = i + dy;
        float* row = dst + i * W;
        if (sy < 0 || sy >= H) {
          std::fill(row, row + W, pad_value[c]);
          continue;
        }
        const uint8_t* srow = plane + sy * W;
        for (int64_t j = 0; j < W; ++j) {
          const int64_t sx = (flip ? W - 1 - j : j) + dx;
          row[j] = (sx < 0 || sx >= W) ? pad_value[c] : srow[sx] * scale[c] + shift[c];
        }
      }
    }
  }
  return out;
}

}  // namespace linearize::data
