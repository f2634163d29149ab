#pragma once
// SNL's relaxation: the gate is the raw mask parameter itself (no sigmoid, no clamp), the
// penalty is its L1 norm, and an entry counts as kept while it exceeds a threshold (0.01, a
// signed comparison: negative entries count as removed).
#include <linearize/pipeline/roles.hpp>

#include <torch/torch.h>

#include <string>

namespace linearize::relax {

struct l1_mix {
  using role = roles::relaxation;
  double threshold = 0.01;

  [[nodiscard]] torch::Tensor gate(const torch::Tensor& param) const { return param; }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& param) const { return param.abs(); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& param) const { return param.gt(threshold); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& param) const { return param; }
  /// A kept ReLU starts at 1 (SNL's initialisation), a removed one at 0.
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    return binary.to(torch::kFloat);
  }
  [[nodiscard]] std::string name() const { return "l1_mix"; }
  /// The gate is the parameter: the search need not hand gates to the slots each step.
  static constexpr bool gate_is_parameter = true;
};

}  // namespace linearize::relax
