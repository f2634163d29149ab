#pragma once
// Accuracy and loss of a network on a dataset: eval mode (BatchNorm uses its running
// statistics), no autograd, and the caller's train/eval mode restored afterwards.
#include <linearize/core/network.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/loader.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/losses.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <optional>

namespace linearize::train {

struct metrics {
  double top1 = 0;                ///< fraction of samples whose label is the top logit, in [0, 1]
  std::optional<double> top5{};   ///< fraction with the label among the top 5 (classes >= 5)
  double loss = 0;                ///< mean cross entropy per sample
  int64_t samples = 0;
};

namespace detail {
/// Restores a module's train/eval mode when it goes out of scope (also on an exception).
class mode_guard {
 public:
  mode_guard(torch::nn::Module& module, bool training)
      : module_(module), was_training_(module.is_training()) {
    module_.train(training);
  }
  mode_guard(const mode_guard&) = delete;
  mode_guard& operator=(const mode_guard&) = delete;
  ~mode_guard() { module_.train(was_training_); }

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

/// Running totals of a classification pass; also the trainer's per-epoch statistics.
struct tally {
  double loss_sum = 0;   ///< sum over samples of the per-sample loss
  int64_t correct1 = 0, correct5 = 0, samples = 0;

  /// Adds a batch's (detached) logits and labels; `loss` is the batch's mean loss.
  void add(const torch::Tensor& logits, const torch::Tensor& labels, double loss, bool top5) {
    torch::NoGradGuard no_grad;
    const int64_t n = labels.size(0);
    const auto target = labels.to(logits.device()).view({-1, 1});
    if (top5) {
      const auto top = std::get<1>(logits.topk(5, 1));
      const auto hits = top.eq(target);
      correct1 += hits.select(1, 0).sum().item<int64_t>();
      correct5 += hits.any(1).sum().item<int64_t>();
    } else {
      correct1 += logits.argmax(1).eq(target.view({-1})).sum().item<int64_t>();
    }
    loss_sum += loss * static_cast<double>(n);
    samples += n;
  }
};
}  // namespace detail

/// Evaluates `net` on every batch `loader` gives for `epoch` (a loader without shuffling or
/// augmentation gives the plain dataset).
inline metrics evaluate(NetworkImpl& net, data::batch_loader& loader, int64_t epoch = 0) {
  torch::NoGradGuard no_grad;
  detail::mode_guard eval_mode(net, /*training=*/false);
  const auto device = device_of(net);
  detail::tally t;
  std::optional<bool> top5;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) {
    const auto logits = net.forward(b->images.to(device));
    const auto labels = b->labels.to(device);
    require(logits.dim() == 2 && logits.size(0) == labels.size(0), "evaluate: ", net.describe(),
            " returned logits of shape ", logits.sizes(), " for a batch of ", labels.size(0),
            "; expected [", labels.size(0), ", classes]");
    if (!top5) top5 = logits.size(1) >= 5;
    t.add(logits, labels, cross_entropy(logits, labels).item<double>(), *top5);
  }
  metrics m;
  m.samples = t.samples;
  if (t.samples == 0) return m;
  const auto n = static_cast<double>(t.samples);
  m.top1 = static_cast<double>(t.correct1) / n;
  if (*top5) m.top5 = static_cast<double>(t.correct5) / n;
  m.loss = t.loss_sum / n;
  return m;
}

/// Evaluates `net` on all of `data`, in order, without augmentation.
inline metrics evaluate(NetworkImpl& net, const data::image_dataset& data, int64_t batch_size = 256) {
  data::batch_loader loader(data, data::loader_options{
                                      .batch_size = batch_size, .shuffle = false, .seed = 0});
  return evaluate(net, loader);
}

inline metrics evaluate(const Network& net, const data::image_dataset& data,
                        int64_t batch_size = 256) {
  require(net != nullptr, "evaluate: the network is null");
  return evaluate(*net, data, batch_size);
}

}  // namespace linearize::train
