#pragma once
// What a training run leaves behind: one row per epoch, and the run's named scalars, the small
// state that hooks keep across a resume (SNL's lambda, the best ReLU count so far, ...).
#include <linearize/train/evaluate.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace linearize::train {

/// Named scalars that hooks read and write; saved in every checkpoint and copied into each
/// epoch's row.
using scalars = std::map<std::string, double>;

struct epoch_record {
  int64_t epoch = 0;              ///< 0-based
  double train_loss = 0;          ///< mean total loss per sample (CE + KD + extra terms)
  double train_top1 = 0;          ///< fraction of training samples classified right, in [0, 1]
  double lr = 0;                  ///< learning rate of the epoch's last step
  std::optional<metrics> eval{};  ///< on the held-out set, when one was given
  double images_per_second = 0;   ///< training throughput (evaluation excluded)
  double seconds = 0;             ///< training time of the epoch (evaluation excluded)
  scalars values{};               ///< the named scalars at the epoch's end
};

/// How a run ended.
enum class run_end {
  completed,    ///< all epochs done
  stopped,      ///< an epoch hook asked to stop (e.g. the ReLU budget is reached)
  interrupted,  ///< options::stop_after_steps ended it, as a kill would
};

struct history {
  std::vector<epoch_record> rows{};
  scalars values{};                 ///< the named scalars when the run ended
  run_end end = run_end::completed;
  int64_t global_step = 0;          ///< optimizer steps taken over the whole run
  /// Wall time of the whole run in seconds, across resumes: this process's time plus what the
  /// earlier processes had spent up to the checkpoint it resumed from (work after a process's
  /// last checkpoint was lost with it and done again, so it is counted once).
  double seconds = 0;
  double resumed_seconds = 0;       ///< of `seconds`, what earlier processes spent
};

}  // namespace linearize::train
