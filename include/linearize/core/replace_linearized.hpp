#pragma once
// Puts one kind of replacement on every slot of a network: what each slot computes where its
// ReLU is linearized (replacement.hpp). Every slot gets its own module (its own parameters),
// built for its activation shape:
//   linearize::replace_linearized(*net, linearize::polynomial_replacement{});   // AutoReP
//   linearize::replace_linearized(*net, linearize::identity_replacement{});     // back to x
// Build the optimizer afterwards: the new parameters are the network's from then on.
#include <linearize/core/relu_slot.hpp>
#include <linearize/core/replacement.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <concepts>
#include <cstddef>
#include <memory>

namespace linearize {

/// Gives every ReluSlot below `root` the replacement `spec` describes; returns how many slots.
template <class Spec>
  requires replacement_spec<Spec> || std::same_as<Spec, identity_replacement>
size_t replace_linearized(torch::nn::Module& root, const Spec& spec) {
  size_t slots = 0;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    if (auto slot = std::dynamic_pointer_cast<ReluSlotImpl>(item.value())) {
      slot->set_replacement(spec);
      ++slots;
    }
  }
  require(slots > 0, "replace_linearized: the module tree (", root.name(),
          ") contains no ReluSlot; expected a network whose ReLUs are linearize::ReluSlot");
  return slots;
}

template <class M, class Spec>
size_t replace_linearized(const std::shared_ptr<M>& root, const Spec& spec) {
  return replace_linearized(*root, spec);
}
template <class M, class Spec>
size_t replace_linearized(const torch::nn::ModuleHolder<M>& root, const Spec& spec) {
  return replace_linearized(*root.ptr(), spec);
}

}  // namespace linearize
