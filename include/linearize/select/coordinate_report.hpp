#pragma once
// What a coordinate-descent search did and what it cost, kept in the stage report's named
// counters (stage_report::counters) under "bcd_<field>"; coordinate_report::of(stage) reads
// them back. Images are counted as forwarded through the network being linearized; gradient
// images also went backward once (about 3x a forward each), finetune images are the finetune
// policy's (training epochs, BatchNorm re-estimation, held-out model selection).
#include <cstdint>
#include <map>
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
    f("scoring_images", &coordinate_report::scoring_images);
    f("gradient_images", &coordinate_report::gradient_images);
    f("finetune_images", &coordinate_report::finetune_images);
    f("reference_accuracy", &coordinate_report::reference_accuracy);
    f("seconds", &coordinate_report::seconds);
    f("scoring_seconds", &coordinate_report::scoring_seconds);
    f("gradient_seconds", &coordinate_report::gradient_seconds);
    f("finetune_seconds", &coordinate_report::finetune_seconds);
  }

  /// Writes every field into `counters` as "bcd_<name>".
  void write(std::map<std::string, double>& counters) const {
    fields([&](const char* name, auto member) {
      counters[std::string("bcd_") + name] = static_cast<double>(this->*member);
    });
  }
  /// Reads the fields back from counters written by write(); absent names stay 0.
  [[nodiscard]] static coordinate_report read(const std::map<std::string, double>& counters) {
    coordinate_report r;
    fields([&](const char* name, auto member) {
      using T = std::remove_reference_t<decltype(r.*member)>;
      if (const auto it = counters.find(std::string("bcd_") + name); it != counters.end())
        r.*member = static_cast<T>(it->second);
    });
    return r;
  }
  /// The report of a stage (its stage_report or anything with `counters`).
  template <class StageReport>
  [[nodiscard]] static coordinate_report of(const StageReport& stage) {
    return read(stage.counters);
  }
};

}  // namespace linearize::select
