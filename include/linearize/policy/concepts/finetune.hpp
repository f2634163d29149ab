#pragma once
// finetune_policy: recovers accuracy once the binary mask is fixed (and, for search-based
// selection rules, between their steps). run(ctx, epochs, phase) trains ctx.net and returns
// what it did (finetune_outcome); it is checked against the stand-in context.
#include <linearize/policy/concepts/policy.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/policy/stand_in.hpp>

#include <concepts>
#include <cstdint>
#include <string>

namespace linearize {

template <class F>
concept finetune_policy =
    policy_of_role<F, roles::finetune> &&
    requires(const F& f, stand_in::context& ctx, int64_t epochs, const std::string& phase) {
      { f.name() } -> std::convertible_to<std::string>;
      { f.epochs } -> std::convertible_to<int64_t>;
      { f.run(ctx, epochs, phase) } -> std::same_as<finetune_outcome>;
    };

}  // namespace linearize
