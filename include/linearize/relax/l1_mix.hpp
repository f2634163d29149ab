#pragma once
// SNL's relaxation: the gate is the raw mask parameter (no sigmoid, no clamp), the penalty is
// its L1 norm, and an entry counts as kept while it exceeds a threshold (0.01, a signed
// comparison: negative entries count as removed).
//
// step_scale: under Adam every parameter moves about `lr` per step whatever its gradient's
// size, so with SNL's lr of 1e-3 a mask needs ~1000 steps to fall from 1 to 0.01, however large
// lambda grows. Storing theta = gate / step_scale makes the mask move step_scale times faster
// (it is Adam with a mask learning rate of step_scale * lr) without touching the weights' rate.
// step_scale = 1 is SNL exactly.
#include <linearize/policy/roles.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <string>

namespace linearize::relax {

struct l1_mix {
  using role = roles::relaxation;
  double threshold = 0.01;
  double step_scale = 1;
  /// Where a search with it best stops, as a multiple of the budget, the selection keeping the
  /// largest masks (a scheduler whose search_to is 0 takes this; policy/concepts/relaxation.hpp).
  /// Its masks shrink continuously and the smallest carry little, while the last few-fold of a
  /// search to the budget is where it loses: searching to 4x, 3 seeds at equal compute on
  /// ResNet18-IN, +1.7 to +3.7 points at 10% to 1% (README, pareto's snl-tracking-cut).
  static constexpr double search_to = 4;

  [[nodiscard]] torch::Tensor gate(const torch::Tensor& param) const {
    return step_scale == 1 ? param : param * step_scale;
  }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& param) const { return gate(param).abs(); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& param) const { return gate(param).gt(threshold); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& param) const { return gate(param); }
  /// A kept ReLU starts at gate 1 (SNL's initialisation), a removed one at 0.
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    require(step_scale > 0, "l1_mix: step_scale ", step_scale, " must be positive");
    return binary.to(torch::kFloat) / step_scale;
  }
  [[nodiscard]] std::string name() const { return "l1_mix"; }
  /// With step_scale 1 the gate is the parameter: the search need not hand gates to the slots.
  [[nodiscard]] bool gate_is_parameter() const { return step_scale == 1; }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const l1_mix& p, F&& f) {
  f("threshold", p.threshold);
  f("step_scale", p.step_scale);
}

}  // namespace linearize::relax
