#pragma once
// A first-order estimate of what linearizing each mask entry would cost, from one backward pass
// per micro-batch. A slot computes y = x - a * min(x, 0); turning an entry from a = 1 to a = 0
// changes its output by exactly min(x, 0), so to first order the loss changes by
//   dL = g * min(x, 0) = -dL/da     (g = dL/dy),
// the gradient of the loss with respect to a gate of ones (REFERENCES.md gives dL/da). Summed
// over the samples this is the estimated change of the loss: `signed_change` (the default) ranks
// entries by it, so an entry whose removal lowers the loss comes first. `magnitude` sums
// |dL/da| over micro-batches instead (with micro-batches of one sample, the mean per-sample
// effect size): it treats any effect as damage, also a helpful one. An entry whose input is
// never negative on the samples costs exactly 0 either way (ReLU and identity agree there). The
// network runs in eval mode (BatchNorm with running statistics), so the samples of a
// micro-batch do not interact.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace linearize::select {

/// How the per-sample effects of removing an entry add up (see the top of this file).
enum class damage_estimate { signed_change, magnitude };

[[nodiscard]] constexpr std::string_view to_string(damage_estimate e) {
  return e == damage_estimate::signed_change ? "signed_change" : "magnitude";
}

struct first_order_damage {
  torch::Tensor damage;  ///< float [entries], CPU: estimated loss increase per mask entry
  int64_t images = 0;    ///< images forwarded (each also went backward once)
};

namespace detail {
/// Hands each slot a trainable copy of its mask as gate; takes the gates back on destruction.
class trainable_gates {
 public:
  explicit trainable_gates(const MaskSet& masks) : masks_(masks) {
    for (size_t i = 0; i < masks.size(); ++i) {
      auto gate = masks[i].mask().detach().clone().set_requires_grad(true);
      masks[i].set_gate(gate);
      gates.push_back(gate);
    }
  }
  trainable_gates(const trainable_gates&) = delete;
  trainable_gates& operator=(const trainable_gates&) = delete;
  ~trainable_gates() { masks_.clear_gates(); }
  std::vector<torch::Tensor> gates;

 private:
  const MaskSet& masks_;
};
}  // namespace detail

/// Estimates the damage of every mask entry of `masks` (slots of `net`) on `samples` images of
/// `data` drawn by `seed` (without augmentation), in micro-batches of `micro_batch`.
[[nodiscard]] inline first_order_damage estimate_first_order(NetworkImpl& net, const MaskSet& masks,
                                                             const data::image_dataset& data,
                                                             int64_t samples, int64_t micro_batch,
                                                             uint64_t seed,
                                                             damage_estimate how = damage_estimate::signed_change) {
  require(samples > 0 && micro_batch > 0, "first-order estimate: samples ", samples,
          " and micro-batch ", micro_batch, " must be positive");
  require(data.size() > 0, "first-order estimate: dataset '", data.name, "' is empty");
  const int64_t n = std::min(samples, data.size());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto picked = torch::randperm(data.size(), gen, torch::kLong).slice(0, 0, n);
  const auto device = train::device_of(net);

  train::detail::mode_guard eval_mode(net, /*training=*/false);
  detail::trainable_gates gates(masks);
  std::vector<torch::Tensor> damage;
  for (const auto& g : gates.gates) damage.push_back(torch::zeros_like(g, torch::kFloat));
  for (int64_t begin = 0; begin < n; begin += micro_batch) {
    const auto ids = picked.slice(0, begin, std::min(n, begin + micro_batch));
    const auto x = data::make_batch(data.images.index_select(0, ids), data.mean, data.stdev,
                                    data::augmentation{}, 0)
                       .to(device);
    const auto y = data.labels.index_select(0, ids).to(device);
    const auto loss = torch::nn::functional::cross_entropy(
        net.forward(x), y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    const auto grads = torch::autograd::grad({loss}, gates.gates, /*grad_outputs=*/{},
                                             /*retain_graph=*/false, /*create_graph=*/false,
                                             /*allow_unused=*/true);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < grads.size(); ++i)
      if (grads[i].defined())
        damage[i] += how == damage_estimate::magnitude ? grads[i].abs().to(torch::kFloat)
                                                       : -grads[i].to(torch::kFloat);
  }
  std::vector<torch::Tensor> flat;
  for (const auto& d : damage) flat.push_back(d.reshape({-1}).to(torch::kCPU));
  return {torch::cat(flat), n};
}

}  // namespace linearize::select
