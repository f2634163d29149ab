#pragma once
// SVG plots written by the library itself, so that a benchmark ends with a figure and no
// plotting tool is needed:
//   line_plot  accuracy against ReLU count (log x axis by default), one line and marker shape per
//              method, published numbers as hollow markers, legend outside the plot area;
//   bar_chart  ReLUs kept against ReLUs present, per layer (MaskSet::per_slot() rows);
//   grouped_bar_chart  several quantities per layer side by side, e.g. the ReLU, polynomial and
//              linear latency of each layer from a private-inference cost report.
// Colours: the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies),
// and every series also has its own marker shape, so that plots survive grey-scale printing.
#include <linearize/io/results.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace linearize::io {

struct point {
  double x = 0;
  double y = 0;
  double y_error = 0;  ///< drawn as a bar from y - y_error to y + y_error (a standard error)
};

struct series {
  std::string label{};
  std::vector<point> points{};
};

struct line_plot {
  std::string title{};
  std::string x_label = "ReLU count";
  std::string y_label = "Top-1 accuracy (%)";
  std::vector<series> lines{};     ///< measured: line + filled markers
  std::vector<series> references{};  ///< e.g. published numbers: hollow markers
  bool connect_references = true;  ///< join reference points with a thin dashed line
  bool log_x = true;
  int width = 880;
  int height = 520;
};

/// One layer of a bar chart.
struct bar {
  std::string name{};
  int64_t total = 0;  ///< ReLUs of the layer
  int64_t kept = 0;   ///< ReLUs still there
};

struct bar_chart {
  std::string title{};
  std::string x_label = "ReLU layer";
  std::string y_label = "ReLUs";
  std::vector<bar> bars{};
  bool log_y = true;
  bool show_percent = true;  ///< "kept %" above each bar (up to 48 bars)
  int width = 0;             ///< 0: grows with the number of bars
  int height = 520;
};

/// Several values per group (layer), drawn side by side, one colour per series.
struct grouped_bar_chart {
  std::string title{};
  std::string x_label = "layer";
  std::string y_label = "latency";
  std::vector<std::string> series{};          ///< legend labels: one per value of a group
  std::vector<std::string> groups{};          ///< one label per group
  std::vector<std::vector<double>> values{};  ///< [group][series], each >= 0 (0: no bar)
  bool log_y = true;
  bool seconds = true;  ///< tick labels as durations ("10 us", "1 ms"); else plain numbers
  int width = 0;        ///< 0: grows with the number of groups
  int height = 520;
};

/// Bars from MaskSet::per_slot() rows (anything with .name, .total, .active).
template <class Rows>
[[nodiscard]] std::vector<bar> bars_from(const Rows& rows) {
  std::vector<bar> out;
  for (const auto& r : rows) out.push_back({r.name, static_cast<int64_t>(r.total), static_cast<int64_t>(r.active)});
  return out;
}

/// Accuracy against ReLU count, one line per method, from result rows (rows without an
/// accuracy are left out; each method's points in order of ReLU count).
[[nodiscard]] inline line_plot accuracy_plot(const std::vector<result_row>& rows, std::string title = {}) {
  line_plot plot;
  plot.title = std::move(title);
  for (const auto& r : rows) {
    if (std::isnan(r.accuracy)) continue;
    auto it = std::find_if(plot.lines.begin(), plot.lines.end(), [&](const series& s) { return s.label == r.method; });
    if (it == plot.lines.end()) it = plot.lines.insert(plot.lines.end(), series{r.method, {}});
    it->points.push_back({static_cast<double>(r.relu_count), r.accuracy});
  }
  require(!plot.lines.empty(), "accuracy_plot: none of the ", rows.size(),
          " result rows has an accuracy; expected at least one measured row");
  for (auto& s : plot.lines)
    std::stable_sort(s.points.begin(), s.points.end(), [](const point& a, const point& b) { return a.x < b.x; });
  return plot;
}

