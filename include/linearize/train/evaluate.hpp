#pragma once
// Accuracy and loss of a network on a dataset: eval mode (BatchNorm uses its running
// statistics), no autograd, and the caller's train/eval mode restored afterwards. In a
// data-parallel run (distributed/group.hpp) each rank evaluates its contiguous part of the
// dataset and the counts are summed: every rank gets the metrics of the whole set.
#include <linearize/core/network.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/loader.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/distributed/shard.hpp>
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

/// The tally of `net` on every batch `loader` gives for `epoch`; `top5` tells whether top-5
/// was counted (set by the first batch: classes >= 5).
inline tally evaluate_tally(NetworkImpl& net, data::batch_loader& loader, int64_t epoch,
                            std::optional<bool>& top5) {
  torch::NoGradGuard no_grad;
  mode_guard eval_mode(net, /*training=*/false);
  const auto device = device_of(net);
  tally t;
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
  return t;
}

inline metrics to_metrics(const tally& t, bool top5) {
  metrics m;
  m.samples = t.samples;
  if (t.samples == 0) return m;
  const auto n = static_cast<double>(t.samples);
  m.top1 = static_cast<double>(t.correct1) / n;
  if (top5) m.top5 = static_cast<double>(t.correct5) / n;
  m.loss = t.loss_sum / n;
  return m;
}

/// Samples [begin, end) of `data`, sharing its storage.
inline data::image_dataset rows(const data::image_dataset& data, int64_t begin, int64_t end) {
  auto out = data;
  out.images = data.images.slice(0, begin, end);
  out.labels = data.labels.slice(0, begin, end);
  return out;
}
}  // namespace detail

/// Evaluates `net` on every batch `loader` gives for `epoch` (a loader without shuffling or
/// augmentation gives the plain dataset). This process's batches only: no ranks are combined.
inline metrics evaluate(NetworkImpl& net, data::batch_loader& loader, int64_t epoch = 0) {
  std::optional<bool> top5;
  const auto t = detail::evaluate_tally(net, loader, epoch, top5);
  return detail::to_metrics(t, top5.value_or(false));
}

/// Evaluates `net` on all of `data`, in order, without augmentation; in a data-parallel run
/// each rank evaluates its part and every rank returns the metrics of the whole set.
inline metrics evaluate(NetworkImpl& net, const data::image_dataset& data, int64_t batch_size = 256) {
  require(batch_size > 0, "evaluate: batch size ", batch_size, " must be positive");
  const auto g = distributed::world();
  if (g.alone()) {
    data::batch_loader loader(data, data::loader_options{
                                        .batch_size = batch_size, .shuffle = false, .seed = 0});
    return evaluate(net, loader);
  }
  const auto part = distributed::shard_of(data.size(), g.rank(), g.size());
  detail::tally t;
  std::optional<bool> top5;
  if (!part.empty()) {
    data::batch_loader loader(detail::rows(data, part.begin, part.end),
                              data::loader_options{.batch_size = batch_size, .shuffle = false, .seed = 0});
    t = detail::evaluate_tally(net, loader, 0, top5);
  }
  auto sums = torch::tensor({t.loss_sum, static_cast<double>(t.correct1), static_cast<double>(t.correct5),
                             static_cast<double>(t.samples), top5.value_or(false) ? 1.0 : 0.0},
                            torch::kDouble);
  g.sum(sums);
  const auto* s = sums.data_ptr<double>();
  detail::tally all{.loss_sum = s[0],
                    .correct1 = static_cast<int64_t>(s[1]),
                    .correct5 = static_cast<int64_t>(s[2]),
                    .samples = static_cast<int64_t>(s[3])};
  return detail::to_metrics(all, s[4] > 0);
}

inline metrics evaluate(const Network& net, const data::image_dataset& data,
                        int64_t batch_size = 256) {
  require(net != nullptr, "evaluate: the network is null");
  return evaluate(*net, data, batch_size);
}

}  // namespace linearize::train
