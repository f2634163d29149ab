#pragma once
// The four roles a policy can play in a linearization pipeline. A policy declares its role with
// a member type, `using role = linearize::roles::selection;`, and the pipeline finds it by that
// tag (as Boost.SML finds its policies), whatever order the policies are given in.
#include <type_traits>

namespace linearize::roles {

struct relaxation {};  ///< how a trainable mask becomes a gate value, and its penalty
struct scheduler {};   ///< when to tighten the penalty and when to stop searching
struct selection {};   ///< which ReLUs stay: the binary mask
struct finetune {};    ///< how the network recovers after the mask is fixed

template <class P>
concept has_role = requires { typename P::role; };

template <class P>
struct role_of {
  using type = void;
};
template <has_role P>
struct role_of<P> {
  using type = typename P::role;
};
template <class P>
using role_of_t = typename role_of<std::remove_cvref_t<P>>::type;

/// Whether P plays one of the four roles.
template <class P>
inline constexpr bool is_policy =
    std::is_same_v<role_of_t<P>, relaxation> || std::is_same_v<role_of_t<P>, scheduler> ||
    std::is_same_v<role_of_t<P>, selection> || std::is_same_v<role_of_t<P>, finetune>;

}  // namespace linearize::roles
