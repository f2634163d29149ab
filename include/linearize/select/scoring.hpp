#pragma once
// Scoring a candidate mask by its accuracy drop on a fixed scoring set, with early rejection.
//
// The drop is measured against cached reference predictions: per sample, whether the reference
// network was right (c_ref) and whether the candidate is (c). Over the N samples of the set,
//   drop = (sum c_ref - sum c) / N = mean of d_i,   d_i = c_ref_i - c_i in {-1, 0, 1},
// which is exactly the difference of the two accuracies, computed as a paired comparison.
//
// Early rejection: samples are scored in batches, in the set's (seeded, random) order, and after
// each batch a candidate is dropped as soon as its full-set drop will reach the threshold:
//  - for certain: even if every remaining sample the reference got wrong turned right, the drop
//    would stay >= threshold (the sum of the remaining d_i is >= -(reference-wrong remaining));
//  - or with confidence: the prefix mean minus z standard errors is >= threshold. The prefix is a
//    sample without replacement from the fixed set, so the standard error carries the finite
//    population correction sqrt((N - n) / (N - 1)); the spread uses the second moment E[d^2]
//    (>= the variance), and no decision is taken on fewer than `min_samples` samples.
// Only rejections are early: a candidate is accepted on the whole set, never on a prefix.
//
// Data-parallel: the batches are scored in rounds of one batch per rank (rank r scores batches
// r, r + size, ...); after each round the ranks' per-sample results are summed, so every rank
// holds the round's samples, and feeds them to its test batch by batch in set order. Every rank
// therefore sees the same combined prefix and takes the same decision, at the same sample as
// one process would; only the rest of the round's batches are forwarded in vain.
#include <linearize/core/network.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace linearize::select {

/// When a candidate may be rejected before the whole scoring set is seen.
struct early_rejection {
  bool enabled = true;
  /// Standard errors the prefix mean must clear the threshold by. Infinity: only certain
  /// rejections (the decision then equals scoring the whole set).
  double z = 3.0;
  int64_t min_samples = 256;  ///< no statistical decision on fewer samples

  void validate() const {
    require(z > 0, "early_rejection: z ", z, " must be positive (infinity: certain rejections only)");
    require(min_samples >= 0, "early_rejection: min_samples ", min_samples, " must not be negative");
  }
};

/// A fixed set of images (normalized, no augmentation) in a fixed order, cut into batches.
struct scoring_set {
  torch::Tensor images;  ///< float [N, C, H, W], CPU
  torch::Tensor labels;  ///< int64 [N]
  int64_t batch_size = 256;

  [[nodiscard]] int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  [[nodiscard]] int64_t batches() const { return (size() + batch_size - 1) / batch_size; }
  [[nodiscard]] int64_t begin(int64_t b) const { return b * batch_size; }
  [[nodiscard]] int64_t end(int64_t b) const { return std::min(size(), (b + 1) * batch_size); }
};

/// `size` samples of `data` (0: all) in a seeded random order, so that every prefix is a random
/// sample of the set (what the sequential test assumes).
[[nodiscard]] inline scoring_set make_scoring_set(const data::image_dataset& data, int64_t size,
                                                  int64_t batch_size, uint64_t seed) {
  data.validate();
  require(size >= 0 && size <= data.size(), "scoring set of ", size, " samples out of range: '",
          data.name, "' has ", data.size(), " (0 takes all of them)");
  require(batch_size > 0, "scoring batch size ", batch_size, " must be positive");
  const int64_t n = size == 0 ? data.size() : size;
  require(n > 0, "scoring set: '", data.name, "' is empty");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto order = torch::randperm(data.size(), gen, torch::kLong).slice(0, 0, n);
  const auto picked = data.subset(order);
  return {data::make_batch(picked.images, picked.mean, picked.stdev, data::augmentation{}, 0),
          picked.labels, batch_size};
}

/// Whether `net` (in eval mode, as it is) classifies each sample of batch `b` correctly: bool [B].
[[nodiscard]] inline torch::Tensor batch_correct(NetworkImpl& net, const scoring_set& set, int64_t b,
                                                 torch::Device device) {
  const auto x = set.images.slice(0, set.begin(b), set.end(b)).to(device);
  const auto y = set.labels.slice(0, set.begin(b), set.end(b));
  const auto logits = net.forward(x);
  require(logits.dim() == 2 && logits.size(0) == y.size(0), "scoring: ", net.describe(),
          " returned logits of shape ", logits.sizes(), " for a batch of ", y.size(0));
  return logits.argmax(1).to(torch::kCPU).eq(y);
}

/// Per-sample correctness of `net` on the whole set: bool [N]. Eval mode, no gradients; the
/// network's train/eval mode is restored. Data-parallel: batches shared out, every rank gets all.
[[nodiscard]] inline torch::Tensor correctness(NetworkImpl& net, const scoring_set& set) {
  torch::NoGradGuard no_grad;
  train::detail::mode_guard eval_mode(net, /*training=*/false);
  const auto device = train::device_of(net);
  const auto group = distributed::world();
  if (group.alone()) {
    std::vector<torch::Tensor> parts;
    for (int64_t b = 0; b < set.batches(); ++b) parts.push_back(batch_correct(net, set, b, device));
    return torch::cat(parts);
  }
  auto all = torch::zeros({set.size()}, torch::kByte);
  for (int64_t b = group.rank(); b < set.batches(); b += group.size())
    all.slice(0, set.begin(b), set.end(b)).copy_(batch_correct(net, set, b, device));
  group.sum(all);
  return all.to(torch::kBool);
}

