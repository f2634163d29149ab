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
  int64_t epoch = 0;            ///< 0-based epoch (finished, in after_epoch)
  int64_t step = 0;             ///< step within the epoch (after_step)
  int64_t steps_per_epoch = 1;
  int64_t count = 0;            ///< ReLUs the relaxation counts as kept right now
  int64_t total = 0;            ///< all ReLUs of the network
  int64_t budget = 0;           ///< target count
  int64_t start_count = 0;      ///< count when the search began
};

/// The penalty weight of the search (lambda); every penalty scheduler keeps it under this key.
inline constexpr const char* penalty_weight_key = "penalty_weight";

}  // namespace linearize
