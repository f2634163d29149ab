#pragma once
// pipeline(policies...): a linearization method as a type, composed at compile time.
//
//   auto snl = linearize::pipeline(linearize::relax::l1_mix{}, linearize::schedule::lasso_growth{},
//                                  linearize::select::magnitude{}, linearize::finetune::distill{});
//
// Policies may come in any order; each is found by its role tag (Boost.Hana find_if over the
// policy tuple). Absent roles get documented defaults where one makes sense:
//   relaxation  none: the stage starts from the network's current binary mask (no mask search)
//   scheduler   lasso_growth{} with a relaxation (SNL's schedule); for a selection that steps by
//               a scheduler, the default of its kind: fixed_step{} (step), stagewise{} (stage)
//   selection   required
//   finetune    distill{} (KD, SGD, cosine; 100 epochs)
// The composer sits above the policies (the contracts they are written against are in
// policy/), so these defaults are concrete algorithms. A doubled role, a missing selection, an
// argument that fits no role, a policy that lacks what its role's concept requires (checked
// against the stand-in context), a relaxation without a penalty scheduler, or a step-wise
// selection with a scheduler of another kind stop compilation with a static_assert that says
// which.
#include <linearize/finetune/distill.hpp>
#include <linearize/policy/concepts/finetune.hpp>
#include <linearize/policy/concepts/policy.hpp>
#include <linearize/policy/concepts/relaxation.hpp>
#include <linearize/policy/concepts/scheduler.hpp>
#include <linearize/policy/concepts/selection.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/schedule/lasso_growth.hpp>
#include <linearize/schedule/stagewise.hpp>

#include <boost/hana/bool.hpp>
#include <boost/hana/count_if.hpp>
#include <boost/hana/find_if.hpp>
#include <boost/hana/optional.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <string>
#include <type_traits>

namespace linearize {

namespace hana = boost::hana;

namespace detail {

template <class Role>
inline constexpr auto plays = [](auto const& p) {
  return hana::bool_c<std::is_same_v<roles::role_of_t<std::remove_cvref_t<decltype(p)>>, Role>>;
};

template <class Role, class... P>
inline constexpr std::size_t count_role =
    decltype(hana::count_if(hana::tuple_t<P...>, [](auto t) {
      return hana::bool_c<std::is_same_v<roles::role_of_t<typename decltype(t)::type>, Role>>;
    }))::value;

// The selection policy's type among P (void when there is none).
template <class... P>
struct selection_of {
  using type = void;
};
template <class First, class... Rest>
struct selection_of<First, Rest...> {
  using type = std::conditional_t<std::is_same_v<roles::role_of_t<First>, roles::selection>, First,
                                  typename selection_of<Rest...>::type>;
};
template <class... P>
using selection_of_t = typename selection_of<P...>::type;

// The scheduler of a stage that names none: lasso_growth with a relaxation; the default of
// the kind a step-wise selection steps by; else fixed_step (unused: the selection reads scores).
template <class Selection, bool Relaxed, bool Stepping = stepping_selection<Selection>>
struct default_scheduler {
  using type = std::conditional_t<Relaxed, schedule::lasso_growth, schedule::fixed_step>;
};
template <class Selection>
struct default_scheduler<Selection, false, true> {
  using type = std::conditional_t<Selection::steps_by == scheduler_kind::stage, schedule::stagewise,
                                  schedule::fixed_step>;
};

// A step-wise selection must get a scheduler of its kind.
template <class Selection, class Scheduler, bool Stepping = stepping_selection<Selection>>
struct check_pairing {
  static constexpr bool ok = true;
};
template <class Selection, class Scheduler>
struct check_pairing<Selection, Scheduler, true> {
  static_assert(Selection::steps_by != scheduler_kind::step || step_scheduler<Scheduler>,
                "linearize::pipeline: this selection needs a step scheduler (step_size(), "
                "steps(reference, target); e.g. schedule::fixed_step{.drc = ...}): it removes a "
                "fixed number of ReLUs per iteration. A penalty scheduler cannot drive it.");
  static_assert(Selection::steps_by != scheduler_kind::stage || stage_scheduler<Scheduler>,
                "linearize::pipeline: this selection needs a stage-wise scheduler (cull_per_step, "
                "thin_per_step, step_epochs; e.g. schedule::stagewise).");
  static constexpr bool ok = true;
};

// Instantiated once per argument, so that the compiler's "required from" note names the type.
template <class P>
struct check_argument {
  static_assert(roles::is_policy<P>,
                "linearize::pipeline: an argument fits no role. A policy declares its role with "
                "`using role = linearize::roles::relaxation;` (or scheduler, selection, finetune).");
  static_assert(!std::is_same_v<roles::role_of_t<P>, roles::relaxation> || relaxation_policy<P>,
                "linearize::pipeline: this relaxation policy does not satisfy "
                "linearize::relaxation_policy: it needs gate(param), penalty(param), kept(param), "
                "score(param), from_binary(mask) and name() (see policy/concepts/relaxation.hpp).");
  static_assert(!std::is_same_v<roles::role_of_t<P>, roles::scheduler> || scheduler_policy<P>,
                "linearize::pipeline: this scheduler does not satisfy linearize::scheduler_policy: "
                "it needs name() (see policy/concepts/scheduler.hpp).");
  static_assert(!std::is_same_v<roles::role_of_t<P>, roles::selection> || selection_policy<P>,
                "linearize::pipeline: this selection policy does not satisfy "
                "linearize::selection_policy: it needs name() and select(context) returning the "
                "mask or selected<Report>, with an explicit return type (see "
                "policy/concepts/selection.hpp).");
  static_assert(!std::is_same_v<roles::role_of_t<P>, roles::finetune> || finetune_policy<P>,
                "linearize::pipeline: this finetune policy does not satisfy "
                "linearize::finetune_policy: it needs name(), epochs and run(context, epochs, "
                "phase) returning finetune_outcome (see policy/concepts/finetune.hpp).");
  static constexpr bool ok = true;
};

}  // namespace detail

/// One stage of a linearization method: a relaxation (optional), a scheduler, a selection rule
/// and a finetuning recipe. Build it with linearize::pipeline(...).
template <class... Policies>
class pipeline_stage {
 public:
  constexpr explicit pipeline_stage(Policies... ps) : policies_(hana::make_tuple(ps...)) {}

