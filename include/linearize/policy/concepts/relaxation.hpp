#pragma once
// relaxation_policy: turns a slot's trainable mask parameter into the gate the slot applies,
// says what it costs (the penalty the search adds to the loss) and how important each entry is
// (the score a selection rule ranks or thresholds).
#include <linearize/policy/concepts/policy.hpp>

#include <torch/torch.h>

#include <concepts>

namespace linearize {

template <class R>
concept relaxation_policy =
    policy_of_role<R, roles::relaxation> &&
    requires(const R& r, const torch::Tensor& param, const torch::Tensor& binary) {
      { r.gate(param) } -> std::convertible_to<torch::Tensor>;     ///< gate values, param's shape
      { r.penalty(param) } -> std::convertible_to<torch::Tensor>;  ///< per-entry penalty
      { r.kept(param) } -> std::convertible_to<torch::Tensor>;     ///< bool: counted as kept
      { r.score(param) } -> std::convertible_to<torch::Tensor>;    ///< importance per entry
      { r.from_binary(binary) } -> std::convertible_to<torch::Tensor>;  ///< initial parameter
      { r.name() } -> std::convertible_to<std::string>;
    };

}  // namespace linearize
