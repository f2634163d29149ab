#pragma once
// A relaxation whose masks move `speed` times faster under Adam. Adam moves every parameter by
// about its learning rate per step, whatever the gradient's size, so a mask that must travel
// from 1 to SNL's 0.01 threshold needs ~1,000 steps at lr 1e-3: more than a short search has.
// Storing param = theta / speed and handing the relaxation theta = param * speed is Adam with a
// mask learning rate of speed * lr, the weights' rate untouched (l1_mix's step_scale is the same
// idea for one relaxation). speed = 1 is the relaxation itself.
#include <linearize/policy/concepts/relaxation.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>

namespace linearize {

template <class Relax>
struct sped_up {
  using role = roles::relaxation;
  Relax inner;
  double speed = 1;

  [[nodiscard]] torch::Tensor theta(const torch::Tensor& param) const {
    return speed == 1 ? param : param * speed;
  }
  [[nodiscard]] torch::Tensor gate(const torch::Tensor& param) const { return inner.gate(theta(param)); }
  /// A hysteretic relaxation's gate, from the slot's previous one.
  template <class R = Relax>
    requires hysteretic_relaxation<R>
  [[nodiscard]] torch::Tensor gate(const torch::Tensor& param, const torch::Tensor& previous) const {
    return inner.gate(theta(param), previous);
  }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& param) const { return inner.penalty(theta(param)); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& param) const { return inner.kept(theta(param)); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& param) const { return inner.score(theta(param)); }
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    require(std::isfinite(speed) && speed > 0, "mask speed ", speed, " must be positive");
    const auto start = inner.from_binary(binary);
    return speed == 1 ? start : start / speed;
  }
  [[nodiscard]] std::string name() const { return inner.name(); }
  /// The slots may use the raw parameter only where the relaxation allows it and nothing scales.
  [[nodiscard]] bool gate_is_parameter() const {
    if constexpr (requires { inner.gate_is_parameter(); })
      return speed == 1 && inner.gate_is_parameter();
    else
      return false;
  }
};

}  // namespace linearize