namespace detail::svg {

// Okabe & Ito (2008), ordered for contrast on white; yellow last.
inline constexpr const char* palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                          "#E69F00", "#56B4E9", "#000000", "#F0E442"};
inline constexpr const char* font = "DejaVu Sans, Helvetica, Arial, sans-serif";
inline constexpr double title_size = 18, label_size = 14, tick_size = 12, legend_size = 13;

inline std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

inline std::string num(double v) {
  std::string s = fmt::format("{:.2f}", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

/// Rough rendered width of a label (average glyph of a sans-serif font).
inline double text_width(std::string_view s, double size) {
  double n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // code points, not bytes
  return n * size * 0.6;
}

/// Up to three significant digits, no trailing zeros: 2.5, 20, 0.125.
inline std::string short_number(double v) { return fmt::format("{:.3g}", v); }

/// ReLU counts as the literature writes them: 500, 1K, 12.9K, 1M.
inline std::string count_label(double v) {
  const double a = std::fabs(v);
  if (a >= 1e6) return short_number(v / 1e6) + "M";
  if (a >= 1e3) return short_number(v / 1e3) + "K";
  return short_number(v);
}

struct tick {
  double value;
  bool major;
  std::string label;  // empty: unlabelled (minor)
};

/// 1, 2 or 5 times a power of ten, about `target` steps over [lo, hi].
inline double nice_step(double lo, double hi, int target = 5) {
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

inline int decimals_for(double step) {
  return step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
}

struct axis {
  double lo = 0, hi = 1;  // data range shown
  bool log = false;
  std::vector<tick> ticks;

  [[nodiscard]] double fraction(double v) const {
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
  }
};

/// A linear axis over [lo, hi] widened to whole steps; `pad` widens the data range first.
inline axis linear_axis(double lo, double hi, bool pad, bool counts = false) {
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double d = std::max(1.0, std::fabs(hi) * 0.1);
    lo -= d;
    hi += d;
  } else if (pad) {
    const double d = 0.05 * (hi - lo);
    lo -= d;
    hi += d;
  }
  const double step = nice_step(lo, hi);
  axis a;
  a.lo = std::floor(lo / step + 1e-9) * step;
  a.hi = std::ceil(hi / step - 1e-9) * step;
  const int decimals = decimals_for(step);
  for (double v = a.lo; v <= a.hi + step * 1e-6; v += step) {
    const double t = std::fabs(v) < step * 1e-6 ? 0 : v;
    a.ticks.push_back({t, true, counts ? count_label(t) : fmt::format("{:.{}f}", t, decimals)});
  }
  return a;
}

/// A log axis: decades labelled (1K, 10K, ...), 2..9 times a decade as minor ticks; over short
/// ranges the 2x and 5x ticks get labels too. `from_decade` starts the axis on the decade below
/// `lo` (bars grow from there) and leaves headroom above `hi` for labels.
inline axis log_axis(double lo, double hi, bool from_decade) {
  double l = std::log10(lo), h = std::log10(hi);
  if (h - l < 1e-9) {
    l -= 0.5;
    h += 0.5;
  }
  if (from_decade) {
    l = std::floor(l + 1e-9);
    h += 0.07 * std::max(h - l, 1.0);
  } else {
    const double pad = 0.06 * std::max(h - l, 1.0);
    l -= pad;
    h += pad;
    // A decade just outside the range is worth its label (10K beside 12K).
    if (l - std::floor(l) < 0.1) l = std::floor(l);
    if (std::ceil(h) - h < 0.1) h = std::ceil(h);
  }
  axis a;
  a.log = true;
  a.lo = std::pow(10.0, l);
  a.hi = std::pow(10.0, h);
  const bool label_minor = h - l < 2.2;
  for (int k = static_cast<int>(std::floor(l)) ; k <= static_cast<int>(std::ceil(h)); ++k) {
    for (int m = 1; m <= 9; ++m) {
      const double v = m * std::pow(10.0, k);
      const double e = std::log10(v);
      if (e < l - 1e-9 || e > h + 1e-9) continue;
      const bool labelled = m == 1 || (label_minor && (m == 2 || m == 5));
      a.ticks.push_back({v, m == 1, labelled ? count_label(v) : std::string()});
    }
  }
  int labelled = 0;
  for (const auto& t : a.ticks) labelled += !t.label.empty();
  if (labelled < 2) {  // less than a decade: label nice linear positions instead
    const double step = nice_step(a.lo, a.hi, 4);
    for (auto& t : a.ticks) t.label.clear();
    for (double v = std::ceil(a.lo / step) * step; v <= a.hi; v += step) a.ticks.push_back({v, true, count_label(v)});
  }
  return a;
}

/// A marker of shape `shape` at (x, y): filled, or hollow (white inside) for references.
inline std::string marker(int shape, double x, double y, const char* colour, bool hollow, double r = 4.5) {
  const std::string style = hollow ? std::string("fill=\"white\" stroke=\"") + colour + "\" stroke-width=\"1.8\""
                                   : std::string("fill=\"") + colour + "\" stroke=\"white\" stroke-width=\"0.8\"";
  const auto pts = [&](std::initializer_list<std::pair<double, double>> p) {
    std::string s = "<polygon points=\"";
    for (const auto& [dx, dy] : p) s += num(x + dx * r) + "," + num(y + dy * r) + " ";
    s.back() = '"';
    return s + " " + style + "/>";
  };
  switch (shape % 6) {
    case 0: return "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(r) + "\" " + style + "/>";
    case 1: return pts({{-0.9, -0.9}, {0.9, -0.9}, {0.9, 0.9}, {-0.9, 0.9}});
    case 2: return pts({{0, -1.25}, {1.1, 0.75}, {-1.1, 0.75}});
    case 3: return pts({{0, -1.3}, {1.1, 0}, {0, 1.3}, {-1.1, 0}});
    case 4: return pts({{0, 1.25}, {1.1, -0.75}, {-1.1, -0.75}});
    default: return pts({{-0.4, -1.1}, {0.4, -1.1}, {0.4, -0.4}, {1.1, -0.4}, {1.1, 0.4}, {0.4, 0.4},
                         {0.4, 1.1}, {-0.4, 1.1}, {-0.4, 0.4}, {-1.1, 0.4}, {-1.1, -0.4}, {-0.4, -0.4}});
  }
}

inline std::string text(double x, double y, std::string_view s, double size, std::string_view anchor,
                        std::string_view extra = {}) {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(size) + "\" text-anchor=\"" +
         std::string(anchor) + "\"" + (extra.empty() ? "" : " ") + std::string(extra) + ">" + escape(s) +
         "</text>\n";
}

inline std::string line(double x1, double y1, double x2, double y2, std::string_view style) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" " +
         std::string(style) + "/>\n";
}

inline std::string header(int width, int height) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
         std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
         "\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<g font-family=\"" + font +
         "\" fill=\"#222222\">\n";
}

