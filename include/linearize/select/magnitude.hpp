#pragma once
// SNL's selection: a ReLU stays where its relaxation's score exceeds a threshold (0.01 on the
// raw mask). The count that results is whatever the search reached; it may be below the budget.
#include <linearize/pipeline/roles.hpp>

#include <torch/torch.h>

#include <string>

namespace linearize::select {

struct magnitude {
  using role = roles::selection;
  double threshold = 0.01;

  [[nodiscard]] std::string name() const { return "magnitude"; }
  /// ctx.scores: float [E] over all mask entries.
  template <class Context>
  [[nodiscard]] torch::Tensor select(const Context& ctx) const {
    return ctx.scores.gt(threshold);
  }
};

}  // namespace linearize::select
