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
  /// The plan a search with it does best with (a scheduler that defers takes these;
  /// policy/concepts/relaxation.hpp): reach the budget at half the planned epochs and train at
  /// it to the plan's end. Its forward pass is already the binary network, so the epochs at the
  /// budget train the network it will finetune; stopping once the budget was met, its searches
  /// trailed the hand-tuned settings, which overran their plan (WRN-22-1 5%: -1.58 +- 0.44 at
  /// about equal images, +0.03 +- 0.44 with this plan; README, "Reaching the budget early").
  static constexpr double plan_fraction = 0.5;
  static constexpr bool hold_to_plan = true;

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
