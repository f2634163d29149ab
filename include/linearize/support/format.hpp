#pragma once
// Numbers as people read them, on fmt: ReLU counts with their digits grouped by thousands.
#include <fmt/format.h>

#include <concepts>
#include <cstdint>
#include <string>

namespace linearize {

/// 1234567 -> "1,234,567", whatever the locale. (fmt 9's group_digits prints a negative
/// number as its two's complement, so the sign is written here.)
template <std::integral Integer>
  requires(!std::same_as<Integer, bool>)
[[nodiscard]] std::string grouped(Integer n) {
  const bool negative = n < 0;
  const auto magnitude = negative ? uint64_t{0} - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
  return fmt::format("{}{}", negative ? "-" : "", fmt::group_digits(magnitude));
}

}  // namespace linearize
