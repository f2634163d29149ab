#pragma once
// What a person reads after a run: a summary with the per-layer ReLU table, the accuracies
// before and after finetuning and the private-inference cost; and the files a study keeps:
// the binary mask (loadable by MaskSet::load), a results row (CSV + JSON), the per-epoch
// history (CSV) and a per-layer plot (SVG).
#include <linearize/core/mask_set.hpp>
#include <linearize/io/results.hpp>
#include <linearize/io/svg_plot.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/pi/cost_report.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/support/atomic_file.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace linearize {

namespace detail {
inline std::string pct(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << 100 * fraction << '%';
  return s.str();
}
}  // namespace detail

/// The results row of a run: method, budget, count, final test accuracy (percent), estimated PI
/// latency, wall time, images forwarded, and the accuracies before finetuning as extra columns
/// (and the polynomial positions, where linearized ReLUs were replaced by polynomials).
[[nodiscard]] inline io::result_row result_row(const run_result& r, const std::string& method,
                                               const pi::cost_model& cost) {
  io::result_row row;
  row.method = method;
  row.budget = static_cast<double>(r.budget);
  row.relu_count = r.relu_count;
  row.accuracy = 100 * r.test_accuracy_after_finetune;
  int64_t polynomials = 0;
  for (const auto& s : r.per_slot) polynomials += s.polynomial;
  row.pi_latency_s = cost.latency(r.relu_count, 0, polynomials);
  if (polynomials > 0) row.set("polynomials", polynomials);
  row.wall_time_s = r.seconds;
  row.images_forwarded = r.images_forwarded;
  row.set("pipeline", r.method);
  row.set("baseline_accuracy", 100 * r.baseline_test_accuracy);
  row.set("accuracy_before_finetune", 100 * r.test_accuracy_before_finetune);
  if (!r.stages.empty() && std::isfinite(r.stages.back().test_accuracy_recalibrated))
    row.set("accuracy_after_bn_recalibration", 100 * r.stages.back().test_accuracy_recalibrated);
  row.set("total_relus", r.total_relus);
  return row;
}

/// A readable summary: stages, accuracies, and the per-layer table with PI cost.
inline void report(std::ostream& out, const run_result& r, const MaskSet& masks,
                   const pi::cost_model& cost) {
  out << "\n== " << r.method << "\n";
  out << "ReLUs: " << r.relu_count << " of " << r.total_relus << " (budget " << r.budget << ", "
      << detail::pct(static_cast<double>(r.relu_count) / static_cast<double>(r.total_relus))
      << " kept)\n";
  out << "test accuracy: baseline " << detail::pct(r.baseline_test_accuracy);
  for (const auto& s : r.stages) {
    out << " | " << s.name << ": binarized " << detail::pct(s.test_accuracy_selected);
    if (std::isfinite(s.test_accuracy_recalibrated))
      out << ", BN re-estimated " << detail::pct(s.test_accuracy_recalibrated);
    out << ", finetuned " << detail::pct(s.test_accuracy_finetuned);
  }
  out << "\n";
  for (const auto& s : r.stages)
    out << "stage " << s.name << ": " << s.relu_count_before << " -> " << s.relu_count << " ReLUs"
        << (s.budget_met ? "" : " (budget NOT reached)") << ", " << s.search_epochs
        << " search epochs, " << s.finetune_epochs << " finetune epochs, " << s.images_forwarded
        << " images forwarded, " << std::fixed << std::setprecision(1) << s.seconds << " s\n"
        << std::defaultfloat;
  pi::print(out, pi::estimate(masks, cost));
}

/// Writes <dir>/mask (MaskSet::save), <dir>/result.csv and .json, <dir>/history.csv and
/// <dir>/relus_per_layer.svg.
inline void save_outputs(const std::filesystem::path& dir, const std::string& method,
                         const run_result& r, const MaskSet& masks, const pi::cost_model& cost) {
  std::filesystem::create_directories(dir);
  masks.save(dir / "mask");
  const auto row = result_row(r, method, cost);
  io::write_csv(dir / "result.csv", {row});
  io::write_json(dir / "result.json", {row});
  write_atomically(dir / "history.csv", [&](std::ostream& out) {
    out << "stage,phase,epoch,penalty_weight,relu_count,loss,train_accuracy,held_out_accuracy,seconds\n";
    out << std::setprecision(9);
    const auto num = [](double v) { return std::isfinite(v) ? std::to_string(v) : std::string(); };
    for (const auto& h : r.history)
      out << h.stage << ',' << h.phase << ',' << h.epoch << ',' << num(h.penalty_weight) << ','
          << h.relu_count << ',' << num(h.loss) << ',' << num(h.train_accuracy) << ','
          << num(h.held_out_accuracy) << ',' << num(h.seconds) << '\n';
  });
  io::bar_chart chart;
  chart.title = method + ": ReLUs kept per layer (" + std::to_string(r.relu_count) + " of " +
                std::to_string(r.total_relus) + ")";
  chart.bars = io::bars_from(masks.per_slot());
  io::write_svg(dir / "relus_per_layer.svg", chart);
}

}  // namespace linearize
