#pragma once
// What a coordinate-descent search did and what it cost: what select::coordinate_block returns
// beside its mask, kept as the stage report's details; coordinate_report::of(stage) reads it.
// Images are counted as forwarded through the network being linearized; gradient images also
// went backward once (about 3x a forward each), finetune images are the finetune
// policy's (training epochs, BatchNorm re-estimation, held-out model selection).
#include <cstdint>
#include <string>
#include <type_traits>

namespace linearize::select {

struct coordinate_report {
  int64_t reference_count = 0;     ///< ReLUs when the search began (B_ref)
  int64_t planned_iterations = 0;  ///< T = ceil((B_ref - B_target) / DRC)
  int64_t iterations = 0;          ///< iterations done
  int64_t tries = 0;               ///< candidate blocks scored
  int64_t accepted = 0;            ///< iterations whose block passed the ADT test
  int64_t fallbacks = 0;           ///< iterations where no block passed (least drop taken)
  int64_t finetunes = 0;           ///< finetunes during the search
  int64_t early_rejections = 0;    ///< candidates rejected on a prefix of the scoring set
  int64_t rescored = 0;            ///< early-rejected candidates scored to the end for a fallback
  int64_t scoring_images = 0;      ///< reference measurements and candidate scoring
  int64_t gradient_images = 0;     ///< first-order estimates (forward + backward)
  int64_t finetune_images = 0;     ///< finetunes during the search
  double reference_accuracy = 0;   ///< on the scoring set, at the last (re)measurement
  double seconds = 0;              ///< the search's wall time (all of it, also before a resume)
  double scoring_seconds = 0;
  double gradient_seconds = 0;
  double finetune_seconds = 0;

  [[nodiscard]] int64_t images() const { return scoring_images + gradient_images + finetune_images; }

  /// Calls f(name, pointer to member) for every field, in order.
  template <class F>
  static void fields(F&& f) {
    f("reference_count", &coordinate_report::reference_count);
    f("planned_iterations", &coordinate_report::planned_iterations);
    f("iterations", &coordinate_report::iterations);
    f("tries", &coordinate_report::tries);
    f("accepted", &coordinate_report::accepted);
    f("fallbacks", &coordinate_report::fallbacks);
    f("finetunes", &coordinate_report::finetunes);
    f("early_rejections", &coordinate_report::early_rejections);
    f("rescored", &coordinate_report::rescored);
    f("scoring_images", &coordinate_report::scoring_images);
    f("gradient_images", &coordinate_report::gradient_images);
    f("finetune_images", &coordinate_report::finetune_images);
    f("reference_accuracy", &coordinate_report::reference_accuracy);
    f("seconds", &coordinate_report::seconds);
    f("scoring_seconds", &coordinate_report::scoring_seconds);
    f("gradient_seconds", &coordinate_report::gradient_seconds);
    f("finetune_seconds", &coordinate_report::finetune_seconds);
  }

  /// The report of a stage whose selection was coordinate descent (stage_report::details); a
  /// linearize::error for any other stage.
  template <class StageReport>
  [[nodiscard]] static const coordinate_report& of(const StageReport& stage) {
    return stage.template details_of<coordinate_report>("coordinate-descent report");
  }
};

}  // namespace linearize::select
