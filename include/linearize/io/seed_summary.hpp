#pragma once
// Results over seeds: rows of the same method at the same budget (one per seed, told apart by
// their "seed" column) summarized as mean +- standard error, and two methods compared by the
// per-seed difference of their accuracies (paired: the same seed shares the baseline, the data
// order and the finetune's shuffles), with whether it exceeds twice its standard error. Both as
// markdown tables, so that a README quotes the run's files rather than retyped numbers.
#include <linearize/io/results.hpp>
#include <linearize/io/svg_plot.hpp>
#include <linearize/support/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace linearize::io {

struct mean_se {
  double mean = missing;
  double se = missing;  ///< standard error of the mean; NaN below two values
  int64_t n = 0;
};

[[nodiscard]] inline mean_se summarize(const std::vector<double>& values) {
  mean_se out{.n = static_cast<int64_t>(values.size())};
  if (values.empty()) return out;
  double sum = 0;
  for (double v : values) sum += v;
  out.mean = sum / static_cast<double>(values.size());
  if (values.size() < 2) return out;
  double squares = 0;
  for (double v : values) squares += (v - out.mean) * (v - out.mean);
  out.se = std::sqrt(squares / static_cast<double>(values.size() - 1) / static_cast<double>(values.size()));
  return out;
}

/// The column that groups rows (a budget's text such as "5%"); the budget count without one.
[[nodiscard]] inline std::string group_of(const result_row& r, const std::string& column) {
  if (const auto* v = r.get(column)) return *v;
  return detail::number_text(r.budget);
}

[[nodiscard]] inline std::string seed_of(const result_row& r) {
  const auto* v = r.get("seed");
  return v ? *v : std::string();
}

struct group_summary {
  std::string method, group;
  mean_se accuracy, relu_count, images_forwarded;
};

/// One summary per (method, group), in the order the rows first show them.
[[nodiscard]] inline std::vector<group_summary> summarize_groups(const std::vector<result_row>& rows,
                                                                 const std::string& column) {
  std::vector<std::pair<std::string, std::string>> order;
  std::map<std::pair<std::string, std::string>, std::vector<const result_row*>> groups;
  for (const auto& r : rows) {
    const auto key = std::make_pair(r.method, group_of(r, column));
    if (groups[key].empty()) order.push_back(key);
    groups[key].push_back(&r);
  }
  std::vector<group_summary> out;
  for (const auto& key : order) {
    std::vector<double> acc, relus, images;
    for (const auto* r : groups[key]) {
      acc.push_back(r->accuracy);
      relus.push_back(static_cast<double>(r->relu_count));
      images.push_back(static_cast<double>(r->images_forwarded));
    }
    out.push_back({key.first, key.second, summarize(acc), summarize(relus), summarize(images)});
  }
  return out;
}

struct comparison {
  std::string a, b, group;
  mean_se difference;  ///< accuracy of a minus b, points, over the seeds both have
  /// |difference| > 2 standard errors (false with fewer than two seeds).
  [[nodiscard]] bool beyond_two_se() const {
    return difference.n >= 2 && std::isfinite(difference.se) && std::fabs(difference.mean) > 2 * difference.se;
  }
};

/// `a` against `b` in `group`, paired by seed; an error when they share no seed.
[[nodiscard]] inline comparison compare(const std::vector<result_row>& rows, const std::string& a,
                                        const std::string& b, const std::string& group,
                                        const std::string& column) {
  std::map<std::string, double> of_a, of_b;
  for (const auto& r : rows) {
    if (group_of(r, column) != group) continue;
    if (r.method == a) of_a[seed_of(r)] = r.accuracy;
    if (r.method == b) of_b[seed_of(r)] = r.accuracy;
  }
  std::vector<double> diffs;
  for (const auto& [seed, acc] : of_a)
    if (const auto it = of_b.find(seed); it != of_b.end()) diffs.push_back(acc - it->second);
  require(!diffs.empty(), "compare: '", a, "' and '", b, "' at ", column, " '", group,
          "' share no seed; expected rows of both with the same seed column");
  return {a, b, group, summarize(diffs)};
}

/// Mean accuracy against mean ReLU count, one line per method, the standard error as a bar.
[[nodiscard]] inline line_plot accuracy_plot(const std::vector<group_summary>& groups, std::string title = {}) {
  line_plot plot;
  plot.title = std::move(title);
  plot.y_label = "Top-1 accuracy (%), mean ± s.e. over seeds";
  for (const auto& g : groups) {
    if (!std::isfinite(g.accuracy.mean)) continue;
    auto it = std::find_if(plot.lines.begin(), plot.lines.end(), [&](const series& s) { return s.label == g.method; });
    if (it == plot.lines.end()) it = plot.lines.insert(plot.lines.end(), series{g.method, {}});
    it->points.push_back({std::max(1.0, g.relu_count.mean), g.accuracy.mean,
                          std::isfinite(g.accuracy.se) ? g.accuracy.se : 0.0});
  }
  require(!plot.lines.empty(), "accuracy_plot: none of the ", groups.size(),
          " summaries has an accuracy; expected at least one");
  return plot;
}

namespace detail {
inline std::string pm(const mean_se& m, int digits) {
  if (!std::isfinite(m.mean)) return "-";
  if (!std::isfinite(m.se)) return fmt::format("{:.{}f}", m.mean, digits);
  return fmt::format("{:.{}f} ± {:.{}f}", m.mean, digits, m.se, digits);
}
}  // namespace detail

/// | method | budget | ReLUs | test top-1 (%) | images forwarded | seeds |
[[nodiscard]] inline std::string markdown_summary(const std::vector<group_summary>& groups) {
  std::string out =
      "| method | budget | ReLUs (mean) | test top-1, % (mean ± s.e.) | images forwarded (mean) | seeds |\n"
      "|---|---|---:|---:|---:|---:|\n";
  for (const auto& g : groups)
    out += fmt::format("| {} | {} | {:.0f} | {} | {:.0f} | {} |\n", g.method, g.group, g.relu_count.mean,
                       detail::pm(g.accuracy, 2), g.images_forwarded.mean, g.accuracy.n);
  return out;
}

/// | comparison | budget | difference (points) | beyond 2 s.e. |
[[nodiscard]] inline std::string markdown_comparisons(const std::vector<comparison>& comps) {
  std::string out =
      "| comparison | budget | difference, points (mean ± s.e., paired by seed) | beyond 2 s.e.? | seeds |\n"
      "|---|---|---:|---|---:|\n";
  for (const auto& c : comps)
    out += fmt::format("| {} − {} | {} | {} | {} | {} |\n", c.a, c.b, c.group, detail::pm(c.difference, 2),
                       c.difference.n < 2 ? "n/a (one seed)" : (c.beyond_two_se() ? "yes" : "no"),
                       c.difference.n);
  return out;
}

}  // namespace linearize::io
