#pragma once
// scheduler_policy: decides when to tighten and when to stop. Two kinds exist:
//  - penalty schedulers drive a relaxation's mask search: they set the penalty weight at the
//    start, may adjust it every few steps, and after each epoch decide whether to stop;
//  - step schedulers drive discrete searches (coordinate descent): how many ReLUs go per step.
#include <linearize/pipeline/concepts/policy.hpp>
#include <linearize/pipeline/progress.hpp>

#include <concepts>
#include <string>

namespace linearize {

template <class S>
concept scheduler_policy = policy_of_role<S, roles::scheduler> && requires(const S& s) {
  { s.name() } -> std::convertible_to<std::string>;
};

template <class S>
concept penalty_scheduler =
    scheduler_policy<S> && requires(const S& s, scalars& state, const search_progress& p) {
      { s.start(state) } -> std::same_as<void>;
      { s.after_epoch(state, p) } -> std::same_as<bool>;  ///< true: stop the search
      { s.max_epochs() } -> std::convertible_to<int64_t>;
    };

/// Optional for penalty schedulers: adjust every `every_steps()` steps.
template <class S>
concept stepwise_penalty_scheduler =
    penalty_scheduler<S> && requires(const S& s, scalars& state, const search_progress& p) {
      { s.every_steps() } -> std::convertible_to<int64_t>;
      { s.after_step(state, p) } -> std::same_as<void>;
    };

template <class S>
concept step_scheduler =
    scheduler_policy<S> && requires(const S& s, int64_t reference, int64_t target) {
      { s.step_size() } -> std::convertible_to<int64_t>;         ///< ReLUs removed per step
      { s.steps(reference, target) } -> std::convertible_to<int64_t>;
    };

}  // namespace linearize
