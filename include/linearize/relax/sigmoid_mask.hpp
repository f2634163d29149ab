#pragma once
// A smooth gate in (0, 1): gate = sigmoid(theta / temperature). The penalty is the gate itself
// (the expected fraction of each entry's ReLU that remains), and an entry counts as kept while
// its gate exceeds 1/2.
#include <linearize/policy/roles.hpp>

#include <torch/torch.h>

#include <string>

namespace linearize::relax {

struct sigmoid_mask {
  using role = roles::relaxation;
  double temperature = 1.0;
  double init = 4.0;  ///< |theta| at the start: sigmoid(4) = 0.982 for a kept ReLU

  [[nodiscard]] torch::Tensor gate(const torch::Tensor& theta) const {
    return torch::sigmoid(theta / temperature);
  }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& theta) const { return gate(theta); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& theta) const { return theta.gt(0); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& theta) const { return gate(theta); }
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    return binary.to(torch::kFloat) * (2 * init) - init;
  }
  [[nodiscard]] std::string name() const { return "sigmoid_mask"; }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const sigmoid_mask& p, F&& f) {
  f("temperature", p.temperature);
  f("init", p.init);
}

}  // namespace linearize::relax
