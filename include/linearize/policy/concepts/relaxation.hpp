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

/// Optional: R::plan_fraction and R::hold_to_plan, the plan a search with this relaxation does
/// best with: reach the budget at that fraction of the planned epochs and, held there, train at
/// the budget to the plan's end (relax/hard_threshold.hpp: 0.5 and true). 0 and false for a
/// relaxation that names none: the scheduler's own fraction, the search stopping once it holds.
template <class R>
[[nodiscard]] constexpr double plan_fraction_of() {
  if constexpr (requires { { R::plan_fraction } -> std::convertible_to<double>; }) return R::plan_fraction;
  else return 0.0;
}
template <class R>
[[nodiscard]] constexpr bool hold_to_plan_of() {
  if constexpr (requires { { R::hold_to_plan } -> std::convertible_to<bool>; }) return R::hold_to_plan;
  else return false;
}

}  // namespace linearize
