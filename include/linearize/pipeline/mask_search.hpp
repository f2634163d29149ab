#pragma once
// The mask search of relaxation-based methods (SNL's phase 1): weights and masks train together
// on  CE + KD + lambda * sum over slots of (ReLUs per entry * penalty(mask)),  the relaxation
// turns each mask into the gate its slot applies, and the penalty scheduler moves lambda and
// decides when to stop. Everything the scheduler keeps lives in the trainer's named scalars, so a
// killed search resumes with the same lambda.
//
// A scheduler may set how fast masks move (mask_space_scheduler; pipeline/mask_speed.hpp, from
// how far they travel, pipeline/mask_geometry.hpp) and start from a probe of where the penalty
// bites (probing_scheduler; policy/weight_probe.hpp). The scores and the kept set the search
// hands to the selection are the relaxation's, at that speed.
#include <linearize/core/mask_set.hpp>
#include <linearize/pipeline/mask_geometry.hpp>
#include <linearize/pipeline/mask_speed.hpp>
#include <linearize/policy/concepts/relaxation.hpp>
#include <linearize/policy/concepts/scheduler.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/policy/progress.hpp>
#include <linearize/policy/weight_probe.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/losses.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/trainer.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <vector>

namespace linearize {

namespace detail {
/// What a slot keeps during a search: a hysteretic relaxation's gate once set (the gate is its
/// state), else the relaxation's kept().
template <class Relax, class Slot>
[[nodiscard]] torch::Tensor kept_now(const Relax& relax, const Slot& slot) {
  if constexpr (hysteretic_relaxation<Relax>)
    if (slot.has_gate()) return slot.gate().ne(0);
  return relax.kept(slot.mask());
}
}  // namespace detail

/// ReLUs the relaxation counts as kept, over all slots. Summed on the masks' device and read
/// once: a search with a holding scheduler counts after every step (one sync, not one a slot).
template <relaxation_policy Relax>
[[nodiscard]] int64_t kept_relus(const Relax& relax, const MaskSet& masks) {
  torch::NoGradGuard no_grad;
  torch::Tensor n;
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto term = detail::kept_now(relax, masks[i]).sum(torch::kLong) * masks[i].relus_per_entry();
    n = n.defined() ? n + term : term;
  }
  return n.defined() ? n.template item<int64_t>() : 0;
}

