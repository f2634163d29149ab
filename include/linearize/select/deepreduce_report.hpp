#pragma once
// What DeepReDuce's selection rule (select::stage_criticality) found: each stage's criticality,
// the plan of culling and thinning steps, and what each step did. It returns this beside its
// mask; the stage report keeps it as its details, and deepreduce_report::of(stage) reads it.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace linearize::select {

/// How much one group of ReLUs matters to accuracy (DeepReDuce's stage criticality): the
/// network keeping only this group's ReLUs, measured on held-out data.
struct criticality_row {
  std::string name{};     ///< the stage
  int64_t relus = 0;      ///< ReLUs the stage holds (the only ones kept while measuring)
  double accuracy = NAN;  ///< held-out top-1 with only this stage's ReLUs (NaN: not measured)
  double score = NAN;     ///< the ranking criterion (by default accuracy per ReLU)
  size_t rank = 0;        ///< 0 = least critical, removed first
};

/// One culling or thinning step.
struct step_report {
  std::string name{};                     ///< e.g. "cull stem, layer1"
  int64_t relu_count = 0;                 ///< after the step
  double test_accuracy_selected = NAN;    ///< right after the step's mask is applied
  double test_accuracy_finetuned = NAN;   ///< after the step's distillation
  double held_out_accuracy_finetuned = NAN;
  int64_t finetune_epochs = 0;
};

struct deepreduce_report {
  std::vector<criticality_row> criticality{};  ///< in network order
  std::string plan{};                          ///< the plan, as reported before it ran
  std::vector<step_report> steps{};

  /// The report of a stage whose selection was stage_criticality (stage_report::details); a
  /// linearize::error for any other stage.
  template <class StageReport>
  [[nodiscard]] static const deepreduce_report& of(const StageReport& stage) {
    return stage.template details_of<deepreduce_report>("DeepReDuce report");
  }
};

}  // namespace linearize::select