/// The plot frame: grid, ticks and tick labels of both axes, axis labels and title.
struct frame {
  double left, top, right, bottom;  // plot area in pixels
  [[nodiscard]] double px(const axis& a, double v) const { return left + a.fraction(v) * (right - left); }
  [[nodiscard]] double py(const axis& a, double v) const { return bottom - a.fraction(v) * (bottom - top); }
};

inline std::string draw_y_axis(const frame& f, const axis& y, bool grid) {
  std::string s;
  for (const auto& t : y.ticks) {
    const double py = f.py(y, t.value);
    if (grid)
      s += line(f.left, py, f.right, py,
                t.major ? "stroke=\"#e3e3e3\" stroke-width=\"1\"" : "stroke=\"#f1f1f1\" stroke-width=\"1\"");
    s += line(f.left - (t.major ? 6 : 3), py, f.left, py, "stroke=\"#444444\" stroke-width=\"1\"");
    if (!t.label.empty()) s += text(f.left - 9, py + tick_size * 0.35, t.label, tick_size, "end");
  }
  return s;
}

inline void check_size(const char* what, int width, int height) {
  require(width >= 200 && height >= 160 && width <= 20000 && height <= 20000, what, ": size ", width, "x",
          height, " pixels; expected at least 200x160 and at most 20000x20000");
}

