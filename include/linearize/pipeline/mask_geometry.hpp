#pragma once
// Where a relaxation's masks travel. A kept entry starts at from_binary(1), a removed one at
// from_binary(0), and kept() flips somewhere between: the boundary, found here by bisection on
// kept() along that line (every stock relaxation thresholds a monotone gate, so it flips once).
// The distance from the start to the boundary is how far a mask must travel before the count
// moves: the search's dead time. The distance from the removed value to the boundary is how far
// a removed mask may jitter without counting again.
#include <linearize/policy/concepts/relaxation.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>

namespace linearize {

struct mask_geometry {
  double kept_start = 1;     ///< parameter value of a kept entry when a search starts
  double removed_start = 0;  ///< ... of a removed one
  double boundary = 0;       ///< where kept() flips

  [[nodiscard]] double travel() const { return std::abs(kept_start - boundary); }
  [[nodiscard]] double margin() const { return std::abs(removed_start - boundary); }
};

template <relaxation_policy Relax>
[[nodiscard]] mask_geometry geometry_of(const Relax& relax) {
  torch::NoGradGuard no_grad;
  const auto value = [&](bool b) {
    return relax.from_binary(torch::tensor({b})).to(torch::kDouble).template item<double>();
  };
  const auto kept = [&](double p) {
    return relax.kept(torch::tensor({p}, torch::kDouble)).template item<bool>();
  };
  mask_geometry g{.kept_start = value(true), .removed_start = value(false)};
  require(std::isfinite(g.kept_start) && std::isfinite(g.removed_start) && kept(g.kept_start) &&
              !kept(g.removed_start),
          "relaxation ", relax.name(), ": from_binary(1) = ", g.kept_start,
          " must count as kept and from_binary(0) = ", g.removed_start,
          " as removed; the search cannot place the boundary between them");
  double in = g.kept_start, out = g.removed_start;
  for (int i = 0; i < 100 && in != out; ++i) {
    const double mid = 0.5 * (in + out);
    if (mid == in || mid == out) break;
    (kept(mid) ? in : out) = mid;
  }
  g.boundary = 0.5 * (in + out);
  return g;
}

}  // namespace linearize