/// The sequential test of one candidate against the reference predictions (see the top).
class drop_test {
 public:
  /// `reference_correct`: bool [N]; `threshold`: the drop (a fraction, e.g. 0.003 for 0.3
  /// points) at or above which the candidate fails.
  drop_test(const torch::Tensor& reference_correct, double threshold, early_rejection rule)
      : reference_(reference_correct.to(torch::kCPU, torch::kBool).contiguous()),
        threshold_(threshold), rule_(rule) {
    require(reference_.dim() == 1 && reference_.numel() > 0,
            "drop_test: reference predictions of shape ", reference_.sizes(), "; expected [N > 0]");
    require(std::isfinite(threshold), "drop_test: threshold ", threshold, " must be finite");
    rule_.validate();
    const bool* r = reference_.data_ptr<bool>();
    for (int64_t i = 0; i < reference_.numel(); ++i) wrong_remaining_ += r[i] ? 0 : 1;
  }

  /// Adds the candidate's correctness on the next samples, in set order; returns whether the
  /// candidate is now rejected (always false once every sample is in: then see passed()).
  bool add(const torch::Tensor& candidate_correct) {
    require(!rejected_, "drop_test: samples added after the candidate was rejected");
    const auto c = candidate_correct.to(torch::kCPU, torch::kBool).contiguous();
    require(c.dim() == 1 && seen_ + c.numel() <= total(), "drop_test: ", c.numel(),
            " more samples after ", seen_, " of ", total());
    const bool* r = reference_.data_ptr<bool>() + seen_;
    const bool* p = c.data_ptr<bool>();
    for (int64_t i = 0; i < c.numel(); ++i) {
      const int d = static_cast<int>(r[i]) - static_cast<int>(p[i]);
      sum_ += d;
      squares_ += d != 0;
      wrong_remaining_ -= r[i] ? 0 : 1;
    }
    seen_ += c.numel();
    if (rule_.enabled && !complete()) rejected_ = certain_failure() || likely_failure();
    return rejected_;
  }

  [[nodiscard]] int64_t total() const { return reference_.numel(); }
  [[nodiscard]] int64_t samples() const { return seen_; }
  [[nodiscard]] bool complete() const { return seen_ == total(); }
  [[nodiscard]] bool rejected() const { return rejected_; }
  /// Whether the candidate passes: the whole set seen and its drop below the threshold.
  [[nodiscard]] bool passed() const { return complete() && drop() < threshold_; }
  /// The drop on the samples seen so far (exact once complete), as a fraction.
  [[nodiscard]] double drop() const {
    return seen_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(seen_);
  }
  /// The least drop the whole set can still show, whatever the remaining samples do.
  [[nodiscard]] double drop_lower_bound() const {
    return static_cast<double>(sum_ - wrong_remaining_) / static_cast<double>(total());
  }

 private:
  [[nodiscard]] bool certain_failure() const { return drop_lower_bound() >= threshold_; }
  [[nodiscard]] bool likely_failure() const {
    if (seen_ < std::max<int64_t>(rule_.min_samples, 1) || std::isinf(rule_.z)) return false;
    const auto n = static_cast<double>(seen_), N = static_cast<double>(total());
    const double second_moment = static_cast<double>(squares_) / n;
    const double se = std::sqrt(second_moment / n * (N - n) / std::max(N - 1, 1.0));
    return drop() - rule_.z * se >= threshold_;
  }

  torch::Tensor reference_;
  double threshold_;
  early_rejection rule_;
  int64_t seen_ = 0;
  int64_t sum_ = 0;              ///< sum of d_i over the samples seen
  int64_t squares_ = 0;          ///< sum of d_i^2
  int64_t wrong_remaining_ = 0;  ///< unseen samples the reference got wrong
  bool rejected_ = false;
};

/// What scoring one candidate found.
struct candidate_score {
  double drop = 0;        ///< exact when complete, else the prefix estimate
  int64_t samples = 0;    ///< images forwarded (by all ranks)
  bool passed = false;
  bool rejected_early = false;
};

/// Scores the network as it stands (the candidate's mask applied) against the reference.
[[nodiscard]] inline candidate_score score_candidate(NetworkImpl& net, const scoring_set& set,
                                                     const torch::Tensor& reference_correct,
                                                     double threshold, early_rejection rule) {
  require(reference_correct.numel() == set.size(), "score_candidate: ", reference_correct.numel(),
          " reference predictions for a scoring set of ", set.size());
  torch::NoGradGuard no_grad;
  train::detail::mode_guard eval_mode(net, /*training=*/false);
  const auto device = train::device_of(net);
  drop_test test(reference_correct, threshold, rule);
  const auto group = distributed::world();
  if (group.alone()) {
    for (int64_t b = 0; b < set.batches(); ++b)
      if (test.add(batch_correct(net, set, b, device))) break;
    return {test.drop(), test.samples(), test.passed(), test.rejected()};
  }
  int64_t forwarded = 0;
  for (int64_t first = 0; first < set.batches() && !test.rejected(); first += group.size()) {
    const int64_t last = std::min(set.batches(), first + group.size());  // this round: [first, last)
    const int64_t begin = set.begin(first);
    auto round = torch::zeros({set.end(last - 1) - begin}, torch::kByte);
    if (const int64_t mine = first + group.rank(); mine < last)
      round.slice(0, set.begin(mine) - begin, set.end(mine) - begin)
          .copy_(batch_correct(net, set, mine, device));
    group.sum(round);
    forwarded += round.numel();
    for (int64_t b = first; b < last; ++b)
      if (test.add(round.slice(0, set.begin(b) - begin, set.end(b) - begin).to(torch::kBool))) break;
  }
  return {test.drop(), forwarded, test.passed(), test.rejected()};
}

}  // namespace linearize::select