/// The canvas of a chart of `count` slanted-label columns `pitch` pixels apart, with a legend
/// `legend_w` wide on the right: its size (fixed, or grown with the columns) and plot area.
struct column_canvas {
  int width = 0, height = 0;
  frame area{};
};

inline column_canvas column_layout(const char* kind, const axis& y, size_t count, double pitch, double legend_w,
                                   double label_w, int fixed_width, int min_height, bool titled) {
  constexpr double slant = 0.64;  // sin(40 deg): x labels are rotated so that long names fit
  double y_tick_w = 0;
  for (const auto& t : y.ticks) y_tick_w = std::max(y_tick_w, text_width(t.label, tick_size));
  const double left = 30 + y_tick_w + 20;
  column_canvas out;
  out.width = fixed_width > 0
                  ? fixed_width
                  : static_cast<int>(std::max(560.0, left + pitch * static_cast<double>(count) + legend_w + 30));
  const double bottom_margin = 30 + label_w * slant + tick_size + label_size;
  out.height = std::max(min_height, static_cast<int>(bottom_margin + 260));
  check_size(kind, out.width, out.height);
  out.area = frame{left, titled ? 52.0 : 24.0, out.width - legend_w - 20, out.height - bottom_margin};
  require(out.area.right - out.area.left >= 40, kind, ": width ", out.width, " leaves no room for ", count,
          " columns; expected a larger width (or width = 0 for automatic)");
  return out;
}

}  // namespace detail::svg

