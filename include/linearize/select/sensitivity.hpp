#pragma once
// Per-layer ReLU sensitivity and the per-layer ReLU counts it implies (SENet, REFERENCES.md; its
// public code reads a precomputed table, the code that computes it is not public).
//
// Measurement. For every slot and every keep fraction f of a short list (default 0, 0.25, 0.5),
// the network keeps floor(f * n) of the slot's n candidate entries and every candidate of every
// other slot, and the KD loss (student against teacher, T = 4) is measured on a fixed set of
// held-out images; all n kept is measured once for all slots. Which entries a fraction keeps:
// those whose ReLU changes the teacher's activation most on those images, mean
// |relu(x) - x| = mean max(-x, 0) of the teacher's slot input, i.e. what linearizing the entry
// to the identity would lose (ties: lower index). It is deterministic, needs one teacher pass,
// and does not depend on the student's current mask. The loss, not the accuracy: on a few
// hundred images an accuracy drop is mostly 0 or noise, the KD loss moves smoothly.
//
// Allocation. Each slot's points (entries kept, loss) form a piecewise-linear curve; the
// allocator takes each curve's lower convex hull and hands out ReLUs greedily by the loss
// reduction per ReLU of each slot's next hull segment (exact for the hull-relaxed problem,
// whose gains per slot only decrease). With element masks the counts sum exactly to the budget
// (or to every candidate, when the budget is larger). With coarser masks an entry costs several
// ReLUs: the fill goes on with any slot whose next entry still fits, so no entry that fits is
// left out, but mixed entry sizes can leave less than the best packing would (a knapsack).
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/slot_capture.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/losses.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace linearize::select {

/// An activation [batch, shape...] of a slot summed over the batch and over the positions each
/// mask entry covers: flat [mask entries] (element: every position; channel: per channel;
/// layer: one value).
[[nodiscard]] inline torch::Tensor sum_per_entry(const ReluSlotImpl& slot, const torch::Tensor& a) {
  const auto b = a.detach().to(torch::kDouble);
  switch (slot.options.grain) {
    case granularity::element: return b.sum(0).reshape({-1});
    case granularity::channel: return b.transpose(0, 1).reshape({b.size(1), -1}).sum(1);
    case granularity::layer: return b.sum().reshape({1});
  }
  return b.sum(0).reshape({-1});
}

/// One slot's sensitivity: the loss with `kept[j]` of its candidate entries kept (the other
/// slots as they were), `kept` strictly ascending from 0 to all candidates.
struct sensitivity_curve {
  int64_t relus_per_entry = 1;
  std::vector<int64_t> kept;
  std::vector<double> loss;
};

inline void validate_curve(const sensitivity_curve& c, size_t slot) {
  require(c.relus_per_entry > 0, "sensitivity curve of slot ", slot, ": relus_per_entry ",
          c.relus_per_entry, "; expected > 0");
  require(!c.kept.empty() && c.kept.size() == c.loss.size() && c.kept.front() == 0,
          "sensitivity curve of slot ", slot, ": ", c.kept.size(), " counts and ", c.loss.size(),
          " losses; expected as many of each, the first count 0");
  for (size_t j = 0; j < c.kept.size(); ++j) {
    require(std::isfinite(c.loss[j]), "sensitivity curve of slot ", slot, ": loss ", c.loss[j],
            " at ", c.kept[j], " entries; expected a finite loss");
    require(j == 0 || c.kept[j] > c.kept[j - 1], "sensitivity curve of slot ", slot,
            ": counts not strictly ascending (", c.kept[j - (j > 0)], " then ", c.kept[j], ")");
  }
}

namespace detail {
/// Indices of the lower convex hull of a curve's points (x ascending).
inline std::vector<size_t> lower_hull(const sensitivity_curve& c) {
  std::vector<size_t> h;
  const auto cross = [&](size_t o, size_t a, size_t b) {
    return static_cast<double>(c.kept[a] - c.kept[o]) * (c.loss[b] - c.loss[o]) -
           (c.loss[a] - c.loss[o]) * static_cast<double>(c.kept[b] - c.kept[o]);
  };
  for (size_t j = 0; j < c.kept.size(); ++j) {
    while (h.size() >= 2 && cross(h[h.size() - 2], h.back(), j) <= 0) h.pop_back();
    h.push_back(j);
  }
  return h;
}
}  // namespace detail

/// Entries to keep per slot: sum(entries[i] * relus_per_entry[i]) is the budget (element
/// masks; coarser: the greedy fill, see the top of this file), or every candidate when the
/// budget holds them all. Ties between slots go to the earlier slot.
[[nodiscard]] inline std::vector<int64_t> allocate_entries(const std::vector<sensitivity_curve>& curves,
                                                           int64_t budget) {
  require(budget >= 0, "allocate_entries: budget ", budget, "; expected >= 0 ReLUs");
  std::vector<std::vector<size_t>> hulls;
  for (size_t i = 0; i < curves.size(); ++i) {
    validate_curve(curves[i], i);
    hulls.push_back(detail::lower_hull(curves[i]));
  }
  std::vector<int64_t> entries(curves.size(), 0);
  std::vector<size_t> segment(curves.size(), 0);  // the hull segment each slot is in
  int64_t left = budget;
  while (true) {
    size_t best = curves.size();
    double best_gain = 0;
    for (size_t i = 0; i < curves.size(); ++i) {
      const auto& c = curves[i];
      const auto& h = hulls[i];
      if (segment[i] + 1 >= h.size() || c.relus_per_entry > left) continue;
      const size_t a = h[segment[i]], b = h[segment[i] + 1];
      const double gain = (c.loss[a] - c.loss[b]) /
                          (static_cast<double>(c.kept[b] - c.kept[a]) * static_cast<double>(c.relus_per_entry));
      if (best == curves.size() || gain > best_gain) {
        best = i;
        best_gain = gain;
      }
    }
    if (best == curves.size()) break;
    const auto& c = curves[best];
    const int64_t end = c.kept[hulls[best][segment[best] + 1]];
    const int64_t take = std::min(end - entries[best], left / c.relus_per_entry);
    entries[best] += take;
    left -= take * c.relus_per_entry;
    if (entries[best] == end) ++segment[best];
  }
  return entries;
}

/// bool [entries]: in each slot (flat entries [offsets[i], offsets[i + 1])), the keep[i]
/// candidates with the largest score (ties: the lower index).
[[nodiscard]] inline torch::Tensor keep_largest(const torch::Tensor& score, const torch::Tensor& candidates,
                                                const std::vector<int64_t>& offsets,
                                                const std::vector<int64_t>& keep) {
  require(offsets.size() == keep.size() + 1 && !offsets.empty() && score.dim() == 1 &&
              candidates.dim() == 1 && score.numel() == offsets.back() && candidates.numel() == offsets.back(),
          "keep_largest: ", score.numel(), " scores, ", candidates.numel(), " candidates, ", keep.size(),
          " slots and ", offsets.size(), " offsets; expected one score and one candidate flag per entry, "
          "slots + 1 offsets ending at the entry count");
  const auto s = score.to(torch::kCPU, torch::kDouble);
  const auto cand = candidates.to(torch::kCPU, torch::kBool);
  auto out = torch::zeros({offsets.back()}, torch::kBool);
  for (size_t i = 0; i < keep.size(); ++i) {
    const auto idx = cand.slice(0, offsets[i], offsets[i + 1]).nonzero().reshape({-1});
    require(keep[i] >= 0 && keep[i] <= idx.numel(), "keep_largest: slot ", i, " asked to keep ", keep[i],
            " entries; expected 0 to its ", idx.numel(), " candidates");
    if (keep[i] == 0) continue;
    const auto order = std::get<1>(s.slice(0, offsets[i], offsets[i + 1]).index_select(0, idx)
                                       .sort(/*stable=*/true, 0, /*descending=*/true));
    out.index_put_({idx.index_select(0, order.slice(0, 0, keep[i])) + offsets[i]}, true);
  }
  return out;
}

struct sensitivity_options {
  std::vector<double> fractions = {0, 0.25, 0.5};  ///< first 0, strictly ascending, below 1
  int64_t images = 256;      ///< measurement images (a seeded draw, fixed for every point)
  int64_t batch_size = 128;
  double temperature = 4;    ///< of the KD loss
  uint64_t seed = 0;         ///< which images

  void validate() const {
    require(!fractions.empty(), "sensitivity: no fractions; expected a list starting at 0");
    require(fractions.front() == 0, "sensitivity: fractions start at ", fractions.front(),
            "; expected a list starting at 0 (the slot with none of its ReLUs)");
    for (size_t j = 0; j < fractions.size(); ++j)
      require(std::isfinite(fractions[j]) && fractions[j] < 1 && (j == 0 || fractions[j] > fractions[j - 1]),
              "sensitivity: fraction ", fractions[j], " at position ", j,
              "; expected strictly ascending fractions in [0, 1) (all kept is always measured)");
    require(images > 0 && batch_size > 0, "sensitivity: images ", images, " and batch_size ", batch_size,
            "; expected both > 0");
    require(std::isfinite(temperature) && temperature > 0, "sensitivity: temperature ", temperature,
            "; expected > 0");
  }
};

struct sensitivity_measurement {
  std::vector<sensitivity_curve> curves;  ///< one per slot, MaskSet order
  /// double [entries]: mean |relu(x) - x| of the teacher's slot input per entry (which entries a
  /// fraction keeps).
  torch::Tensor importance;
  double full_loss = 0;          ///< every candidate kept
  int64_t images_forwarded = 0;  ///< through the student (the teacher's passes not counted)
};

namespace detail {
/// The teacher's slots, checked to match the student's one for one.
inline MaskSet matching_slots(const Network& teacher, const MaskSet& student, const char* who) {
  require(static_cast<bool>(teacher), who, ": no teacher; expected the network before linearization "
          "(run() passes it)");
  MaskSet t(*teacher);
  require(t.size() == student.size(), who, ": the teacher has ", t.size(), " slots, the network ",
          student.size(), "; expected the same architecture");
  for (size_t i = 0; i < t.size(); ++i)
    require(t.name(i) == student.name(i) && t[i].mask_entries() == student[i].mask_entries() &&
                t[i].total_relus() == student[i].total_relus(),
            who, ": slot ", i, " is '", student.name(i), "' with ", student[i].mask_entries(),
            " entries in the network, '", t.name(i), "' with ", t[i].mask_entries(),
            " in the teacher; expected the same architecture");
  return t;
}

/// `n` images of `data` (a seeded draw), normalized, unaugmented, in batches on `device`.
inline std::vector<torch::Tensor> fixed_batches(const data::image_dataset& data, int64_t n, int64_t batch_size,
                                                uint64_t seed, torch::Device device) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  n = std::min(n, data.size());
  const auto picked = torch::randperm(data.size(), gen, torch::kLong).slice(0, 0, n);
  std::vector<torch::Tensor> out;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    const auto ids = picked.slice(0, begin, std::min(n, begin + batch_size));
    out.push_back(data::make_batch(data.images.index_select(0, ids), data.mean, data.stdev,
                                   data::augmentation{}, 0)
                      .to(device));
  }
  return out;
}
}  // namespace detail

