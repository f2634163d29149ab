#pragma once
// A user's relaxation in one file: a clipped linear gate. The mask parameter theta is clipped to
// [0, 1] to give the gate (the slot sees a proper mix of ReLU and identity, never beyond), the
// penalty is the gate itself (the fraction of each ReLU still paid for), and an entry counts as
// kept while theta > 1/2. Its gradient is 0 outside [0, 1], so a mask the penalty pushed below 0
// stays removed unless the task pulls it back hard. Nothing in the library names it: it meets
// linearize::relaxation_policy and pipeline() takes it.
#include <linearize/policy/roles.hpp>

#include <torch/torch.h>

#include <string>

namespace user_policies {

struct clipped_gate {
  using role = linearize::roles::relaxation;
  double threshold = 0.5;

  [[nodiscard]] torch::Tensor gate(const torch::Tensor& theta) const { return theta.clamp(0, 1); }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& theta) const { return gate(theta); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& theta) const { return theta.gt(threshold); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& theta) const { return theta; }
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    return binary.to(torch::kFloat);
  }
  [[nodiscard]] std::string name() const { return "clipped_gate"; }
};

}  // namespace user_policies