/// The line plot as SVG text. Errors: no series, a series without points, a non-finite
/// coordinate, a non-positive x on a log axis.
[[nodiscard]] inline std::string render_svg(const line_plot& p) {
  using namespace detail::svg;
  check_size("line_plot", p.width, p.height);
  require(!p.lines.empty() || !p.references.empty(),
          "line_plot: no series; expected at least one line or reference series");
  constexpr double inf = std::numeric_limits<double>::infinity();
  double xmin = inf, xmax = -inf, ymin = inf, ymax = -inf;
  const auto check = [&](const series& s, const char* kind) {
    require(!s.points.empty(), "line_plot: ", kind, " series '", s.label, "' has no points; expected at least one");
    for (size_t i = 0; i < s.points.size(); ++i) {
      const auto& q = s.points[i];
      require(std::isfinite(q.x) && std::isfinite(q.y), "line_plot: ", kind, " series '", s.label, "', point ", i,
              ": (", q.x, ", ", q.y, "); expected finite coordinates");
      require(std::isfinite(q.y_error) && q.y_error >= 0, "line_plot: ", kind, " series '", s.label, "', point ", i,
              ": error bar ", q.y_error, "; expected a finite value >= 0");
      require(!p.log_x || q.x > 0, "line_plot: ", kind, " series '", s.label, "', point ", i, ": x = ", q.x,
              " on a log x axis; expected x > 0 (or set log_x = false)");
      xmin = std::min(xmin, q.x);
      xmax = std::max(xmax, q.x);
      ymin = std::min(ymin, q.y - q.y_error);
      ymax = std::max(ymax, q.y + q.y_error);
    }
  };
  for (const auto& s : p.lines) check(s, "line");
  for (const auto& s : p.references) check(s, "reference");

  const axis x = p.log_x ? log_axis(xmin, xmax, false) : linear_axis(xmin, xmax, true, true);
  const axis y = linear_axis(ymin, ymax, true);

  // Legend to the right of the plot area: it never hides a point.
  double legend_text = 0;
  for (const auto& s : p.lines) legend_text = std::max(legend_text, text_width(s.label, legend_size));
  for (const auto& s : p.references) legend_text = std::max(legend_text, text_width(s.label, legend_size));
  const double legend_w = 44 + legend_text;
  double y_tick_w = 0;
  for (const auto& t : y.ticks) y_tick_w = std::max(y_tick_w, text_width(t.label, tick_size));
  const frame f{30 + y_tick_w + 20, p.title.empty() ? 24.0 : 52.0,
                std::max(260.0, p.width - legend_w - 36), p.height - 58.0};
  require(f.right - f.left >= 120, "line_plot: width ", p.width,
          " leaves no room for the plot beside the legend; expected a larger width or shorter labels");

  std::string s = header(p.width, p.height);
  if (!p.title.empty()) s += text((f.left + f.right) / 2, 32, p.title, title_size, "middle", "font-weight=\"bold\"");
  // grid and ticks
  for (const auto& t : x.ticks) {
    const double px = f.px(x, t.value);
    s += line(px, f.top, px, f.bottom,
              t.major || !t.label.empty() ? "stroke=\"#e3e3e3\" stroke-width=\"1\"" : "stroke=\"#f1f1f1\" stroke-width=\"1\"");
    s += line(px, f.bottom, px, f.bottom + (t.major ? 6 : 3.5), "stroke=\"#444444\" stroke-width=\"1\"");
    if (!t.label.empty()) s += text(px, f.bottom + 8 + tick_size, t.label, tick_size, "middle");
  }
  s += draw_y_axis(f, y, true);
  s += "<rect x=\"" + num(f.left) + "\" y=\"" + num(f.top) + "\" width=\"" + num(f.right - f.left) + "\" height=\"" +
       num(f.bottom - f.top) + "\" fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>\n";
  s += text((f.left + f.right) / 2, p.height - 14.0, p.x_label + (p.log_x ? " (log scale)" : ""), label_size, "middle");
  const double ylx = 20, yly = (f.top + f.bottom) / 2;
  s += text(ylx, yly, p.y_label, label_size, "middle",
            "transform=\"rotate(-90 " + num(ylx) + " " + num(yly) + ")\" dominant-baseline=\"middle\"");

  // data: references first, so that measured lines are drawn over them
  const auto path_of = [&](const series& ser) {
    auto pts = ser.points;
    std::stable_sort(pts.begin(), pts.end(), [](const point& a, const point& b) { return a.x < b.x; });
    std::string d;
    for (size_t i = 0; i < pts.size(); ++i) d += (i ? " L" : "M") + num(f.px(x, pts[i].x)) + "," + num(f.py(y, pts[i].y));
    return d;
  };
  const size_t n_lines = p.lines.size();
  const auto colour = [&](size_t i) { return palette[i % std::size(palette)]; };
  for (size_t i = 0; i < p.references.size(); ++i) {
    const auto& ser = p.references[i];
    const char* c = colour(n_lines + i);
    if (p.connect_references && ser.points.size() > 1)
      s += "<path d=\"" + path_of(ser) + "\" fill=\"none\" stroke=\"" + c +
           "\" stroke-width=\"1.4\" stroke-dasharray=\"5 4\" stroke-opacity=\"0.8\"/>\n";
    for (const auto& q : ser.points) s += marker(static_cast<int>(n_lines + i), f.px(x, q.x), f.py(y, q.y), c, true) + "\n";
  }
  for (size_t i = 0; i < n_lines; ++i) {
    const auto& ser = p.lines[i];
    const char* c = colour(i);
    if (ser.points.size() > 1)
      s += "<path d=\"" + path_of(ser) + "\" fill=\"none\" stroke=\"" + c +
           "\" stroke-width=\"2.2\" stroke-linejoin=\"round\"/>\n";
    for (const auto& q : ser.points) {
      if (q.y_error > 0) {
        const double px = f.px(x, q.x), lo = f.py(y, q.y - q.y_error), hi = f.py(y, q.y + q.y_error);
        const std::string style = std::string("stroke=\"") + c + "\" stroke-width=\"1.4\"";
        s += line(px, lo, px, hi, style) + line(px - 4, lo, px + 4, lo, style) + line(px - 4, hi, px + 4, hi, style);
      }
      s += marker(static_cast<int>(i), f.px(x, q.x), f.py(y, q.y), c, false) + "\n";
    }
  }

  // legend
  double ly = f.top + 10;
  const double lx = f.right + 20;
  const auto entry = [&](const series& ser, size_t index, bool reference) {
    const char* c = colour(index);
    s += line(lx, ly, lx + 26, ly,
              std::string("stroke=\"") + c + (reference ? "\" stroke-width=\"1.4\" stroke-dasharray=\"5 4\"" : "\" stroke-width=\"2.2\""));
    s += marker(static_cast<int>(index), lx + 13, ly, c, reference) + "\n";
    s += text(lx + 34, ly + legend_size * 0.35, ser.label, legend_size, "start");
    ly += legend_size + 9;
  };
  for (size_t i = 0; i < n_lines; ++i) entry(p.lines[i], i, false);
  for (size_t i = 0; i < p.references.size(); ++i) entry(p.references[i], n_lines + i, true);
  return s + "</g>\n</svg>\n";
}