  /// The policy playing `Role`, as a hana::optional (hana::nothing when absent).
  template <class Role>
  [[nodiscard]] constexpr auto find() const {
    return hana::find_if(policies_, detail::plays<Role>);
  }
  template <class Role>
  static constexpr bool has = detail::count_role<Role, Policies...> == 1;

  static constexpr bool has_relaxation = has<roles::relaxation>;
  using selection_type = detail::selection_of_t<Policies...>;
  /// The scheduler scheduler() returns when none is given (see the top of this file).
  using default_scheduler_type =
      typename detail::default_scheduler<selection_type, has_relaxation>::type;

  [[nodiscard]] constexpr auto relaxation() const {
    static_assert(has_relaxation, "this stage has no relaxation policy");
    return find<roles::relaxation>().value();
  }
  [[nodiscard]] constexpr auto selection() const { return find<roles::selection>().value(); }
  /// The scheduler given, or `fallback` when absent.
  template <class Fallback>
  [[nodiscard]] constexpr auto scheduler_or(Fallback fallback) const {
    return find<roles::scheduler>().value_or(fallback);
  }
  /// The scheduler given, or the default for the stage (see the top of this file); one that
  /// defers its search multiple (search_to 0) or its plan's shape (plan_fraction 0, hold_to_plan
  /// unset) to the relaxation gets the relaxation's own.
  [[nodiscard]] constexpr auto scheduler() const {
    auto s = find<roles::scheduler>().value_or(default_scheduler_type{});
    if constexpr (has_relaxation) {
      using R = std::remove_cvref_t<decltype(relaxation())>;
      if constexpr (deferring_scheduler<decltype(s)>)
        if (s.search_to == 0) s.search_to = search_to_of<R>();
      if constexpr (plan_deferring_scheduler<decltype(s)>) {
        if (s.plan_fraction == 0) s.plan_fraction = plan_fraction_of<R>();
        if (!s.hold_to_plan) s.hold_to_plan = hold_to_plan_of<R>();
      }
    }
    return s;
  }
  /// The finetune policy given, or distill{} when absent.
  [[nodiscard]] constexpr auto finetune() const {
    return find<roles::finetune>().value_or(finetune::distill{});
  }

  /// e.g. "l1_mix+lasso_growth+magnitude+distill".
  [[nodiscard]] std::string name() const {
    std::string out;
    if constexpr (has_relaxation) out += relaxation().name() + "+";
    if constexpr (has<roles::scheduler> || has_relaxation) out += scheduler().name() + "+";
    out += selection().name() + "+" + finetune().name();
    return out;
  }

 private:

  hana::tuple<Policies...> policies_;
};

template <class T>
inline constexpr bool is_pipeline_stage = false;
template <class... P>
inline constexpr bool is_pipeline_stage<pipeline_stage<P...>> = true;

/// Composes policies into one stage; see the top of this file for roles and defaults.
template <class... P>
[[nodiscard]] constexpr auto pipeline(P... policies) {
  static_assert((detail::check_argument<P>::ok && ...));
  static_assert(detail::count_role<roles::relaxation, P...> <= 1,
                "linearize::pipeline: more than one relaxation policy; a stage takes at most one "
                "of each role.");
  static_assert(detail::count_role<roles::scheduler, P...> <= 1,
                "linearize::pipeline: more than one scheduler; a stage takes at most one of each "
                "role.");
  static_assert(detail::count_role<roles::selection, P...> <= 1,
                "linearize::pipeline: more than one selection policy; a stage takes at most one "
                "of each role.");
  static_assert(detail::count_role<roles::finetune, P...> <= 1,
                "linearize::pipeline: more than one finetune policy; a stage takes at most one of "
                "each role.");
  static_assert(detail::count_role<roles::selection, P...> == 1,
                "linearize::pipeline: no selection policy; every stage needs one (for example "
                "linearize::select::magnitude{} or linearize::select::top_k{}).");
  using stage = pipeline_stage<P...>;
  using sched = decltype(std::declval<stage>().scheduler());
  using sel = detail::selection_of_t<P...>;
  if constexpr (stage::has_relaxation) {
    static_assert(penalty_scheduler<sched>,
                  "linearize::pipeline: a relaxation needs a penalty scheduler (start, after_epoch, "
                  "max_epochs; e.g. lasso_growth or budget_tracking); step schedulers such as "
                  "fixed_step drive coordinate descent instead.");
  }
  static_assert(detail::check_pairing<sel, sched>::ok);
  return stage(policies...);
}

}  // namespace linearize
