#pragma once
// What run() takes besides the method, the network and the budget (the data and the settings
// shared by all stages), and what it returns: the binary mask, the counts, the accuracies before
// and after finetuning, and one history row per epoch of every phase. Only what every method
// has lives here; a policy's own findings travel as its own type (stage_report::details).
#include <linearize/core/mask_set.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/policy/budget.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/progress.hpp>

#include <torch/torch.h>

#include <any>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

namespace linearize {

/// The three disjoint parts of the data a run uses, and how its training images are augmented.
struct run_data {
  data::image_dataset train;     ///< mask search and finetuning
  data::image_dataset held_out;  ///< model selection and candidate scoring (part of the training set)
  data::image_dataset test;      ///< reported accuracies only; never used for a decision
  /// The augmentation the network was trained with: baseline_run_data() takes it from the
  /// baseline's recipe. Empty: run_options::augment must say.
  std::optional<data::augmentation> augment{};
};

struct run_options {
  /// Checkpoints of every phase go here, so that a killed run resumes where it stopped when
  /// run() is called again with the same arguments. Empty: no checkpoints.
  std::filesystem::path work_dir{};
  uint64_t seed = 0;
  int64_t batch_size = 128;
  /// Augmentation of the training images in every phase. Empty: the data's (run_data::augment,
  /// the baseline recipe's); when neither says, run() refuses to guess (the published recipes
  /// use data::cifar_augmentation, crop after 4-pixel padding + horizontal flip; no augmentation
  /// is data::augmentation{}).
  std::optional<data::augmentation> augment{};
  /// The mask search's optimizer over weights and masks (SNL: Adam, lr 1e-3, no weight decay).
  train::optimizer_config search_optimizer = train::mask_search_adam;
  double search_kd_temperature = 4;  ///< SNL distils from the original network while searching
  double search_kd_weight = 1;
  int64_t eval_batch_size = 512;
  int64_t checkpoint_every = 200;    ///< steps between checkpoints within an epoch
  train::progress_options progress{};
  /// Data-parallel runs (distributed/): BatchNorm over the whole global batch instead of each
  /// rank's shard in every training phase (train::options::sync_batchnorm).
  bool sync_batchnorm = false;
  /// Budgets of the first stages of a chain, in order; a stage without one here (the last, by
  /// default every stage) takes the run's budget. `snl | bcd` with {budget(15'000)} and a run
  /// budget of 6'000: SNL goes to 15K, coordinate descent from there to 6K.
  std::vector<budget> stage_budgets{};
};

/// One epoch of one phase (search or finetune) of one stage.
struct history_row {
  size_t stage = 0;
  std::string phase;             ///< "search", "finetune", or a selection rule's own phases
  int64_t epoch = 0;             ///< 0-based, within the phase
  double penalty_weight = NAN;   ///< lambda at the epoch's end (search phases)
  int64_t relu_count = 0;        ///< ReLUs counted at the epoch's end
  double loss = NAN;             ///< mean training loss
  double train_accuracy = NAN;   ///< top-1 on the training batches, in [0, 1]
  double held_out_accuracy = NAN;
  double seconds = NAN;
};

/// What a finetune policy returns for one call (finetune_policy::run).
struct finetune_outcome {
  int64_t epochs = 0;                       ///< epochs trained (0: none)
  double test_accuracy_recalibrated = NAN;  ///< after BatchNorm re-estimation, if it was done
  double held_out_accuracy = NAN;           ///< of the epoch kept, if one was chosen on held-out data
  int64_t best_epoch = -1;                  ///< 0-based epoch kept (-1: the last)
};

struct stage_report {
  std::string name;
  int64_t budget = 0;
  int64_t relu_count_before = 0;     ///< when the stage began
  int64_t relu_count = 0;            ///< after its selection
  bool budget_met = false;           ///< relu_count <= budget
  double test_accuracy_selected = NAN;      ///< right after binarization, before anything else
  double test_accuracy_recalibrated = NAN;  ///< after BatchNorm re-estimation (if done)
  double test_accuracy_finetuned = NAN;     ///< after finetuning
  double held_out_accuracy_finetuned = NAN;
  int64_t search_epochs = 0;
  int64_t finetune_epochs = 0;       ///< every finetune epoch of the stage, in-search ones too
  int64_t images_forwarded = 0;      ///< through the network being linearized (train + eval)
  /// Wall time, across resumes: this process's plus what earlier processes spent on the phases
  /// it resumed from their checkpoints (`resumed_seconds`).
  double seconds = 0;
  double resumed_seconds = 0;
  /// What the stage's selection rule reported, as its own type (coordinate descent:
  /// select::coordinate_report; DeepReDuce: select::deepreduce_report); empty for rules that
  /// report nothing. Read it with details_as<T>().
  std::any details{};

  /// The selection's report as T, or nullptr when it reported none or another type.
  template <class T>
  [[nodiscard]] const T* details_as() const {
    return std::any_cast<T>(&details);
  }
  /// The selection's report as T; a linearize::error when the stage has none of that type.
  template <class T>
  [[nodiscard]] const T& details_of(const char* what) const {
    const T* d = details_as<T>();
    require(d != nullptr, "stage '", name, "' has no ", what, " (its selection rule reported ",
            details.has_value() ? details.type().name() : "nothing", ")");
    return *d;
  }
};

struct run_result {
  std::string method;
  double baseline_test_accuracy = NAN;   ///< the network as given, before any stage
  int64_t total_relus = 0;
  int64_t budget = 0;
  torch::Tensor mask;                    ///< flat bool over all mask entries (MaskSet order)
  int64_t relu_count = 0;
  std::vector<relu_tally> per_slot;
  double test_accuracy_before_finetune = NAN;  ///< last stage, right after its binarization
  double test_accuracy_after_finetune = NAN;   ///< last stage
  std::vector<stage_report> stages;
  std::vector<history_row> history;
  int64_t images_forwarded = 0;
  /// Wall time, across resumes (as stage_report::seconds); `resumed_seconds` of it were spent
  /// by earlier processes of the same run.
  double seconds = 0;
  double resumed_seconds = 0;
};

}  // namespace linearize
