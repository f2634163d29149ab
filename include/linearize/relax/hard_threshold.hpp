#pragma once
// A binary gate in the forward pass, (theta > threshold), with a straight-through gradient: the
// backward pass treats the gate as theta itself, so the network trains as it will be deployed
// while the parameter still learns. The penalty is L1 on the parameter, as in SNL.
#include <linearize/policy/roles.hpp>

#include <torch/torch.h>

#include <string>

namespace linearize::relax {

struct hard_threshold {
  using role = roles::relaxation;
  double threshold = 0.5;

  [[nodiscard]] torch::Tensor gate(const torch::Tensor& theta) const {
    const auto hard = theta.gt(threshold).to(theta.dtype());
    return theta + (hard - theta).detach();  // value: hard; gradient: d gate / d theta = 1
  }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& theta) const { return theta.abs(); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& theta) const { return theta.gt(threshold); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& theta) const { return theta; }
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    return binary.to(torch::kFloat);
  }
  [[nodiscard]] std::string name() const { return "hard_threshold"; }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const hard_threshold& p, F&& f) {
  f("threshold", p.threshold);
}

}  // namespace linearize::relax
