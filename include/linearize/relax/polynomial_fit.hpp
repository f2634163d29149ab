#pragma once
// The starting coefficients of AutoReP's polynomials (core/polynomial.hpp): per channel, the
// least-squares fit of c2 x^2 + c1 x + c0 to relu(x) over the inputs the slot actually sees.
//
// AutoReP's public code fits from the running statistics of the BatchNorm feeding the slot (a
// Gaussian per channel), with hand factors on top. That needs to know which BatchNorm feeds a
// slot, and a slot after a residual add has none. Here the slot's inputs are measured instead,
// on a few batches of training images (eval mode, no augmentation): the moments of x up to x^4
// and of x^k relu(x) per channel give the exact least-squares fit on those inputs, with no
// assumption of normality. For a standard normal input it is AutoReP's quadratic,
// 0.1995 x^2 + 0.5 x + 0.1995 (tests/unit/test_autorep.cpp checks both).
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/core/slot_capture.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace linearize::relax {

/// Per-channel sums of one slot's inputs, from which the least-squares quadratic follows.
class relu_moments {
 public:
  /// Adds a batch [batch, channels, ...] (channels: the first per-sample dimension).
  void add(const torch::Tensor& x) {
    require(x.dim() >= 2, "relu_moments: input of shape ", x.sizes(),
            "; expected [batch, channels, ...]");
    torch::NoGradGuard no_grad;
    const auto v = x.detach().transpose(0, 1).reshape({x.size(1), -1}).to(torch::kCPU, torch::kDouble);
    if (!shift_.defined()) {
      shift_ = v.mean(1, /*keepdim=*/true);  // sums about a nearby centre: no cancellation
      sums_ = torch::zeros({v.size(0), 8}, torch::kDouble);
    }
    require(v.size(0) == shift_.size(0), "relu_moments: ", v.size(0), " channels; expected ",
            shift_.size(0), " as before");
    const auto d = v - shift_, r = v.clamp_min(0);
    const auto d2 = d * d;
    sums_ += torch::stack({torch::full({v.size(0)}, static_cast<double>(v.size(1)), torch::kDouble),
                           d.sum(1), d2.sum(1), (d2 * d).sum(1), (d2 * d2).sum(1), r.sum(1),
                           (d * r).sum(1), (d2 * r).sum(1)},
                          1);
  }

  [[nodiscard]] bool empty() const { return !sums_.defined(); }

  /// {c2, c1, c0}, each double [channels]: the least-squares quadratic through relu(x) on the
  /// inputs added. A channel whose inputs do not vary gets the constant relu(its value).
  [[nodiscard]] std::vector<torch::Tensor> fit() const {
    require(!empty(), "relu_moments: no inputs added; expected at least one batch");
    const auto e = sums_.slice(1, 1) / sums_.select(1, 0).unsqueeze(1);  // means
    const auto col = [&](int64_t k) { return e.select(1, k - 1); };
    // Moments of d = x - shift, centred and scaled: z = (d - m) / s.
    const auto m = col(1), var = (col(2) - m * m).clamp_min(0), s = var.sqrt();
    const auto safe = torch::where(s.gt(0), s, torch::ones_like(s));
    const auto m3 = col(3) - 3 * m * col(2) + 2 * m * m * m;
    const auto m4 = col(4) - 4 * m * col(3) + 6 * m * m * col(2) - 3 * m * m * m * m;
    const auto ez3 = m3 / (safe * safe * safe), ez4 = m4 / (safe * safe * safe * safe);
    const auto r0 = col(5), dr = col(6), d2r = col(7);
    const auto zr = (dr - m * r0) / safe;
    const auto z2r = (d2r - 2 * m * dr + m * m * r0) / (safe * safe);
    const auto ones = torch::ones_like(m), zeros = torch::zeros_like(m);
    // Normal equations of (a2, a1, a0) for r ~ a2 z^2 + a1 z + a0, with E[z] = 0, E[z^2] = 1.
    auto A = torch::stack({torch::stack({ez4, ez3, ones}, 1), torch::stack({ez3, ones, zeros}, 1),
                           torch::stack({ones, zeros, ones}, 1)},
                          1);
    A = A + 1e-12 * torch::eye(3, torch::kDouble);  // z taking two values only: still solvable
    const auto b = torch::stack({z2r, zr, r0}, 1).unsqueeze(2);
    const auto a = at::linalg_solve(A, b).squeeze(2);
    const auto a2 = a.select(1, 0), a1 = a.select(1, 1), a0 = a.select(1, 2);
    // Back to x: z = (x - mu) / s with mu = shift + m.
    const auto mu = shift_.squeeze(1) + m;
    const auto varies = s.gt(1e-9 * (1 + mu.abs()));
    const auto c2 = torch::where(varies, a2 / (safe * safe), zeros);
    const auto c1 = torch::where(varies, a1 / safe - 2 * a2 * mu / (safe * safe), zeros);
    const auto c0 = torch::where(varies, a0 - a1 * mu / safe + a2 * mu * mu / (safe * safe), mu.clamp_min(0));
    return {c2, c1, c0};
  }

 private:
  torch::Tensor shift_, sums_;  // shift [C, 1]; sums [C, 8]: n, d, d^2, d^3, d^4, r, d r, d^2 r
};

struct polynomial_fit_options {
  int64_t batches = 8;        ///< batches of training images measured
  int64_t batch_size = 128;
  uint64_t seed = 0;          ///< which images: a seeded draw
};

/// Sets every polynomial replacement below `net` (slots whose replacement is a PolynomialImpl)
/// to the least-squares fit of relu over its measured inputs; returns the images forwarded.
inline int64_t fit_polynomials(NetworkImpl& net, const data::image_dataset& data,
                               const polynomial_fit_options& o = {}) {
  require(o.batches > 0 && o.batch_size > 0, "fit_polynomials: batches ", o.batches,
          " and batch_size ", o.batch_size, "; expected both > 0");
  require(data.size() > 0, "fit_polynomials: the dataset is empty; expected training images");
  const MaskSet masks(net);
  std::vector<relu_moments> sums(masks.size());
  std::vector<bool> fitted(masks.size());
  for (size_t i = 0; i < masks.size(); ++i) fitted[i] = masks[i].replacement_as<PolynomialImpl>() != nullptr;
  if (std::none_of(fitted.begin(), fitted.end(), [](bool f) { return f; })) return 0;
  torch::NoGradGuard no_grad;
  train::detail::mode_guard eval_mode(net, /*training=*/false);
  const auto device = train::device_of(net);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const int64_t n = std::min(data.size(), o.batches * o.batch_size);
  const auto picked = torch::randperm(data.size(), gen, torch::kLong).slice(0, 0, n);
  {
    slot_capture capture(masks, [&](size_t i, const torch::Tensor& in, const torch::Tensor&) {
      if (fitted[i]) sums[i].add(in);
    });
    for (int64_t begin = 0; begin < n; begin += o.batch_size) {
      const auto ids = picked.slice(0, begin, std::min(n, begin + o.batch_size));
      const auto x = data::make_batch(data.images.index_select(0, ids), data.mean, data.stdev,
                                      data::augmentation{}, 0)
                         .to(device);
      (void)net.forward(x);
    }
  }
  for (size_t i = 0; i < masks.size(); ++i) {
    auto poly = masks[i].replacement_as<PolynomialImpl>();
    if (!poly) continue;
    require(!sums[i].empty(), "fit_polynomials: slot '", masks.name(i),
            "' saw no input; expected every slot to run in the network's forward pass");
    const auto c = sums[i].fit();
    poly->set_coefficients(c[0], c[1], c[2]);
  }
  return n;
}

}  // namespace linearize::relax
