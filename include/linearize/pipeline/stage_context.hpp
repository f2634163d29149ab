#pragma once
// stage_context: everything a stage's policies may use while the stage runs. Score-based
// selection rules read `scores`, `relus_per_entry` and `budget`; search-based rules (coordinate
// descent, stage criticality) also evaluate the network and call the stage's finetune policy
// through it, and step-wise rules (coordinate descent) read the stage's step scheduler. It is a
// template on the finetune policy and the scheduler, so no call goes through a virtual function
// or a std::function.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/pipeline/run_types.hpp>
#include <linearize/support/seed.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/trainer.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace linearize {

template <class Finetune, class Scheduler>
class stage_context {
 public:
  stage_context(NetworkImpl& net_, const Network& teacher_, const run_data& data_,
                const run_options& options_, size_t index_, int64_t budget_, Finetune finetune_,
                Scheduler scheduler_, run_result& result_, stage_report& report_)
      : net(net_), teacher(teacher_), data(data_), options(options_), index(index_),
        budget(budget_), masks(net_), finetune_policy(finetune_), scheduler(scheduler_),
        result(result_), report(report_) {}

  NetworkImpl& net;
  const Network& teacher;
  const run_data& data;
  const run_options& options;
  const size_t index;          ///< position of the stage in its chain
  const int64_t budget;        ///< ReLUs to reach
  const MaskSet masks;
  const Finetune finetune_policy;
  /// The stage's scheduler: the one given, else lasso_growth{} with a relaxation and
  /// fixed_step{} without (what coordinate descent steps by).
  const Scheduler scheduler;
  run_result& result;
  stage_report& report;
  torch::Tensor scores;           ///< float [entries]: importance of each mask entry
  torch::Tensor relus_per_entry;  ///< int64 [entries]

  /// A checkpoint file for one phase of this stage (empty when the run keeps none).
  [[nodiscard]] std::filesystem::path checkpoint(const std::string& phase) const {
    if (options.work_dir.empty()) return {};
    return options.work_dir / ("stage" + std::to_string(index) + "_" + phase + ".ckpt");
  }
  /// A seed for one phase of this stage, derived from the run's seed.
  [[nodiscard]] uint64_t seed(uint64_t phase) const {
    return derive_seed(options.seed, {static_cast<uint64_t>(index), phase});
  }

  /// Top-1 accuracy on `part`, counted in the images forwarded.
  double accuracy(const data::image_dataset& part) {
    const auto m = train::evaluate(net, part, options.eval_batch_size);
    count_images(m.samples);
    return m.top1;
  }
  void count_images(int64_t n) {
    report.images_forwarded += n;
    result.images_forwarded += n;
  }
  void add_history(history_row row) {
    row.stage = index;
    result.history.push_back(std::move(row));
  }

  /// Training options shared by every phase of the stage: batch, augmentation, checkpointing,
  /// progress; distillation from the teacher when there is one.
  [[nodiscard]] train::options train_options(const std::string& phase, int64_t epochs,
                                             double kd_temperature, double kd_weight) const {
    train::options o;
    o.epochs = epochs;
    o.batch_size = options.batch_size;
    o.augment = options.augment;
    o.teacher = teacher;
    o.kd = {.temperature = kd_temperature, .weight = teacher ? kd_weight : 0};
    o.checkpoint = checkpoint(phase);
    o.checkpoint_every = o.checkpoint.empty() ? 0 : options.checkpoint_every;
    o.eval_batch_size = options.eval_batch_size;
    o.progress = options.progress;
    return o;
  }

  /// Runs the stage's finetune policy for `epochs` epochs as phase `phase`.
  void finetune(int64_t epochs, const std::string& phase) { finetune_policy.run(*this, epochs, phase); }
};

}  // namespace linearize
