#pragma once
// The finetuning recipe shared by SNL and coordinate descent: knowledge distillation from the
// frozen original network (KD at temperature 4, weight 1, plus cross entropy), SGD lr 1e-3,
// momentum 0.9, weight decay 5e-4, cosine schedule. Optionally attention transfer on the slots'
// outputs, as SENet's public code finetunes (attention_weight = 1000). The checkpoint kept is
// the one with the best accuracy on held-out training data, never on the test set (SNL's
// public code selects on test).
#include <linearize/core/mask_set.hpp>
#include <linearize/core/slot_capture.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/batchnorm.hpp>
#include <linearize/train/keep_best.hpp>
#include <linearize/train/losses.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/trainer.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace linearize::finetune {

struct distill {
  using role = roles::finetune;
  int64_t epochs = 100;
  double temperature = 4;
  double kd_weight = 1;
  train::sgd optimizer = train::finetune_sgd;
  /// Re-estimate BatchNorm statistics on training data right after binarization (a cheap remedy
  /// for the accuracy collapse at SNL's binarization step) before finetuning starts.
  bool recalibrate_bn = true;
  /// Keep the epoch with the best held-out accuracy (else the last epoch).
  bool select_on_held_out = true;

  int64_t recalibration_batches = 50;
  /// The gradient's largest L2 norm (train::options::max_grad_norm; 0: no clipping). Above every
  /// ordinary step measured (pareto's top-ups on Fashion-MNIST: SNL median 3.3, at most 21 in
  /// the first steps after binarization; AutoReP at 1% median 2.7), far below the one batch whose
  /// activations explode in a network of polynomials (1.7e4), which unclipped turned AutoReP's
  /// 1% top-up to NaN in 3 steps.
  double max_grad_norm = 30;
  /// beta of attention transfer (train::attention_loss): adds beta / 2 x the sum over slots of
  /// the distance between the student's and the teacher's attention maps of each slot's output.
  /// 0: off. Needs a teacher and kd_weight > 0 (the teacher runs for KD; its slots are read then).
  double attention_weight = 0;

  [[nodiscard]] std::string name() const { return "distill"; }

  /// Finetunes ctx.net for `epochs` epochs (see policy/stage_context.hpp for the context).
  template <class Context>
  finetune_outcome run(Context& ctx, int64_t epochs, const std::string& phase) const {
    require(epochs >= 0, "distill: epochs ", epochs, " must not be negative");
    require(temperature > 0 && kd_weight >= 0, "distill: temperature ", temperature,
            " > 0 and kd_weight ", kd_weight, " >= 0 expected");
    train::validate(optimizer);
    train::validate_max_grad_norm(max_grad_norm, "distill");
    require(attention_weight >= 0 && std::isfinite(attention_weight), "distill: attention_weight ",
            attention_weight, " must be finite and not negative (0: no attention transfer)");
    require(attention_weight == 0 || (ctx.teacher && kd_weight > 0), "distill: attention_weight ",
            attention_weight, " needs a teacher and kd_weight > 0 (kd_weight is ", kd_weight, ")");
    finetune_outcome out;
    if (recalibrate_bn) {
      ctx.count_images(train::recalibrate_batchnorm(ctx.net, ctx.data.train, recalibration_batches,
                                                    ctx.options.batch_size, ctx.seed(0xbau)));
      out.test_accuracy_recalibrated = ctx.test_accuracy();
    }
    if (epochs == 0) return out;
    auto opts = ctx.distillation_options(phase, epochs, optimizer, temperature, kd_weight, 0xf1u);
    opts.max_grad_norm = max_grad_norm;
    const bool keep_best = select_on_held_out && ctx.data.held_out.size() > 0;
    if (keep_best) opts.held_out = ctx.data.held_out;
    train::keep_best_held_out best(opts.checkpoint.empty()
                                       ? std::filesystem::path{}
                                       : std::filesystem::path(opts.checkpoint.string() + ".best"));
    // Attention transfer: one capture sees the student's slots (0..n-1) and the teacher's
    // (n..2n-1) while each runs, keeping only their attention maps.
    const size_t n = ctx.masks.size();
    std::optional<MaskSet> teacher_masks;
    if (attention_weight > 0) {
      teacher_masks.emplace(*ctx.teacher);
      require(teacher_masks->size() == n, "distill: the teacher has ", teacher_masks->size(),
              " slots, the network ", n, "; attention transfer needs the same architecture");
    }
    std::vector<torch::Tensor> maps;
    std::optional<slot_capture> capture;
    const auto history = train::fit(
        ctx.net, ctx.data.train, opts,
        train::hooks{.before_forward = [&](train::step_context&) {
                       if (!teacher_masks) return;
                       maps.assign(2 * n, torch::Tensor());
                       capture.emplace(ctx.masks, &*teacher_masks,
                                       [&](size_t i, const torch::Tensor&, const torch::Tensor& out) {
                                         maps[i] = train::attention_map(out);
                                       });
                     },
                     .extra_loss = [&](train::step_context&) -> torch::Tensor {
                       if (!teacher_masks) return {};
                       capture.reset();
                       torch::Tensor sum;
                       for (size_t i = 0; i < n; ++i) {
                         require(maps[i].defined() && maps[n + i].defined(), "distill: slot '",
                                 ctx.masks.name(i), "' did not run in both networks");
                         const auto l = train::attention_loss(maps[i], maps[n + i].to(maps[i].device()));
                         sum = sum.defined() ? sum + l : l;
                       }
                       maps.clear();
                       return sum.defined() ? sum * (attention_weight / 2) : sum;
                     },
                     .after_epoch = [&](train::epoch_context& c) {
                       if (keep_best) best.after_epoch(c);
                     }});
    ctx.record(phase, history, ctx.masks.relu_count());
    out.epochs = static_cast<int64_t>(history.rows.size());
    if (keep_best)
      if (const auto kept = best.restore(ctx.net, history)) {
        out.held_out_accuracy = kept->held_out_top1;
        out.best_epoch = kept->epoch;
      }
    return out;
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const distill& p, F&& f) {
  f("epochs", p.epochs);
  f("temperature", p.temperature);
  f("kd_weight", p.kd_weight);
  f("optimizer", p.optimizer);
  f("recalibrate_bn", p.recalibrate_bn);
  f("select_on_held_out", p.select_on_held_out);
  f("recalibration_batches", p.recalibration_batches);
  f("max_grad_norm", p.max_grad_norm);
  f("attention_weight", p.attention_weight);
}

}  // namespace linearize::finetune
