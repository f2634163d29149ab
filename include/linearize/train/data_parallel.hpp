#pragma once
// The trainer's data-parallel step. The global batch (options::batch_size, the batch one process
// would take) is cut into one shard per rank (data/loader.hpp). Each rank computes the loss of
// its shard, scaled by its share n_r / N of the batch, and backpropagates it; the ranks' gradients
// are then summed (distributed/replicas.hpp), which gives every rank the gradient of the global
// batch's mean loss, and every rank takes the same optimizer step. The loss value, the correct
// count and whether a rank's loss was not finite travel with the gradients, so every rank
// sees the same step statistics and takes the same decisions (a scheduler reading the loss, a
// NaN stopping the run). The scaling happens before the backward pass so that a synchronized
// BatchNorm, whose backward sums over the ranks, sees gradients of one global loss.
#include <linearize/core/network.hpp>
#include <linearize/data/loader.hpp>
#include <linearize/distributed/buckets.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/distributed/replicas.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace linearize::train::detail {

/// Every rank needs a sample of every batch: a BatchNorm cannot normalize an empty shard.
inline void require_shards(const data::batch_loader& loader, int ranks) {
  const int64_t n = loader.dataset().size(), b = loader.options().batch_size;
  const int64_t smallest = loader.options().drop_last || n % b == 0 ? std::min(n, b) : n % b;
  require(smallest >= ranks, "train: a batch of ", smallest, " sample(s) (dataset '", loader.dataset().name,
          "' of ", n, " samples in batches of ", b, ") cannot be shared by ", ranks,
          " ranks; expected every batch to hold at least one sample per rank: choose a batch size whose "
          "last batch is large enough, or drop_last");
}

/// What a step amounts to over all ranks.
struct step_totals {
  double loss = 0;       ///< the global batch's mean loss
  int64_t correct = 0;   ///< top-1 hits over the global batch
  int64_t samples = 0;   ///< the global batch's size
  std::string nonfinite_ranks{};  ///< ranks whose own loss was NaN or infinite
};

class data_parallel {
 public:
  data_parallel(distributed::group g, const std::vector<torch::Tensor>& params)
      : group_(std::move(g)), params_(params), buckets_(params) {}

  [[nodiscard]] const distributed::group& group() const { return group_; }

  /// Sums the ranks' gradients (of losses already scaled by their share) and step statistics:
  /// `weighted_loss` is this rank's loss times its share.
  step_totals reduce(double weighted_loss, int64_t correct, int64_t samples, bool nonfinite) {
    const int ranks = group_.size();
    auto stats = torch::zeros({3 + ranks}, torch::kDouble);
    auto* s = stats.data_ptr<double>();
    s[0] = std::isfinite(weighted_loss) ? weighted_loss : 0.0;
    s[1] = static_cast<double>(correct);
    s[2] = static_cast<double>(samples);
    s[3 + group_.rank()] = nonfinite ? 1.0 : 0.0;
    distributed::sum_gradients(group_, buckets_, params_, {stats}, 1.0);
    step_totals t{.loss = s[0], .correct = static_cast<int64_t>(s[1]), .samples = static_cast<int64_t>(s[2])};
    for (int r = 0; r < ranks; ++r)
      if (s[3 + r] != 0) {
        t.nonfinite_ranks += (t.nonfinite_ranks.empty() ? "" : ", ") + std::to_string(r);
        t.loss = NAN;
      }
    return t;
  }

 private:
  distributed::group group_;
  std::vector<torch::Tensor> params_;
  distributed::flat_buckets buckets_;
};

/// The trainable parameters of an optimizer, in its order (the same on every rank).
inline std::vector<torch::Tensor> optimized_parameters(const torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> params;
  for (const auto& g : optimizer.param_groups())
    for (const auto& p : g.params()) params.push_back(p);
  return params;
}

}  // namespace linearize::train::detail
