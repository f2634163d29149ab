#pragma once
// A ReLU budget: an absolute count, or a fraction of all ReLUs of the network.
#include <linearize/support/error.hpp>

#include <cmath>
#include <cstdint>
#include <charconv>
#include <string>
#include <string_view>

namespace linearize {

class budget {
 public:
  /// An absolute number of ReLUs.
  constexpr explicit budget(int64_t relus) : count_(relus), fraction_(-1) {}
  /// A fraction of all ReLUs, in (0, 1].
  [[nodiscard]] static constexpr budget fraction(double f) { return budget(f, 0); }

  [[nodiscard]] bool is_fraction() const { return fraction_ >= 0; }

  /// The budget as a count of ReLUs of a network with `total` ReLUs; a budget <= 0 or above
  /// the total is an error.
  [[nodiscard]] int64_t resolve(int64_t total) const {
    if (is_fraction()) {
      require(fraction_ > 0 && fraction_ <= 1 && std::isfinite(fraction_), "budget fraction ",
              fraction_, " out of range: expected a fraction in (0, 1] of the ", total, " ReLUs");
      return std::max<int64_t>(1, static_cast<int64_t>(std::floor(fraction_ * static_cast<double>(total))));
    }
    require(count_ > 0 && count_ <= total, "budget of ", count_,
            " ReLUs out of range: expected 1 to ", total, " (all ReLUs of the network)");
    return count_;
  }

  [[nodiscard]] std::string describe() const {
    return is_fraction() ? std::to_string(fraction_ * 100) + "% of all ReLUs"
                         : std::to_string(count_) + " ReLUs";
  }

 private:
  constexpr budget(double f, int) : count_(-1), fraction_(f) {}
  int64_t count_;
  double fraction_;
};

/// Reads a budget as people write it: "2880" (a count), "3%" (a percentage) or "0.03" (a
/// fraction, any number below 1 with a decimal point).
[[nodiscard]] inline budget parse_budget(std::string_view text) {
  const auto bad = [&] {
    fail("budget '", text, "' not understood; expected a count (2880), a percentage (3%) or a "
         "fraction (0.03)");
  };
  if (text.empty()) bad();
  const bool percent = text.back() == '%';
  const auto number = percent ? text.substr(0, text.size() - 1) : text;
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  // Not NaN, not infinite: from_chars reads "nan" and "inf" as numbers.
  if (ec != std::errc() || end != number.data() + number.size() || !(value > 0) || !std::isfinite(value)) bad();
  if (percent) {
    require(value <= 100, "budget '", text, "' is above 100% of the ReLUs; expected a percentage in (0, 100]");
    return budget::fraction(value / 100);
  }
  if (number.find('.') != std::string_view::npos) {
    if (value >= 1) bad();
    return budget::fraction(value);
  }
  // A count is a whole number that fits (1e-3 or 1e30 would truncate or overflow silently).
  require(value >= 1 && value == std::floor(value) && value < 9007199254740992.0, "budget '", text,
          "' is not a whole count of ReLUs; expected a count (2880), a percentage (3%) or a fraction (0.03)");
  return budget(static_cast<int64_t>(value));
}

}  // namespace linearize
