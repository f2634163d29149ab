#pragma once
// Where the penalty bites, measured before a mask search trains. For each mask entry, the
// penalty pushes it towards removal once  lambda * d(penalty)/d(param) > -d(task loss)/d(param),
// and under Adam it moves at about the optimizer's full step once the margin exceeds the task
// gradient's spread over batches: its threshold weight is
//   (max(0, -mean g_task) + spread of g_task) / g_penalty
// (over a few batches; the penalty's gradient at lambda = 1, ReLUs per entry included). Sorted, the thresholds say
// which weight leaves a given count untouched by the penalty: a scheduler can start there
// instead of from a hand-picked lambda0 that suits one network.
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace linearize {

struct weight_probe {
  torch::Tensor thresholds;  ///< double [entries]: the weight at which each entry starts to go
  torch::Tensor relus;       ///< int64 [entries]: ReLUs per entry
  int64_t images = 0;        ///< images forwarded by the probe

  /// The least weight at which the penalty pushes all but about `count` ReLUs (those with the
  /// highest thresholds stay); 0 when `count` covers every ReLU.
  [[nodiscard]] double weight_for(int64_t count) const {
    require(thresholds.defined() && thresholds.numel() == relus.numel() && thresholds.numel() > 0,
            "weight_probe: no thresholds measured");
    const auto order = std::get<1>(thresholds.sort(/*stable=*/true, 0, /*descending=*/true));
    const auto kept = relus.index_select(0, order).cumsum(0);
    const int64_t first_pushed = kept.le(count).sum().item<int64_t>();
    if (first_pushed >= thresholds.numel()) return 0;
    const double w = thresholds.index_select(0, order)[first_pushed].item<double>();
    return std::isfinite(w) ? w : std::numeric_limits<double>::max();
  }
};

}  // namespace linearize