/// The bar chart as SVG text: for each layer a light bar of its ReLUs and over it a solid bar of
/// the ReLUs kept. Errors: no bars, negative counts, kept > total, nothing positive on a log axis.
[[nodiscard]] inline std::string render_svg(const bar_chart& c) {
  using namespace detail::svg;
  require(!c.bars.empty(), "bar_chart: no bars; expected one per layer (e.g. bars_from(masks.per_slot()))");
  int64_t max_total = 0;
  double min_positive = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < c.bars.size(); ++i) {
    const auto& b = c.bars[i];
    require(b.total >= 0 && b.kept >= 0 && b.kept <= b.total, "bar_chart: bar ", i, " ('", b.name, "') keeps ",
            b.kept, " of ", b.total, " ReLUs; expected 0 <= kept <= total");
    max_total = std::max(max_total, b.total);
    if (b.total > 0) min_positive = std::min(min_positive, static_cast<double>(b.total));
    if (b.kept > 0) min_positive = std::min(min_positive, static_cast<double>(b.kept));
  }
  require(max_total > 0, "bar_chart: every bar has 0 ReLUs; expected at least one layer with ReLUs");
  const axis y = c.log_y ? log_axis(min_positive, static_cast<double>(max_total), true)
                         : linear_axis(0, 1.06 * static_cast<double>(max_total), false, true);

  double label_w = 0;
  for (const auto& b : c.bars) label_w = std::max(label_w, text_width(b.name, tick_size));
  const auto canvas = column_layout("bar_chart", y, c.bars.size(), 34, 150, label_w, c.width, c.height,
                                    !c.title.empty());
  const int width = canvas.width, height = canvas.height;
  const frame f = canvas.area;
  std::string s = header(width, height);
  if (!c.title.empty()) s += text((f.left + f.right) / 2, 32, c.title, title_size, "middle", "font-weight=\"bold\"");
  s += draw_y_axis(f, y, true);
  const double slot = (f.right - f.left) / static_cast<double>(c.bars.size());
  const double bw = std::min(slot * 0.72, 40.0);
  const auto top_of = [&](int64_t v) { return f.py(y, static_cast<double>(v)); };
  const bool percent = c.show_percent && c.bars.size() <= 48;
  for (size_t i = 0; i < c.bars.size(); ++i) {
    const auto& b = c.bars[i];
    const double cx = f.left + slot * (static_cast<double>(i) + 0.5);
    const auto rect = [&](int64_t v, const char* style) {
      if (v <= 0) return;  // nothing to draw (and no place for 0 on a log axis)
      const double t = top_of(v);
      s += "<rect x=\"" + num(cx - bw / 2) + "\" y=\"" + num(t) + "\" width=\"" + num(bw) + "\" height=\"" +
           num(std::max(0.0, f.bottom - t)) + "\" " + style + "/>\n";
    };
    rect(b.total, "fill=\"#dddddd\" stroke=\"#9a9a9a\" stroke-width=\"0.8\"");
    rect(b.kept, "fill=\"#0072B2\"");
    if (percent && b.total > 0) {
      const double share = 100.0 * static_cast<double>(b.kept) / static_cast<double>(b.total);
      const std::string label = share == 0 ? "0%" : share < 1 ? "<1%" : short_number(std::round(share)) + "%";
      s += text(cx, top_of(b.total) - 5, label, 10, "middle", "fill=\"#555555\"");
    }
    s += line(cx, f.bottom, cx, f.bottom + 4, "stroke=\"#444444\" stroke-width=\"1\"");
    const double ty = f.bottom + 10;
    s += text(cx + 3, ty + tick_size * 0.6, b.name, tick_size, "end",
              "transform=\"rotate(-40 " + num(cx + 3) + " " + num(ty) + ")\"");
  }
  s += "<rect x=\"" + num(f.left) + "\" y=\"" + num(f.top) + "\" width=\"" + num(f.right - f.left) + "\" height=\"" +
       num(f.bottom - f.top) + "\" fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>\n";
  s += text((f.left + f.right) / 2, height - 14.0, c.x_label, label_size, "middle");
  const double ylx = 20, yly = (f.top + f.bottom) / 2;
  s += text(ylx, yly, c.y_label + (c.log_y ? " (log scale)" : ""), label_size, "middle",
            "transform=\"rotate(-90 " + num(ylx) + " " + num(yly) + ")\" dominant-baseline=\"middle\"");
  // legend
  const double lx = f.right + 20, ly = f.top + 10;
  s += "<rect x=\"" + num(lx) + "\" y=\"" + num(ly - 7) + "\" width=\"18\" height=\"14\" fill=\"#dddddd\" stroke=\"#9a9a9a\" stroke-width=\"0.8\"/>\n";
  s += text(lx + 26, ly + legend_size * 0.35, "ReLUs in layer", legend_size, "start");
  s += "<rect x=\"" + num(lx) + "\" y=\"" + num(ly + 15) + "\" width=\"18\" height=\"14\" fill=\"#0072B2\"/>\n";
  s += text(lx + 26, ly + 22 + legend_size * 0.35, "ReLUs kept", legend_size, "start");
  if (percent) s += text(lx, ly + 50, "above bars: % kept", 11, "start", "fill=\"#555555\"");
  return s + "</g>\n</svg>\n";
}

