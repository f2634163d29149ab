#pragma once
// Where a relaxation's kept masks start, spread rather than all at one value. Under Adam every
// mask the penalty outweighs moves about lr per step whatever its gradient's size, so masks that
// start together cross the boundary together, faster than any controller can react (sigmoid_mask
// at one logit: 96,000 to 18,348 ReLUs in one epoch; autorep at one value: 90% within 10 steps).
// The spread is a fixed low-discrepancy (Weyl) sequence over each slot's entries, the same in
// every run, so which entries go is decided by the task gradient against the penalty, not by
// the order; its first entry is 0, so a single-entry from_binary (the mask geometry's probe)
// gives the spread's end.
#include <torch/torch.h>

#include <cstdint>

namespace linearize::relax {

/// n values in [0, 1), filling it evenly whatever n: frac(i x golden ratio), as double.
[[nodiscard]] inline torch::Tensor evenly_spread(int64_t n) {
  return (torch::arange(n, torch::kDouble) * 0.6180339887498949).frac();
}

}  // namespace linearize::relax
