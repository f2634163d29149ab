#pragma once
// finetune_policy: recovers accuracy once the binary mask is fixed (and, for search-based
// selection rules, between their steps).
#include <linearize/pipeline/concepts/policy.hpp>

#include <concepts>
#include <string>

namespace linearize {

template <class F>
concept finetune_policy = policy_of_role<F, roles::finetune> && requires(const F& f) {
  { f.name() } -> std::convertible_to<std::string>;
  { f.epochs } -> std::convertible_to<int64_t>;
};

}  // namespace linearize