namespace detail {

/// Each mask entry's threshold weight (weight_probe.hpp): the search's task loss (CE + KD) on
/// `batches` seeded batches of training images (no augmentation, eval mode), the mean and the
/// spread over batches of its gradient with respect to the masks, against the penalty's at
/// weight 1.
template <class Relax, class Context>
weight_probe probe_weights(const Relax& relax, Context& ctx, int64_t batches,
                           const std::vector<double>& per_entry, uint64_t round) {
  const MaskSet& masks = ctx.masks;
  const auto& data = ctx.data.train;
  train::detail::mode_guard eval_mode(ctx.net, /*training=*/false);
  const auto device = train::device_of(ctx.net);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(ctx.seed(0x9b0beu + round));
  // The slots' gates as they were (a hysteretic relaxation's state): put back at the end.
  std::vector<torch::Tensor> gates_before, kept;
  for (size_t i = 0; i < masks.size(); ++i) {
    gates_before.push_back(masks[i].has_gate() ? masks[i].gate() : torch::Tensor());
    torch::NoGradGuard no_grad;
    kept.push_back(kept_now(relax, masks[i]).to(torch::kBool));  // a no-op for the bool the concept asks for
  }
  const int64_t n = std::min(data.size(), std::max<int64_t>(1, batches) * ctx.options.batch_size);
  const auto picked = torch::randperm(data.size(), gen, torch::kLong).slice(0, 0, n);
  std::vector<torch::Tensor> params, sum, squares;
  for (size_t i = 0; i < masks.size(); ++i) {
    params.push_back(masks[i].mask());
    sum.push_back(torch::zeros_like(masks[i].mask(), torch::kDouble));
    squares.push_back(torch::zeros_like(masks[i].mask(), torch::kDouble));
  }
  int64_t taken = 0;
  for (int64_t begin = 0; begin < n; begin += ctx.options.batch_size) {
    const auto ids = picked.slice(0, begin, std::min(n, begin + ctx.options.batch_size));
    const auto x = data::make_batch(data.images.index_select(0, ids), data.mean, data.stdev,
                                    data::augmentation{}, 0)
                       .to(device);
    const auto y = data.labels.index_select(0, ids).to(device);
    for (size_t i = 0; i < masks.size(); ++i) masks[i].set_gate(relax.gate(params[i]));
    const auto logits = ctx.net.forward(x);
    auto loss = train::cross_entropy(logits, y);
    if (ctx.teacher && ctx.options.search_kd_weight > 0) {
      torch::Tensor teacher_logits;
      {
        torch::NoGradGuard no_grad;
        teacher_logits = ctx.teacher->forward(x);
      }
      loss = loss + ctx.options.search_kd_weight *
                        train::kd_loss(logits, teacher_logits, ctx.options.search_kd_temperature);
    }
    const auto grads = torch::autograd::grad({loss}, params, {}, false, false, /*allow_unused=*/true);
    for (size_t i = 0; i < grads.size(); ++i)
      if (grads[i].defined()) {
        const auto g = grads[i].to(torch::kDouble);
        sum[i] += g;
        squares[i] += g * g;
      }
    ++taken;
  }
  for (size_t i = 0; i < masks.size(); ++i)
    if (gates_before[i].defined())
      masks[i].set_gate(gates_before[i]);
    else
      masks[i].clear_gate();
  torch::Tensor penalty;
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto term = relax.penalty(params[i]).sum() * per_entry[i];
    penalty = penalty.defined() ? penalty + term : term;
  }
  const auto pushes = torch::autograd::grad({penalty}, params, {}, false, false, true);
  std::vector<torch::Tensor> flat;
  const double batches_taken = static_cast<double>(std::max<int64_t>(1, taken));
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto g_pen = pushes[i].defined() ? pushes[i].to(torch::kDouble) : torch::zeros_like(sum[i]);
    const auto mean = sum[i] / batches_taken;
    const auto spread = (squares[i] / batches_taken - mean * mean).clamp_min(0).sqrt();
    // Adam moves a mask at about its full step only once the penalty outweighs the task
    // gradient by its spread over batches, not just on average.
    auto w = torch::where(g_pen.gt(0), ((-mean).clamp_min(0) + spread) / g_pen,
                          torch::full_like(mean, std::numeric_limits<double>::infinity()));
    // An entry already removed at the penalty's minimum (no gradient: l1_mix's at 0) stays gone
    // at any weight. Its infinite threshold counted it as the last to go: on the demo (2%), a
    // re-probe after 3,154 had gone asked for the largest weight, 1e3, below 3,154 ReLUs. (A
    // removed entry the penalty still pushes keeps its threshold: the weight that holds it.)
    w = torch::where(kept[i] | w.isfinite(), w, torch::zeros_like(w));
    flat.push_back(w.reshape({-1}).to(torch::kCPU));
  }
  return {torch::cat(flat), masks.relus_per_entry().to(torch::kCPU, torch::kLong), n};
}
}  // namespace detail

/// The search's scalar with the images it forwarded besides training (preparation, probes).
inline constexpr const char* extra_images_key = "search_extra_images";

struct mask_search_result {
  train::history history;
  torch::Tensor scores{};  ///< float [entries]: the relaxation's score of each mask entry
  torch::Tensor kept{};    ///< bool [entries]: what the relaxation counts as kept
  double mask_speed = 1;
};

