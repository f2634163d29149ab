#pragma once
// What takes a ReLU's place where a slot linearizes it. A slot computes
//   y = a * relu(x) + (1 - a) * r(x)
// with r the identity by default (the fused masked ReLU, no module at all) or a replacement: a
// torch module the slot registers as its submodule "replacement", so that its parameters are the
// network's (optimizers, checkpoints, copies, exports see them) and train with the weights.
// AutoReP's per-channel polynomial (polynomial.hpp) is one; a user writes another as
//
//   struct ScaleImpl : torch::nn::Cloneable<ScaleImpl> {           // Cloneable: clone() works
//     explicit ScaleImpl(int64_t channels) : channels(channels) { reset(); }
//     void reset() override { s = register_parameter("s", torch::ones({channels})); }
//     torch::Tensor forward(const torch::Tensor& x) { ... }        // r(x), x's shape
//     linearize::replacement_cost cost() const { return linearize::replacement_cost::linear; }
//     int64_t channels; torch::Tensor s;
//   };
//   struct scale_replacement {                                     // the spec: a small value
//     std::shared_ptr<ScaleImpl> make(const linearize::replacement_site& site) const {
//       return std::make_shared<ScaleImpl>(site.channels());
//     }
//   };
//   linearize::replace_linearized(*net, scale_replacement{});       // replace_linearized.hpp
#include <linearize/core/granularity.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace linearize {

/// What a replacement costs in private inference, per position that evaluates it.
enum class replacement_cost {
  /// Affine in x with the server's weights (x itself, a per-channel scale and shift): computed
  /// on the secret shares like a linear layer, without a garbled circuit; free online, as the
  /// identity is.
  linear,
  /// Needs multiplications of secret values (x^2): a polynomial position, charged
  /// pi::cost_model::seconds_per_polynomial and bytes_per_polynomial.
  polynomial,
};

[[nodiscard]] constexpr std::string_view to_string(replacement_cost c) {
  return c == replacement_cost::linear ? "linear" : "polynomial";
}

/// What a slot tells a replacement's spec about the place it fills.
struct replacement_site {
  /// Activation shape of one sample, e.g. {C, H, W}; always known when a spec is asked.
  std::vector<int64_t> shape{};
  granularity grain = granularity::element;
  std::string stage{};
  int layer = -1;
  /// Dtype and device of the slot's mask: create the parameters with them.
  torch::TensorOptions options{};

  /// Channels of the activation (its first dimension; the features of a 2-d activation).
  [[nodiscard]] int64_t channels() const {
    require(!shape.empty(), "replacement_site: no activation shape; expected one like {C, H, W}");
    return shape.front();
  }
};

/// A replacement module M: a torch module computing r(x) for the slot's input x ([batch,
/// shape...]), in x's shape, that says what it costs. Derive it from torch::nn::Cloneable<M>
/// (with its parameters registered in reset()), or clone() of a network holding it fails.
template <class M>
concept replacement_module =
    std::derived_from<M, torch::nn::Module> && requires(M& m, const M& cm, const torch::Tensor& x) {
      { m.forward(x) } -> std::convertible_to<torch::Tensor>;
      { cm.cost() } -> std::same_as<replacement_cost>;
    };

namespace detail {
template <class P>
struct made_module {
  static constexpr bool value = false;
};
template <class M>
struct made_module<std::shared_ptr<M>> {
  static constexpr bool value = replacement_module<M>;
};
}  // namespace detail

/// A replacement spec: a small copyable value whose make(site) builds the module for one slot
/// as a std::shared_ptr<M> of a replacement_module M. Slots keep the spec, so that a clone or a
/// copy of the network builds its own module (and then copies the parameters).
template <class S>
concept replacement_spec =
    std::copy_constructible<S> && requires(const S& s, const replacement_site& site) {
      s.make(site);
    } && detail::made_module<std::decay_t<decltype(std::declval<const S&>().make(std::declval<const replacement_site&>()))>>::value;

/// The default: linearized positions pass x through. No module, no parameters; the slot runs
/// the fused masked ReLU as it always has.
struct identity_replacement {};

/// A replacement as a slot holds it: the module, and its forward and cost reached through it
/// without knowing its type.
struct installed_replacement {
  std::shared_ptr<torch::nn::Module> module{};
  std::function<torch::Tensor(const torch::Tensor&)> forward{};
  std::function<replacement_cost()> cost{};
  explicit operator bool() const { return module != nullptr; }
};

/// Builds a slot's replacement for a site.
using replacement_factory = std::function<installed_replacement(const replacement_site&)>;

/// The factory of a spec: builds the module and checks it.
template <replacement_spec Spec>
[[nodiscard]] replacement_factory factory_of(Spec spec) {
  return [spec = std::move(spec)](const replacement_site& site) {
    auto made = spec.make(site);
    require(made != nullptr, "replacement spec returned no module for a slot of shape ",
            torch::IntArrayRef(site.shape), "; expected a module");
    auto* raw = made.get();  // lives as long as `module` below
    installed_replacement out;
    out.module = made;
    out.forward = [raw](const torch::Tensor& x) -> torch::Tensor { return raw->forward(x); };
    out.cost = [raw] { return raw->cost(); };
    return out;
  };
}

}  // namespace linearize
