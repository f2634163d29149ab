#pragma once
// scheduler_policy: decides when to tighten and when to stop. Three kinds exist:
//  - penalty schedulers drive a relaxation's mask search: they set the penalty weight at the
//    start, may adjust it every few steps, and after each epoch decide whether to stop;
//  - step schedulers drive discrete searches (coordinate descent): how many ReLUs go per step;
//  - stage-wise schedulers drive DeepReDuce-like rules: how many stages a culling or thinning
//    step takes, and how long the network distils after each step.
// A selection rule that works in steps names the kind it steps by (selection.hpp); pipeline()
// checks that the scheduler given is of that kind and supplies a default when none is.
#include <linearize/policy/concepts/policy.hpp>
#include <linearize/policy/progress.hpp>
#include <linearize/policy/weight_probe.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

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

/// Optional for penalty schedulers: mask_speed(travel) sets how fast the masks move (1: as
/// the optimizer moves them; see pipeline/mask_speed.hpp).
template <class S>
concept mask_space_scheduler =
    penalty_scheduler<S> && requires(const S& s, const mask_travel& t) {
      { s.mask_speed(t) } -> std::convertible_to<double>;
    };

/// Optional for penalty schedulers: start from a measurement of where the penalty bites
/// (weight_probe.hpp) instead of a fixed weight; the search measures on probe_batches batches.
template <class S>
concept probing_scheduler =
    penalty_scheduler<S> &&
    requires(const S& s, scalars& state, const search_progress& p, const weight_probe& probe) {
      { s.probe_batches } -> std::convertible_to<int64_t>;
      { s.start(state, p, probe) } -> std::same_as<void>;
    };

/// Optional for probing schedulers: re-measure at an epoch's end where wants_probe says so (the
/// probe at the start sees the network before any ReLU has gone; as they go, the rest matter
/// more), and refresh from the new measurement.
template <class S>
concept reprobing_scheduler =
    probing_scheduler<S> &&
    requires(const S& s, scalars& state, const search_progress& p, const weight_probe& probe) {
      { s.wants_probe(std::as_const(state), p) } -> std::convertible_to<bool>;
      { s.refresh(state, p, probe) } -> std::same_as<void>;
    };

/// Optional for penalty schedulers: hold_at_budget() true makes the search count after every step
/// and, once the count is within the budget, hold the masks where they are for the rest of the
/// epoch (the weights keep training at that count) and then stop: checked only at epoch ends,
/// masks still on their way down keep crossing after the count has passed the budget.
template <class S>
concept holding_scheduler = penalty_scheduler<S> && requires(const S& s) {
  { s.hold_at_budget() } -> std::convertible_to<bool>;
};

/// Optional for holding schedulers: keeps_holding(progress) true at an epoch's end makes a held
/// search train on at the held count for another epoch instead of stopping (a plan that reaches
/// the budget early and trains at it).
template <class S>
concept lingering_scheduler = holding_scheduler<S> && requires(const S& s, const search_progress& p) {
  { s.keeps_holding(p) } -> std::convertible_to<bool>;
};

/// Optional for penalty schedulers: search_count(budget) is the count the search aims at and
/// stops at, at or above the budget; the selection cuts the rest (one that enforces the budget).
template <class S>
concept aiming_scheduler = penalty_scheduler<S> && requires(const S& s, int64_t budget) {
  { s.search_count(budget) } -> std::convertible_to<int64_t>;
};

/// Optional for aiming schedulers: a `search_to` member, the multiple of the budget the search
/// stops at, where 0 defers to the relaxation's own (relaxation.hpp, search_to_of); pipeline()'s
/// scheduler() fills it in, so the run's record holds the multiple searched to.
template <class S>
concept deferring_scheduler = aiming_scheduler<S> && requires(S s) {
  { s.search_to } -> std::convertible_to<double>;
  s.search_to = 1.0;
};

/// Optional for penalty schedulers: a plan whose shape defers to the relaxation, `plan_fraction`
/// (0: the relaxation's own, relaxation.hpp, plan_fraction_of) and `hold_to_plan` (unset: its
/// own, hold_to_plan_of); pipeline()'s scheduler() fills both in, so the run's record holds them.
template <class S>
concept plan_deferring_scheduler = penalty_scheduler<S> && requires(S s) {
  { s.plan_fraction } -> std::convertible_to<double>;
  s.plan_fraction = 0.5;
  s.hold_to_plan = std::optional<bool>{true};
};

template <class S>
concept step_scheduler =
    scheduler_policy<S> && requires(const S& s, int64_t reference, int64_t target) {
      { s.step_size() } -> std::convertible_to<int64_t>;         ///< ReLUs removed per step
      { s.steps(reference, target) } -> std::convertible_to<int64_t>;
    };

template <class S>
concept stage_scheduler = scheduler_policy<S> && requires(const S& s) {
  { s.cull_per_step } -> std::convertible_to<std::size_t>;  ///< stages culled per step (0: all)
  { s.thin_per_step } -> std::convertible_to<std::size_t>;  ///< stages thinned per step (0: all)
  { s.step_epochs } -> std::convertible_to<int64_t>;        ///< distillation after each step
};

/// The kind of scheduler a step-wise selection rule steps by.
enum class scheduler_kind { step, stage };

template <class S, scheduler_kind K>
concept scheduler_of_kind = (K == scheduler_kind::step && step_scheduler<S>) ||
                            (K == scheduler_kind::stage && stage_scheduler<S>);

}  // namespace linearize
