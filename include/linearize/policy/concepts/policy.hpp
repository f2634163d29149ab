#pragma once
// policy: anything that declares one of the four roles.
#include <linearize/policy/roles.hpp>

namespace linearize {

template <class P>
concept policy = roles::is_policy<P>;

template <class P, class Role>
concept policy_of_role = policy<P> && std::is_same_v<roles::role_of_t<P>, Role>;

}  // namespace linearize