/// Runs the search on ctx.net (see policy/stage_context.hpp).
template <relaxation_policy Relax, penalty_scheduler Sched, class Context>
mask_search_result mask_search(const Relax& given, const Sched& sched, Context& ctx) {
  const MaskSet& masks = ctx.masks;
  // A resumed search takes its state from its checkpoint; only a fresh one is probed.
  const auto checkpoint = ctx.checkpoint("search");
  const bool fresh = checkpoint.empty() || !std::filesystem::exists(checkpoint);
  // A relaxation may change the network first (AutoReP: polynomials where ReLUs go), on the
  // binary mask the search starts from; a resumed search needs the same modules to restore.
  // It returns the images it forwarded; they and the probes' are kept in the search's scalars
  // (extra_images_key), so that a resumed search counts them as the first process did.
  int64_t prepared = 0;
  if constexpr (requires { { given.prepare(ctx, fresh) } -> std::convertible_to<int64_t>; })
    prepared = given.prepare(ctx, fresh);
  const int64_t steps_per_epoch =
      (ctx.data.train.size() + ctx.options.batch_size - 1) / ctx.options.batch_size;
  double speed = 1;
  if constexpr (mask_space_scheduler<Sched>)
    speed = sched.mask_speed({.travel = geometry_of(given).travel(),
                              .margin = geometry_of(given).margin(),
                              .lr = train::base_lr(ctx.options.search_optimizer),
                              .steps_per_epoch = steps_per_epoch});
  const sped_up<Relax> relax{given, speed};
  const auto geometry = geometry_of(relax);
  const double lr = train::base_lr(ctx.options.search_optimizer);
  const double crossing_epochs = geometry.travel() / (lr * static_cast<double>(steps_per_epoch));
  {  // Start from the network's current binary mask (all ReLUs for a fresh network).
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < masks.size(); ++i) {
      auto& slot = masks[i];
      const auto start = relax.from_binary(slot.binary_mask()).to(slot.mask().options());
      slot.soften();
      slot.clear_gate();
      slot.mask().copy_(start);
    }
  }
  std::vector<double> per_entry;
  for (size_t i = 0; i < masks.size(); ++i)
    per_entry.push_back(static_cast<double>(masks[i].relus_per_entry()));

  constexpr bool hysteretic = hysteretic_relaxation<Relax>;
  // The count the search aims at: the budget, or above it where the scheduler leaves the rest
  // to the selection, but at most half the start count: aimed at the start or above (4x a
  // budget of a quarter), the search would remove nothing and leave the selection a tie.
  const int64_t start_count = kept_relus(relax, masks);  // counted once: each count syncs the device
  const int64_t aim = [&] {
    if constexpr (aiming_scheduler<Sched>)
      return std::max(ctx.budget, std::min(static_cast<int64_t>(sched.search_count(ctx.budget)),
                                           start_count / 2));
    else return ctx.budget;
  }();
  // After step `step` (0-based) of `epoch`; at an epoch's end, its last step.
  const auto progress = [&](const train::scalars& values, int64_t epoch, int64_t step) {
    search_progress p{.epoch = epoch,
                      .step = step,
                      .steps_per_epoch = steps_per_epoch,
                      .count = kept_relus(relax, masks),
                      .total = masks.total_relus(),
                      .budget = aim,
                      .start_count = static_cast<int64_t>(values.at("start_count")),
                      .mask_speed = speed,
                      .crossing_epochs = crossing_epochs};
    return p;
  };

  auto opts = ctx.train_options("search", sched.max_epochs(), ctx.options.search_kd_temperature,
                                ctx.options.search_kd_weight);
  opts.optimizer = ctx.options.search_optimizer;
  opts.seed = ctx.seed(0x5ea7c4u);
  opts.values["start_count"] = static_cast<double>(start_count);
  opts.values["mask_speed"] = speed;
  opts.values[extra_images_key] = static_cast<double>(prepared);
  if constexpr (probing_scheduler<Sched>) {
    if (fresh) {
      const auto probe = detail::probe_weights(relax, ctx, sched.probe_batches, per_entry, 0);
      opts.values[extra_images_key] += static_cast<double>(probe.images);
      sched.start(opts.values, progress(opts.values, 0, -1), probe);
    } else {
      sched.start(opts.values);
    }
  } else {
    sched.start(opts.values);
  }

  // A holding scheduler's masks from the step the count met the budget (held_key) on: put back
  // after every step, so the count stays there while the weights train to the epoch's end (or
  // on, while a lingering scheduler keeps holding). A resumed search takes them from its
  // checkpoint, saved after they were put back.
  bool holds = false;
  if constexpr (holding_scheduler<Sched>) holds = sched.hold_at_budget();
  std::vector<torch::Tensor> held;
  const auto is_held = [](const train::scalars& values) {
    const auto it = values.find(held_key);
    return it != values.end() && it->second != 0;
  };
  const auto hold = [&] {
    torch::NoGradGuard no_grad;
    held.clear();
    for (size_t i = 0; i < masks.size(); ++i) held.push_back(masks[i].mask().detach().clone());
  };

  const bool hand_gates = !relax.gate_is_parameter();
  auto history = train::fit(
      ctx.net, ctx.data.train, opts,
      train::hooks{
          .before_forward =
              [&](train::step_context& c) {
                if (holds && held.empty() && is_held(c.values)) hold();
                if constexpr (hysteretic) {
                  for (size_t i = 0; i < masks.size(); ++i)
                    masks[i].set_gate(relax.gate(masks[i].mask(),
                                                 masks[i].has_gate() ? masks[i].gate() : torch::Tensor()));
                } else if (hand_gates) {
                  for (size_t i = 0; i < masks.size(); ++i)
                    masks[i].set_gate(relax.gate(masks[i].mask()));
                }
              },
          .extra_loss =
              [&](train::step_context& c) {
                torch::Tensor sum;
                for (size_t i = 0; i < masks.size(); ++i) {
                  auto term = relax.penalty(masks[i].mask()).sum() * per_entry[i];
                  sum = sum.defined() ? sum + term : term;
                }
                return sum * c.values.at(penalty_weight_key);
              },
          .after_step =
              [&](train::step_context& c) {
                if (holds) {
                  if (!held.empty()) {
                    torch::NoGradGuard no_grad;
                    for (size_t i = 0; i < masks.size(); ++i) masks[i].mask().copy_(held[i]);
                    return;
                  }
                  if (kept_relus(relax, masks) <= aim) {
                    c.values[held_key] = 1;
                    hold();
                    return;
                  }
                }
                // At least once an epoch: an epoch shorter than every_steps() (a small training
                // set) would otherwise never correct the penalty at all.
                if constexpr (stepwise_penalty_scheduler<Sched>)
                  if ((c.step + 1) % std::max<int64_t>(1, std::min<int64_t>(sched.every_steps(), c.steps_per_epoch)) == 0)
                    sched.after_step(c.values, progress(c.values, c.epoch, c.step));
              },
          .after_epoch =
              [&](train::epoch_context& c) {
                const auto p = progress(c.values, c.epoch, steps_per_epoch - 1);
                c.values["relu_count"] = static_cast<double>(p.count);
                if (sched.after_epoch(c.values, p)) return train::epoch_action::stop;
                if (is_held(c.values)) {
                  if constexpr (lingering_scheduler<Sched>)
                    if (sched.keeps_holding(p)) return train::epoch_action::proceed;  // no re-probe: held
                  return train::epoch_action::stop;
                }
                // Before the epoch's checkpoint, so that a resumed search has the same curve.
                if constexpr (reprobing_scheduler<Sched>) {
                  if (!sched.wants_probe(c.values, p)) return train::epoch_action::proceed;
                  const auto probe = detail::probe_weights(relax, ctx, sched.probe_batches, per_entry,
                                                           static_cast<uint64_t>(c.epoch) + 1);
                  c.values[extra_images_key] += static_cast<double>(probe.images);
                  sched.refresh(c.values, p, probe);
                }
                return train::epoch_action::proceed;
              },
      });
  if (const auto extra = history.values.find(extra_images_key); extra != history.values.end())
    ctx.count_images(static_cast<int64_t>(extra->second));
  mask_search_result out{.history = std::move(history), .mask_speed = speed};
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> scores, kept;
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto& param = masks[i].mask();
    scores.push_back(relax.score(param).detach().reshape({-1}).to(torch::kCPU, torch::kFloat));
    kept.push_back(detail::kept_now(relax, masks[i]).reshape({-1}).to(torch::kCPU, torch::kBool));
  }
  masks.clear_gates();
  out.scores = torch::cat(scores);
  out.kept = torch::cat(kept);
  return out;
}

}  // namespace linearize
