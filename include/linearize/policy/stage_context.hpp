#pragma once
// stage_context: everything a stage's policies may use while the stage runs. Score-based
// selection rules read `scores`, `kept`, `relus_per_entry` and `budget`; search-based rules
// (coordinate descent, stage criticality) also evaluate the network and call the stage's finetune
// policy through it, and step-wise rules read the stage's scheduler. It is a template on the
// finetune policy and the scheduler, so no call goes through a virtual function or a
// std::function.
//
// The context keeps its own account of what the stage spends (`spent`: images forwarded,
// finetune epochs, history rows); the composer reads it when the stage ends. Policies return
// their findings (a selection's report, a finetune's outcome) instead of writing into the
// composer's reports.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/policy/progress.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/support/seed.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/history.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/trainer.hpp>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace linearize {

/// What a stage has spent so far.
struct stage_spending {
  /// Through the network being linearized: training, probes, held-out scoring and model
  /// selection. Test evaluations only report and steer nothing: not counted.
  int64_t images_forwarded = 0;
  int64_t finetune_epochs = 0;       ///< epochs of every finetune call
  std::vector<history_row> history;  ///< one row per epoch of every phase
  /// Seconds earlier processes spent on the phases this one resumed from their checkpoints
  /// (run() adds them to its own wall time, so a resumed run reports the total).
  double resumed_seconds = 0;
};

template <class Finetune, class Scheduler>
class stage_context {
 public:
  using finetune_type = Finetune;
  using scheduler_type = Scheduler;

  stage_context(NetworkImpl& net_, const Network& teacher_, const run_data& data_,
                const run_options& options_, size_t index_, int64_t budget_, Finetune finetune_,
                Scheduler scheduler_)
      : net(net_), teacher(teacher_), data(data_), options(options_), index(index_),
        budget(budget_), masks(net_), finetune_policy(finetune_), scheduler(scheduler_) {}

  NetworkImpl& net;
  const Network& teacher;
  const run_data& data;
  const run_options& options;
  const size_t index;          ///< position of the stage in its chain
  const int64_t budget;        ///< ReLUs to reach
  const MaskSet masks;
  const Finetune finetune_policy;
  /// The stage's scheduler: the one given, else the default pipeline() chose for the stage's
  /// kind (lasso_growth with a relaxation; the scheduler kind a step-wise selection names).
  const Scheduler scheduler;
  torch::Tensor scores;           ///< float [entries]: importance of each mask entry
  /// bool [entries]: the entries the stage's relaxation counts as kept when its search ended
  /// (its own threshold); without a relaxation, the network's current binary mask.
  torch::Tensor kept;
  torch::Tensor relus_per_entry;  ///< int64 [entries]
  stage_spending spent{};

  /// A checkpoint file for one phase of this stage (empty when the run keeps none).
  [[nodiscard]] std::filesystem::path checkpoint(const std::string& phase) const {
    if (options.work_dir.empty()) return {};
    return options.work_dir / ("stage" + std::to_string(index) + "_" + phase + ".ckpt");
  }
  /// A seed for one phase of this stage, derived from the run's seed.
  [[nodiscard]] uint64_t seed(uint64_t phase) const {
    return derive_seed(options.seed, {static_cast<uint64_t>(index), phase});
  }

  /// Top-1 accuracy on `part` (held-out data a method decides by), counted in the images
  /// forwarded.
  double accuracy(const data::image_dataset& part) {
    const auto m = train::evaluate(net, part, options.eval_batch_size);
    count_images(m.samples);
    return m.top1;
  }
  /// Top-1 accuracy on the test set, for the reports: not a method's compute (nothing may decide
  /// by it), so not counted.
  [[nodiscard]] double test_accuracy() const {
    return train::evaluate(net, data.test, options.eval_batch_size).top1;
  }
  void count_images(int64_t n) { spent.images_forwarded += n; }
  void add_history(history_row row) {
    row.stage = index;
    spent.history.push_back(std::move(row));
  }
  /// Records a training phase: one history row per epoch (the penalty weight and the ReLU count
  /// where the epoch's scalars hold them, else `relu_count`), and its images (the training set
  /// once per epoch, plus the held-out evaluation).
  void record(const std::string& phase, const train::history& h, int64_t relu_count) {
    spent.resumed_seconds += h.resumed_seconds;
    for (const auto& r : h.rows) {
      const auto weight = r.values.find(penalty_weight_key);
      const auto count = r.values.find("relu_count");
      add_history({.phase = phase,
                   .epoch = r.epoch,
                   .penalty_weight = weight == r.values.end() ? NAN : weight->second,
                   .relu_count = count == r.values.end() ? relu_count : static_cast<int64_t>(count->second),
                   .loss = r.train_loss,
                   .train_accuracy = r.train_top1,
                   .held_out_accuracy = r.eval ? r.eval->top1 : NAN,
                   .seconds = r.seconds});
      count_images(data.train.size() + (r.eval ? r.eval->samples : 0));
    }
  }

  /// The augmentation of every training phase (run() resolves it before any stage runs).
  [[nodiscard]] data::augmentation augmentation() const {
    if (options.augment) return *options.augment;
    require(data.augment.has_value(), "stage: no augmentation chosen; set run_options::augment "
            "(data::cifar_augmentation is the published crop + flip, data::augmentation{} none) "
            "or build run_data with baseline_run_data(), which takes the baseline's");
    return *data.augment;
  }

  /// Training options shared by every phase of the stage: batch, augmentation, checkpointing,
  /// progress; distillation from the teacher when there is one.
  [[nodiscard]] train::options train_options(const std::string& phase, int64_t epochs,
                                             double kd_temperature, double kd_weight) const {
    train::options o;
    o.epochs = epochs;
    o.batch_size = options.batch_size;
    o.augment = augmentation();
    o.teacher = teacher;
    o.kd = {.temperature = kd_temperature, .weight = teacher ? kd_weight : 0};
    o.checkpoint = checkpoint(phase);
    o.checkpoint_every = o.checkpoint.empty() ? 0 : options.checkpoint_every;
    o.eval_batch_size = options.eval_batch_size;
    o.progress = options.progress;
    o.sync_batchnorm = options.sync_batchnorm;
    return o;
  }
  /// The finetuning recipe of the literature (REFERENCES.md): KD at `kd_temperature` plus cross
  /// entropy, SGD as given (train::finetune_sgd: lr 1e-3, momentum 0.9, wd 5e-4), cosine.
  [[nodiscard]] train::options distillation_options(const std::string& phase, int64_t epochs,
                                                    const train::sgd& sgd, double kd_temperature,
                                                    double kd_weight, uint64_t phase_seed) const {
    auto o = train_options(phase, epochs, kd_temperature, kd_weight);
    o.optimizer = sgd;
    o.schedule = train::cosine{};
    o.seed = seed(phase_seed);
    return o;
  }

  /// Runs the stage's finetune policy for `epochs` epochs as phase `phase`.
  finetune_outcome finetune(int64_t epochs, const std::string& phase) {
    const auto outcome = finetune_policy.run(*this, epochs, phase);
    spent.finetune_epochs += outcome.epochs;
    return outcome;
  }
};

}  // namespace linearize