namespace detail::svg {
/// "50 us", "1 ms", "2 s": a duration for a tick label.
inline std::string seconds_label(double v) {
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a >= 1) return short_number(v) + " s";
  if (a >= 1e-3) return short_number(v * 1e3) + " ms";
  if (a >= 1e-6) return short_number(v * 1e6) + " us";
  return short_number(v * 1e9) + " ns";
}
}  // namespace detail::svg

/// The grouped bar chart as SVG text: per group one bar per series, side by side, colours from
/// the palette and a legend. Errors: no groups or series, a group with the wrong number of
/// values, a negative or non-finite value, nothing positive.
[[nodiscard]] inline std::string render_svg(const grouped_bar_chart& c) {
  using namespace detail::svg;
  require(!c.groups.empty() && !c.series.empty(), "grouped_bar_chart: ", c.groups.size(), " groups and ",
          c.series.size(), " series; expected at least one of each");
  require(c.values.size() == c.groups.size(), "grouped_bar_chart: ", c.values.size(), " value rows for ",
          c.groups.size(), " groups; expected one row per group");
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (size_t g = 0; g < c.values.size(); ++g) {
    require(c.values[g].size() == c.series.size(), "grouped_bar_chart: group ", g, " ('", c.groups[g], "') has ",
            c.values[g].size(), " values; expected ", c.series.size(), " (one per series)");
    for (double v : c.values[g]) {
      require(std::isfinite(v) && v >= 0, "grouped_bar_chart: group '", c.groups[g], "' has value ", v,
              "; expected finite values >= 0");
      if (v > 0) lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  require(hi > 0, "grouped_bar_chart: every value is 0; expected something to draw");
  axis y = c.log_y ? log_axis(lo, hi, true) : linear_axis(0, 1.06 * hi, false);
  if (c.seconds)
    for (auto& t : y.ticks)
      if (!t.label.empty()) t.label = seconds_label(t.value);

  double label_w = 0;
  for (const auto& g : c.groups) label_w = std::max(label_w, text_width(g, tick_size));
  double legend_text = 0;
  for (const auto& l : c.series) legend_text = std::max(legend_text, text_width(l, legend_size));
  const auto canvas = column_layout("grouped_bar_chart", y, c.groups.size(),
                                    12.0 * static_cast<double>(c.series.size()) + 14, 44 + legend_text, label_w,
                                    c.width, c.height, !c.title.empty());
  const int width = canvas.width, height = canvas.height;
  const frame f = canvas.area;
  std::string s = header(width, height);
  if (!c.title.empty()) s += text((f.left + f.right) / 2, 32, c.title, title_size, "middle", "font-weight=\"bold\"");
  s += draw_y_axis(f, y, true);
  const double slot = (f.right - f.left) / static_cast<double>(c.groups.size());
  const double bw = std::min(slot * 0.8 / static_cast<double>(c.series.size()), 16.0);
  for (size_t g = 0; g < c.groups.size(); ++g) {
    const double cx = f.left + slot * (static_cast<double>(g) + 0.5);
    const double first = cx - bw * static_cast<double>(c.series.size()) / 2;
    for (size_t k = 0; k < c.series.size(); ++k) {
      const double v = c.values[g][k];
      if (v <= 0 || (c.log_y && v < y.lo)) continue;
      const double t = f.py(y, v);
      s += "<rect x=\"" + num(first + bw * static_cast<double>(k)) + "\" y=\"" + num(t) + "\" width=\"" + num(bw) +
           "\" height=\"" + num(std::max(0.0, f.bottom - t)) + "\" fill=\"" + palette[k % std::size(palette)] + "\"/>\n";
    }
    s += line(cx, f.bottom, cx, f.bottom + 4, "stroke=\"#444444\" stroke-width=\"1\"");
    const double ty = f.bottom + 10;
    s += text(cx + 3, ty + tick_size * 0.6, c.groups[g], tick_size, "end",
              "transform=\"rotate(-40 " + num(cx + 3) + " " + num(ty) + ")\"");
  }
  s += "<rect x=\"" + num(f.left) + "\" y=\"" + num(f.top) + "\" width=\"" + num(f.right - f.left) + "\" height=\"" +
       num(f.bottom - f.top) + "\" fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>\n";
  s += text((f.left + f.right) / 2, height - 14.0, c.x_label, label_size, "middle");
  const double ylx = 20, yly = (f.top + f.bottom) / 2;
  s += text(ylx, yly, c.y_label + (c.log_y ? " (log scale)" : ""), label_size, "middle",
            "transform=\"rotate(-90 " + num(ylx) + " " + num(yly) + ")\" dominant-baseline=\"middle\"");
  double ly = f.top + 10;
  const double lx = f.right + 20;
  for (size_t k = 0; k < c.series.size(); ++k) {
    s += "<rect x=\"" + num(lx) + "\" y=\"" + num(ly - 7) + "\" width=\"18\" height=\"14\" fill=\"" +
         palette[k % std::size(palette)] + "\"/>\n";
    s += text(lx + 26, ly + legend_size * 0.35, c.series[k], legend_size, "start");
    ly += legend_size + 9;
  }
  return s + "</g>\n</svg>\n";
}

/// Writes SVG text to `path` atomically.
inline void write_svg(const std::filesystem::path& path, const std::string& svg) {
  require(svg.starts_with("<svg"), "write_svg: text for '", path.string(), "' is not SVG (it starts '",
          svg.substr(0, 16), "'); expected render_svg(...) output");
  write_atomically(path, [&](std::ostream& out) { out << svg; });
}
inline void write_svg(const std::filesystem::path& path, const line_plot& p) { write_svg(path, render_svg(p)); }
inline void write_svg(const std::filesystem::path& path, const bar_chart& c) { write_svg(path, render_svg(c)); }
inline void write_svg(const std::filesystem::path& path, const grouped_bar_chart& c) {
  write_svg(path, render_svg(c));
}

}  // namespace linearize::io
