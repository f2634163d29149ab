#pragma once
// selection_policy: produces the binary mask (which ReLUs stay). Simple rules read only the
// relaxation's scores or kept set; search-based rules (coordinate descent, stage criticality)
// also evaluate and finetune the network, through the context the stage hands them.
//
// select(ctx) is checked against the stand-in context (stand_in.hpp) and returns the mask or
// selected<Report> (selected.hpp). Give it an explicit return type: the check then reads only
// its declaration. A rule that works in steps declares the kind of scheduler it steps by,
//   static constexpr scheduler_kind steps_by = scheduler_kind::step;
// and pipeline() pairs it with such a scheduler (the given one, checked, or a default).
#include <linearize/policy/concepts/policy.hpp>
#include <linearize/policy/concepts/scheduler.hpp>
#include <linearize/policy/selected.hpp>
#include <linearize/policy/stand_in.hpp>

#include <concepts>
#include <string>

namespace linearize {

template <class S>
concept selection_policy =
    policy_of_role<S, roles::selection> && requires(const S& s, stand_in::context& ctx) {
      { s.name() } -> std::convertible_to<std::string>;
      { s.select(ctx) } -> selection_output;
    };

/// A selection rule that steps by a scheduler of a given kind.
template <class S>
concept stepping_selection = selection_policy<S> && requires {
  { S::steps_by } -> std::convertible_to<scheduler_kind>;
};

}  // namespace linearize
