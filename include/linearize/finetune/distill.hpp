#pragma once
// The finetuning recipe shared by SNL and coordinate descent: knowledge distillation from the
// frozen original network (KD at temperature 4, weight 1, plus cross entropy), SGD lr 1e-3,
// momentum 0.9, weight decay 5e-4, cosine schedule. The checkpoint kept is the one with the best
// accuracy on held-out training data, never on the test set (SNL's public code selects on test).
#include <linearize/io/torch_export.hpp>
#include <linearize/pipeline/roles.hpp>
#include <linearize/pipeline/run_types.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/batchnorm.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/trainer.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>

namespace linearize::finetune {

struct distill {
  using role = roles::finetune;
  int64_t epochs = 100;
  double temperature = 4;
  double kd_weight = 1;
  double lr = 1e-3;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  /// Re-estimate BatchNorm statistics on training data right after binarization (a cheap remedy
  /// for the accuracy collapse at SNL's binarization step) before finetuning starts.
  bool recalibrate_bn = true;
  /// Keep the epoch with the best held-out accuracy (else the last epoch).
  bool select_on_held_out = true;

  int64_t recalibration_batches = 50;

  [[nodiscard]] std::string name() const { return "distill"; }

  /// Finetunes ctx.net for `epochs` epochs (see pipeline/stage_context.hpp for the context).
  template <class Context>
  void run(Context& ctx, int64_t epochs, const std::string& phase) const {
    require(epochs >= 0, "distill: epochs ", epochs, " must not be negative");
    require(temperature > 0 && kd_weight >= 0 && lr > 0, "distill: temperature ", temperature,
            " > 0, kd_weight ", kd_weight, " >= 0 and lr ", lr, " > 0 expected");
    if (recalibrate_bn) {
      ctx.count_images(train::recalibrate_batchnorm(ctx.net, ctx.data.train, recalibration_batches,
                                                    ctx.options.batch_size, ctx.seed(0xbau)));
      ctx.report.test_accuracy_recalibrated = ctx.accuracy(ctx.data.test);
    }
    if (epochs == 0) return;
    auto opts = ctx.train_options(phase, epochs, temperature, kd_weight);
    opts.optimizer = train::sgd{.lr = lr, .momentum = momentum, .weight_decay = weight_decay};
    opts.schedule = train::cosine{};
    opts.seed = ctx.seed(0xf1u);
    const bool keep_best = select_on_held_out && ctx.data.held_out.size() > 0;
    if (keep_best) opts.held_out = ctx.data.held_out;
    // The best epoch's weights are kept in a file beside the checkpoint (or in memory when the
    // run keeps no checkpoints), so a resumed finetune still returns the best epoch.
    const auto best_file = opts.checkpoint.empty() ? std::filesystem::path{}
                                                   : std::filesystem::path(opts.checkpoint.string() + ".best");
    Network best_copy;
    const auto history = train::fit(
        ctx.net, ctx.data.train, opts, train::hooks{.after_epoch = [&](train::epoch_context& c) {
          if (!keep_best || !c.record.eval) return;
          auto& best = c.values.try_emplace("best_held_out", -1.0).first->second;
          if (c.record.eval->top1 > best) {
            best = c.record.eval->top1;
            c.values["best_epoch"] = static_cast<double>(c.epoch);
            if (best_file.empty())
              best_copy = c.net.copy();
            else
              io::export_state(c.net, best_file);
          }
        }});
    for (const auto& r : history.rows) {
      ctx.add_history({.phase = phase, .epoch = r.epoch, .relu_count = ctx.masks.relu_count(),
                       .loss = r.train_loss, .train_accuracy = r.train_top1,
                       .held_out_accuracy = r.eval ? r.eval->top1 : NAN, .seconds = r.seconds});
      ctx.count_images(ctx.data.train.size() + (r.eval ? r.eval->samples : 0));
    }
    ctx.report.finetune_epochs += static_cast<int64_t>(history.rows.size());
    if (keep_best) {
      if (best_copy)
        copy_state(*best_copy, ctx.net);
      else if (!best_file.empty() && std::filesystem::exists(best_file))
        io::import_state(ctx.net, best_file);
      if (const auto it = history.values.find("best_held_out"); it != history.values.end())
        ctx.report.held_out_accuracy_finetuned = it->second;
    }
  }
};

}  // namespace linearize::finetune
