#pragma once
// selection_policy: produces the binary mask (which ReLUs stay). Simple rules read only the
// relaxation's scores; search-based rules (coordinate descent, stage criticality) also evaluate
// and finetune the network, through the context the stage hands them.
#include <linearize/pipeline/concepts/policy.hpp>

#include <concepts>
#include <string>

namespace linearize {

template <class S>
concept selection_policy = policy_of_role<S, roles::selection> && requires(const S& s) {
  { s.name() } -> std::convertible_to<std::string>;
};

}  // namespace linearize
