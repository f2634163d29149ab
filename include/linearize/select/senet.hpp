#pragma once
// SENet (Kundu et al., ICLR 2023; REFERENCES.md) as its public code (RLNet) behaves, as a
// selection rule: no gradient on the mask.
//
//   auto senet = pipeline(select::senet{.epochs = 20}, finetune::distill{});
//
//   1. Per-layer sensitivity (sensitivity.hpp): the KD loss with 0, 25% or 50% of a slot's
//      ReLUs kept, the rest of the network intact; the allocator turns it into ReLU counts per
//      slot that sum to the budget. The public code reads such counts from a precomputed table.
//   2. The start mask: in each slot, its count of the entries whose ReLU changes the teacher's
//      activation most (the ranking the measurement used).
//   3. For `epochs` rounds: a few batches of training images (eval mode, no gradient, no
//      augmentation) through teacher and student, accumulating |teacher activation - student
//      activation| per entry of every slot (slot inputs and outputs, caught by a RecordFunction
//      observer, core/slot_capture.hpp; which student activation: below); each slot keeps its count
//      of the entries with the largest sum; then one epoch of KD with that mask (the stage's
//      finetune policy, phase "senet<round>").
//   4. The last round's mask is returned, frozen; the stage's finetune follows as usual.
//
// The candidates are what the stage hands over: the relaxation's kept set when one runs in front
// (its search ends near the budget; SENet then picks within it), else the network's current mask
// (all ReLUs of a fresh network, the previous stage's mask in a chain). SENet only removes.
//
// What differs from the public code: the sensitivity is measured, not read from a table; the
// start mask is the teacher's ranking (step 2); the difference is accumulated on a few
// batches before each KD epoch, apart from training, and by default against the linearized
// output (below); attention transfer (the public code's option, beta 1000 in its second stage)
// is left out: KD only.
//
// The difference. Compared with the student's slot output as it is (`difference = output`), a
// kept entry shows only upstream drift (relu of nearly the teacher's x) while a linearized one
// shows all of max(-x, 0): every round then prefers the entries just removed, and on the unit
// test's two-slot network each round swapped the whole kept set (changed = 2 x budget in every
// round of senet_report). The default, `linearized`, compares the teacher's slot output with
// what the student's slot would output were the entry linearized (its input for the identity,
// its polynomial of the input where AutoReP's polynomials replace ReLUs): the same criterion for
// kept and removed entries, the loss linearizing each would cause now; there the mask settles
// (a third of the kept set or less changing per round).
//
// Compute: the measurement forwards (1 + slots x fractions) x `sensitivity_images` images through
// the student; each round `batches` x `batch_size` images and one training epoch. The teacher's
// passes are not counted (as in every KD phase). A killed run, rerun from its work directory,
// measures again and replays the rounds (same seeds, same differences); each round's KD epoch
// resumes from its own checkpoint (a finished one is loaded, not trained again), so it ends at
// the same mask and weights (tests/unit/test_senet.cpp). Data-parallel runs are untested: each
// rank measures on all the images and chooses its own mask from the same computation; nothing
// yet makes the ranks agree where kernels are not deterministic (GPU).
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/policy/selected.hpp>
#include <linearize/select/sensitivity.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/seed.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace linearize::select {

/// What SENet compares with the teacher's slot output.
enum class feature_difference {
  linearized,  ///< what the student's slot outputs where linearized (see the top of this file)
  output,      ///< the student's slot output as it is (the criterion as REFERENCES.md states it)
};

[[nodiscard]] inline std::string to_string(feature_difference d) {
  return d == feature_difference::output ? "output" : "linearized";
}

/// What SENet found: the allocation and how much each round changed the mask.
struct senet_report {
  std::vector<std::string> slots;
  std::vector<int64_t> candidates;  ///< ReLUs each slot could keep
  std::vector<int64_t> allocated;   ///< ReLUs allocated to each slot
  std::vector<sensitivity_curve> curves;
  std::vector<int64_t> changed;     ///< entries each round's reselection switched (on or off)
  int64_t sensitivity_images = 0;   ///< through the student, measuring
  int64_t difference_images = 0;    ///< through the student, accumulating differences
  double seconds = 0;

  /// The report of a stage whose selection was SENet (stage_report::details); a
  /// linearize::error for any other stage.
  template <class StageReport>
  [[nodiscard]] static const senet_report& of(const StageReport& stage) {
    return stage.template details_of<senet_report>("SENet report");
  }
};

