#pragma once
// Re-estimating BatchNorm statistics. Binarizing a mask changes every activation downstream, so
// the running means and variances the network learnt no longer fit (REFERENCES.md: SNL's
// accuracy collapses to chance at binarization). Resetting them and averaging over a few
// training batches (no gradients, no weight change) is a cheap remedy. In a data-parallel run
// the batches are shared out among the ranks and the statistics averaged over them, weighted by
// batches: every rank ends with what one process would have estimated.
#include <linearize/core/network.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/loader.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/models/batch_norm.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace linearize::train {

/// Resets every BatchNorm's running statistics and re-estimates them as the plain average over
/// `batches` batches of `data` (no augmentation), then restores each layer's momentum and the
/// network's train/eval mode. Returns the number of images forwarded.
inline int64_t recalibrate_batchnorm(NetworkImpl& net, const data::image_dataset& data,
                                     int64_t batches = 50, int64_t batch_size = 256,
                                     uint64_t seed = 0) {
  require(batches > 0 && batch_size > 0, "recalibrate_batchnorm: batches ", batches,
          " and batch size ", batch_size, " must be positive");
  struct saved {
    torch::nn::BatchNormOptions* options;
    c10::optional<double> momentum;
    torch::Tensor batches_tracked;
  };
  std::vector<saved> layers;
  for (const auto& m : net.modules(/*include_self=*/false))
    models::visit_batchnorm(m.get(), [&](auto& bn) {
      layers.push_back({&bn.options, bn.options.momentum(), bn.num_batches_tracked});
      bn.reset_running_stats();
      bn.options.momentum(c10::nullopt);  // cumulative average over the batches below
    });
  if (layers.empty()) return 0;
  const bool was_training = net.is_training();
  torch::Device device = torch::kCPU;
  for (const auto& p : net.parameters()) {
    device = p.device();
    break;
  }
  const auto group = distributed::world();
  data::batch_loader loader(data, {.batch_size = batch_size, .shuffle = true, .seed = seed,
                                   .prefetch = group.alone()});
  net.train();
  int64_t seen = 0;
  if (group.alone()) {
    loader.start_epoch(0);
    torch::NoGradGuard no_grad;
    for (int64_t b = 0; b < batches; ++b) {
      auto batch = loader.next();
      if (!batch) break;
      seen += batch->images.size(0);
      (void)net.forward(batch->images.to(device));
    }
  } else {  // rank r takes batches r, r + size, ...
    const int64_t total = std::min(batches, loader.batches_per_epoch());
    int64_t mine = 0;
    {
      torch::NoGradGuard no_grad;
      for (int64_t b = group.rank(); b < total; b += group.size(), ++mine) {
        const auto batch = loader.make(0, b);
        seen += batch.images.size(0);
        (void)net.forward(batch.images.to(device));
      }
    }
    models::average_batchnorm_statistics(group, net, static_cast<double>(mine) / static_cast<double>(total));
    auto images = torch::tensor(seen, torch::kLong);
    group.sum(images);
    seen = images.item<int64_t>();
    torch::NoGradGuard no_grad;
    for (auto& l : layers)
      if (l.batches_tracked.defined()) l.batches_tracked.fill_(total);
  }
  for (auto& l : layers) l.options->momentum(l.momentum);
  net.train(was_training);
  return seen;
}

}  // namespace linearize::train
