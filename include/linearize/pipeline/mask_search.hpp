#pragma once
// The mask search of relaxation-based methods (SNL's phase 1): weights and masks train together
// on  CE + KD + lambda * sum over slots of (ReLUs per entry * penalty(mask)),  the relaxation
// turns each mask into the gate its slot applies, and the penalty scheduler moves lambda and
// decides when to stop. Everything the scheduler keeps lives in the trainer's named scalars, so a
// killed search resumes with the same lambda.
#include <linearize/core/mask_set.hpp>
#include <linearize/pipeline/concepts/relaxation.hpp>
#include <linearize/pipeline/concepts/scheduler.hpp>
#include <linearize/pipeline/progress.hpp>
#include <linearize/train/trainer.hpp>

#include <boost/hana.hpp>
#include <torch/torch.h>

#include <algorithm>

#include <cstdint>
#include <vector>

namespace linearize {

namespace detail {
// Optional member of a relaxation: `gate_is_parameter()` true means the slots can use the raw
// parameter and the search need not hand them a gate each step (SNL's l1_mix). Found with
// hana::is_valid; a relaxation without it gets a gate every step.
inline constexpr auto has_gate_flag =
    boost::hana::is_valid([](auto&& r) -> decltype((void)r.gate_is_parameter()) {});

template <class Relax>
bool gate_is_parameter(const Relax& relax) {
  if constexpr (decltype(has_gate_flag(relax))::value)
    return relax.gate_is_parameter();
  else
    return false;
}
}  // namespace detail

/// ReLUs the relaxation counts as kept, over all slots.
template <relaxation_policy Relax>
[[nodiscard]] int64_t kept_relus(const Relax& relax, const MaskSet& masks) {
  torch::NoGradGuard no_grad;
  int64_t n = 0;
  for (size_t i = 0; i < masks.size(); ++i)
    n += relax.kept(masks[i].mask()).sum().template item<int64_t>() * masks[i].relus_per_entry();
  return n;
}

/// Runs the search on ctx.net (see stage_context.hpp); returns the trainer's history.
template <relaxation_policy Relax, penalty_scheduler Sched, class Context>
train::history mask_search(const Relax& relax, const Sched& sched, Context& ctx) {
  const MaskSet& masks = ctx.masks;
  {  // Start from the network's current binary mask (all ReLUs for a fresh network).
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < masks.size(); ++i) {
      auto& slot = masks[i];
      const auto start = relax.from_binary(slot.binary_mask()).to(slot.mask().options());
      slot.soften();
      slot.mask().copy_(start);
    }
  }
  std::vector<double> per_entry;
  for (size_t i = 0; i < masks.size(); ++i)
    per_entry.push_back(static_cast<double>(masks[i].relus_per_entry()));

  const auto progress = [&](const train::scalars& values, int64_t epoch, int64_t step,
                            int64_t steps) {
    return search_progress{.epoch = epoch,
                           .step = step,
                           .steps_per_epoch = steps,
                           .count = kept_relus(relax, masks),
                           .total = masks.total_relus(),
                           .budget = ctx.budget,
                           .start_count = static_cast<int64_t>(values.at("start_count"))};
  };

  auto opts = ctx.train_options("search", sched.max_epochs(), ctx.options.search_kd_temperature,
                                ctx.options.search_kd_weight);
  opts.optimizer = ctx.options.search_optimizer;
  opts.seed = ctx.seed(0x5ea7c4u);
  opts.values["start_count"] = static_cast<double>(kept_relus(relax, masks));
  sched.start(opts.values);

  const bool hand_gates = !detail::gate_is_parameter(relax);
  auto history = train::fit(
      ctx.net, ctx.data.train, opts,
      train::hooks{
          .before_forward =
              [&](train::step_context&) {
                if (hand_gates)
                  for (size_t i = 0; i < masks.size(); ++i)
                    masks[i].set_gate(relax.gate(masks[i].mask()));
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
                // At least once an epoch: an epoch shorter than every_steps() (a small training
                // set) would otherwise never correct the penalty at all.
                if constexpr (stepwise_penalty_scheduler<Sched>)
                  if ((c.step + 1) % std::max<int64_t>(1, std::min<int64_t>(sched.every_steps(), c.steps_per_epoch)) == 0)
                    sched.after_step(c.values, progress(c.values, c.epoch, c.step, c.steps_per_epoch));
              },
          .after_epoch =
              [&](train::epoch_context& c) {
                const auto p = progress(c.values, c.epoch, 0, 1);
                c.values["relu_count"] = static_cast<double>(p.count);
                return sched.after_epoch(c.values, p) ? train::epoch_action::stop
                                                      : train::epoch_action::proceed;
              },
      });
  masks.clear_gates();
  return history;
}

}  // namespace linearize
