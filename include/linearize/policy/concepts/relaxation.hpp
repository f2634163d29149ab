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

/// Optional: a relaxation with memory. Its gate depends on the gate it set last as well as on the
/// parameter (AutoReP's hard mask flips only once its parameter leaves a band around the
/// threshold: hysteresis). `previous` is the slot's last gate, undefined when a search starts.
/// The search then counts a slot's gate, not kept(param), as what it keeps; the gate is saved
/// with the search's checkpoints, so a resumed search continues from the same state.
template <class R>
concept hysteretic_relaxation =
    relaxation_policy<R> &&
    requires(const R& r, const torch::Tensor& param, const torch::Tensor& previous) {
      { r.gate(param, previous) } -> std::convertible_to<torch::Tensor>;
    };

/// Optional: R::search_to, the multiple of the budget a search with this relaxation best stops
/// at, the selection cutting the rest (relax/l1_mix.hpp: 4); 1 for a relaxation that names none
/// (a gated one, whose kept gates sit near 1 above the budget: a cut there removes working ReLUs).
template <class R>
[[nodiscard]] constexpr double search_to_of() {
  if constexpr (requires { { R::search_to } -> std::convertible_to<double>; }) return R::search_to;
  else return 1.0;
}

}  // namespace linearize