/// Per entry (flat, MaskSet order), the sum over `batches` batches of `data` (a seeded draw,
/// eval mode, no augmentation) of |teacher slot output - student slot output| (or the student's
/// linearized output), as double [entries]; `images` gets the images forwarded.
[[nodiscard]] inline torch::Tensor accumulate_difference(NetworkImpl& net, const Network& teacher,
                                                         const data::image_dataset& data, int64_t batches,
                                                         int64_t batch_size, uint64_t seed,
                                                         feature_difference how, int64_t& images) {
  require(data.size() > 0, "senet: no training images to compare teacher and network on");
  const MaskSet masks(net);
  const MaskSet teacher_masks = detail::matching_slots(teacher, masks, "senet");
  torch::NoGradGuard no_grad;
  train::detail::mode_guard student_eval(net, false), teacher_eval(*teacher, false);
  const auto xs = detail::fixed_batches(data, batches * batch_size, batch_size, seed, train::device_of(net));
  const auto teacher_device = train::device_of(*teacher);
  std::vector<torch::Tensor> sum(masks.size());
  for (size_t i = 0; i < masks.size(); ++i) sum[i] = torch::zeros({masks[i].mask_entries()}, torch::kDouble);
  std::vector<std::deque<torch::Tensor>> pending(masks.size());  // the teacher's outputs, in call order
  const auto linearized = [&](size_t i, const torch::Tensor& in, const torch::Tensor& out) {
    if (how == feature_difference::output) return out;
    if (const auto poly = masks[i].replacement_as<PolynomialImpl>()) return poly->forward(in);
    require(!masks[i].has_replacement(), "senet: slot '", masks.name(i), "' has a replacement other than "
            "a polynomial; difference = linearized knows only the identity and polynomials; use "
            "difference = output");
    return in;
  };
  for (const auto& x : xs) {
    {
      slot_capture capture(teacher_masks, [&](size_t i, const torch::Tensor&, const torch::Tensor& out) {
        pending[i].push_back(out.detach());
      });
      (void)teacher->forward(x.to(teacher_device));
    }
    {
      slot_capture capture(masks, [&](size_t i, const torch::Tensor& in, const torch::Tensor& out) {
        require(!pending[i].empty(), "senet: slot '", masks.name(i), "' ran more often in the network "
                "than in the teacher; expected the same architecture");
        const auto s = linearized(i, in, out);
        sum[i] += sum_per_entry(masks[i], (pending[i].front().to(s.device()) - s).abs()).to(torch::kCPU);
        pending[i].pop_front();
      });
      (void)net.forward(x);
    }
    for (size_t i = 0; i < masks.size(); ++i)
      require(pending[i].empty(), "senet: slot '", masks.name(i), "' ran more often in the teacher than "
              "in the network; expected the same architecture");
    images += x.size(0);
  }
  return torch::cat(sum);
}

struct senet {
  using role = roles::selection;

  int64_t epochs = 10;       ///< rounds of reselection + one KD epoch each
  int64_t batches = 4;       ///< batches per round whose differences decide the mask
  int64_t batch_size = 128;  ///< of those batches and of the sensitivity measurement
  feature_difference difference = feature_difference::linearized;
  std::vector<double> fractions = {0, 0.25, 0.5};  ///< sensitivity: keep fractions measured
  int64_t sensitivity_images = 256;                ///< sensitivity: held-out images
  double temperature = 4;                          ///< sensitivity: KD temperature

  [[nodiscard]] std::string name() const { return "senet"; }

  void validate() const {
    require(epochs >= 0, "senet: epochs ", epochs, "; expected >= 0 rounds");
    require(batches > 0 && batch_size > 0, "senet: batches ", batches, " and batch_size ", batch_size,
            "; expected both > 0");
    sensitivity_settings(0).validate();
  }

  [[nodiscard]] sensitivity_options sensitivity_settings(uint64_t seed) const {
    return {.fractions = fractions, .images = sensitivity_images, .batch_size = batch_size,
            .temperature = temperature, .seed = seed};
  }

  template <class Context>
  [[nodiscard]] selected<senet_report> select(Context& ctx) const {
    validate();
    const auto start = std::chrono::steady_clock::now();
    const MaskSet& masks = ctx.masks;
    const auto candidates = (ctx.kept.defined() ? ctx.kept : masks.binary()).to(torch::kCPU, torch::kBool);
    const auto& held_out = ctx.data.held_out.size() > 0 ? ctx.data.held_out : ctx.data.train;
    const auto m = measure_sensitivity(ctx.net, ctx.teacher, held_out, candidates,
                                       sensitivity_settings(ctx.seed(0x5e0e7u)));
    ctx.count_images(m.images_forwarded);
    const auto keep = allocate_entries(m.curves, ctx.budget);

    senet_report report;
    report.sensitivity_images = m.images_forwarded;
    report.curves = m.curves;
    std::vector<int64_t> offsets;
    for (size_t i = 0; i <= masks.size(); ++i) offsets.push_back(masks.offset(i));
    for (size_t i = 0; i < masks.size(); ++i) {
      report.slots.push_back(masks.name(i));
      report.candidates.push_back(m.curves[i].kept.back() * m.curves[i].relus_per_entry);
      report.allocated.push_back(keep[i] * m.curves[i].relus_per_entry);
    }

    torch::Tensor mask = keep_largest(m.importance, candidates, offsets, keep);
    masks.harden(mask);
    for (int64_t round = 0; round < epochs; ++round) {
      int64_t images = 0;
      const auto diff = accumulate_difference(ctx.net, ctx.teacher, ctx.data.train, batches, batch_size,
                                              derive_seed(ctx.seed(0x5e0e8u), {static_cast<uint64_t>(round)}),
                                              difference, images);
      ctx.count_images(images);
      report.difference_images += images;
      const torch::Tensor next = keep_largest(diff, candidates, offsets, keep);
      report.changed.push_back(next.ne(mask).sum().item<int64_t>());
      mask = next;
      masks.harden(mask);
      ctx.finetune(1, "senet" + std::to_string(round));
    }
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return {mask, std::move(report)};
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const senet& p, F&& f) {
  f("epochs", p.epochs);
  f("batches", p.batches);
  f("batch_size", p.batch_size);
  f("difference", to_string(p.difference));
  f("fractions", p.fractions);
  f("sensitivity_images", p.sensitivity_images);
  f("temperature", p.temperature);
}

}  // namespace linearize::select
