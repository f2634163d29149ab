#pragma once
// The one exception type of the library. Every message names the bad value and what was
// expected, so that a user can fix the call without reading the source.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace linearize {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
[[nodiscard]] std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}
}  // namespace detail

/// Throws linearize::error with the parts streamed together.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw error(detail::concat(std::forward<Parts>(parts)...));
}

/// Throws linearize::error when `condition` is false.
template <class... Parts>
void require(bool condition, Parts&&... parts) {
  if (!condition) fail(std::forward<Parts>(parts)...);
}

}  // namespace linearize