/// Measures every slot's sensitivity on `net` (see the top of this file): `candidates` (bool
/// [entries]) are the entries the net may keep. Afterwards every slot is hard at the binary mask
/// it had before (a relaxation's soft values are not kept: a selection replaces them anyway).
/// `images` are held-out images (the caller's choice of set).
[[nodiscard]] inline sensitivity_measurement measure_sensitivity(NetworkImpl& net, const Network& teacher,
                                                                 const data::image_dataset& images,
                                                                 const torch::Tensor& candidates,
                                                                 const sensitivity_options& o) {
  o.validate();
  require(images.size() > 0, "sensitivity: no images to measure on; expected held-out (or training) images");
  const MaskSet masks(net);
  const MaskSet teacher_masks = detail::matching_slots(teacher, masks, "sensitivity");
  const auto cand = candidates.to(torch::kCPU, torch::kBool);
  require(cand.dim() == 1 && cand.numel() == masks.entries(), "sensitivity: candidates of shape ",
          cand.sizes(), "; expected [", masks.entries(), "]");
  std::vector<int64_t> offsets;
  for (size_t i = 0; i <= masks.size(); ++i) offsets.push_back(masks.offset(i));

  torch::NoGradGuard no_grad;
  Network t = teacher;
  train::detail::mode_guard student_eval(net, false), teacher_eval(*t, false);
  const auto batches = detail::fixed_batches(images, o.images, o.batch_size, o.seed, train::device_of(net));
  const auto teacher_device = train::device_of(*t);

  sensitivity_measurement m;
  std::vector<torch::Tensor> importance(masks.size());
  for (size_t i = 0; i < masks.size(); ++i) importance[i] = torch::zeros({masks[i].mask_entries()}, torch::kDouble);
  std::vector<torch::Tensor> teacher_logits;
  {
    slot_capture capture(teacher_masks, [&](size_t i, const torch::Tensor& in, const torch::Tensor& out) {
      importance[i] += sum_per_entry(teacher_masks[i], (out - in).abs()).to(torch::kCPU);
    });
    for (const auto& x : batches) teacher_logits.push_back(t->forward(x.to(teacher_device)));
  }
  m.importance = torch::cat(importance);

  int64_t n = 0;
  for (const auto& x : batches) n += x.size(0);
  const auto kd = [&] {
    double sum = 0;
    for (size_t b = 0; b < batches.size(); ++b) {
      const auto s = net.forward(batches[b]);
      sum += train::kd_loss(s, teacher_logits[b].to(s.device()), o.temperature).item<double>() *
             static_cast<double>(batches[b].size(0));
    }
    m.images_forwarded += n;
    return sum / static_cast<double>(n);
  };

  const auto before = masks.binary();
  masks.harden(cand);
  m.full_loss = kd();
  for (size_t i = 0; i < masks.size(); ++i) {
    sensitivity_curve c;
    c.relus_per_entry = masks[i].relus_per_entry();
    const int64_t available = cand.slice(0, offsets[i], offsets[i + 1]).sum().item<int64_t>();
    for (double f : o.fractions) {
      const auto k = static_cast<int64_t>(std::floor(f * static_cast<double>(available)));
      if (!c.kept.empty() && k <= c.kept.back()) continue;  // a small slot: the same point again
      if (k == available) break;
      auto keep = std::vector<int64_t>(masks.size(), 0);
      keep[i] = k;
      auto mask = cand.clone();
      mask.slice(0, offsets[i], offsets[i + 1])
          .copy_(keep_largest(m.importance, cand, offsets, keep).slice(0, offsets[i], offsets[i + 1]));
      masks.harden(mask);
      c.kept.push_back(k);
      c.loss.push_back(kd());
    }
    if (c.kept.empty() || c.kept.back() < available) {
      c.kept.push_back(available);
      c.loss.push_back(m.full_loss);
    }
    m.curves.push_back(std::move(c));
  }
  masks.harden(before);
  return m;
}

}  // namespace linearize::select
