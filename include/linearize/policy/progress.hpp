#pragma once
// What a budget scheduler sees of a running mask search, and the named scalars it keeps across
// steps, epochs and a resume (the penalty weight, SNL's best count, ...). The scalars are saved in
// the search's checkpoint, so a scheduler needs no state of its own beyond its settings.
#include <cstdint>
#include <map>
#include <string>

namespace linearize {

using scalars = std::map<std::string, double>;  // the same type as train::scalars

struct search_progress {
  /// Epochs done so far, counting the step just taken: epoch + (step + 1) / steps_per_epoch.
  [[nodiscard]] double epochs_done() const {
    return static_cast<double>(epoch) + static_cast<double>(step + 1) / static_cast<double>(steps_per_epoch);
  }

  int64_t epoch = 0;            ///< 0-based epoch (finished, in after_epoch)
  int64_t step = 0;             ///< 0-based step within the epoch just taken (after_epoch: the last)
  int64_t steps_per_epoch = 1;
  int64_t count = 0;            ///< ReLUs the relaxation counts as kept right now
  int64_t total = 0;            ///< all ReLUs of the network
  int64_t budget = 0;           ///< target count
  int64_t start_count = 0;      ///< count when the search began
  double mask_speed = 1;        ///< the speed the search gave the masks (mask_speed)
  /// Epochs a mask needs, moving at the optimizer's full step, from kept to the boundary.
  double crossing_epochs = 0;
};

/// What a scheduler may use to set the masks' speed (see pipeline/mask_speed.hpp).
struct mask_travel {
  double travel = 1;            ///< parameter distance from a kept mask to the boundary
  double margin = 1;            ///< ... from a removed mask to the boundary
  double lr = 1e-3;             ///< the search optimizer's learning rate
  int64_t steps_per_epoch = 1;
};

/// The penalty weight of the search (lambda); every penalty scheduler keeps it under this key.
inline constexpr const char* penalty_weight_key = "penalty_weight";
/// 1 once a holding scheduler's search has met its budget and holds the masks (scheduler.hpp).
inline constexpr const char* held_key = "search_held";

}  // namespace linearize
