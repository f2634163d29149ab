#pragma once
// DeepReDuce's stage criticality measured on its own, outside a run: on a copy of the network,
// in a scratch stage context, so that programs can show the ranking (and plan with it) before
// the pipeline runs. run() with select::stage_criticality{.ranking = ...} then skips measuring.
#include <linearize/core/network.hpp>
#include <linearize/pipeline/run_types.hpp>
#include <linearize/pipeline/stage_context.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/stage_criticality.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace linearize {

struct criticality_measurement {
  std::vector<criticality_row> rows;  ///< in network order, ranked
  std::vector<std::string> ranking;   ///< stage names, least critical first
  int64_t images_forwarded = 0;
  double seconds = 0;
};

/// Measures every stage's criticality of `net` (left unchanged) the way `how` says, finetuning
/// with `finetune` (KD from `teacher`) in the finetune mode. Checkpoints go to
/// options.work_dir / "criticality", so a killed measurement resumes.
template <class Finetune>
[[nodiscard]] criticality_measurement measure_criticality(const Network& net, const Network& teacher,
                                                          const run_data& data, run_options options,
                                                          const select::criticality_options& how,
                                                          const Finetune& finetune) {
  const auto start = std::chrono::steady_clock::now();
  const auto probe = net->copy();
  options.work_dir = options.work_dir / "criticality";
  std::filesystem::create_directories(options.work_dir);
  run_result scratch;
  stage_report report;
  stage_context ctx(*probe, teacher, data, options, 0, 1, finetune, schedule::stagewise{}, scratch, report);
  criticality_measurement m;
  m.rows = select::measure_stage_criticality(ctx, how);
  m.ranking = select::rank_stages(m.rows);
  m.images_forwarded = report.images_forwarded;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

}  // namespace linearize
