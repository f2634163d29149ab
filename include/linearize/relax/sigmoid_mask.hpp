#pragma once
// A smooth gate in (0, 1): gate = sigmoid(theta / temperature). The penalty is the gate itself
// (the expected fraction of each entry's ReLU that remains), and an entry counts as kept while
// its gate exceeds 1/2.
//
// Kept entries start spread evenly over [init, (1 + stagger) init] (relax/stagger.hpp), above
// init so that the network starts within 2% of its ReLUs (gate >= sigmoid(4) = 0.982), the first
// entry at the top so that the mask geometry's travel is the farthest. All at init (stagger 0),
// the masks crossed together: a 5-epoch plan to 5% on ResNet18-IN width 16 went from 96,000 to
// 18,348 ReLUs in one epoch and met the budget after 3 epochs, 1.9 points below the hand-tuned
// settings (README, defaults benchmark).
#include <linearize/policy/roles.hpp>
#include <linearize/relax/stagger.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>

namespace linearize::relax {

struct sigmoid_mask {
  using role = roles::relaxation;
  double temperature = 1.0;
  double init = 4.0;     ///< least |theta| at the start: sigmoid(4) = 0.982 for a kept ReLU
  double stagger = 1.0;  ///< kept entries start spread over [init, (1 + stagger) init]

  [[nodiscard]] torch::Tensor gate(const torch::Tensor& theta) const {
    return torch::sigmoid(theta / temperature);
  }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& theta) const { return gate(theta); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& theta) const { return theta.gt(0); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& theta) const { return gate(theta); }
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    require(std::isfinite(init) && init > 0 && std::isfinite(stagger) && stagger >= 0, "sigmoid_mask: init ",
            init, " > 0 and stagger ", stagger, " >= 0 expected (finite)");
    const auto kept_entry = binary.to(torch::kFloat);
    const auto u = evenly_spread(kept_entry.numel());
    const auto kept_start = (init * (1 + stagger * (1 - u))).to(torch::kFloat).reshape(kept_entry.sizes());
    return kept_entry * kept_start - (1 - kept_entry) * init;
  }
  [[nodiscard]] std::string name() const { return "sigmoid_mask"; }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const sigmoid_mask& p, F&& f) {
  f("temperature", p.temperature);
  f("init", p.init);
  f("stagger", p.stagger);
}

}  // namespace linearize::relax
