#pragma once
// The private-inference cost of a (partly linearized) network, slot by slot: which layers the
// latency and communication come from, so that a researcher sees where the remaining ReLUs and
// polynomial replacements sit and what they cost. Computed from a MaskSet (or its per_slot()
// rows) and a cost_model; the linear layers' MACs (see mac_count.hpp) are optional.
#include <linearize/core/mask_set.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/format.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace linearize::pi {

/// Cost of one slot's kept ReLUs and polynomial positions.
struct slot_cost {
  std::string name{};
  std::string stage{};
  int layer = -1;
  int64_t total = 0;        ///< ReLUs of the slot's activation map
  int64_t kept = 0;         ///< ReLUs still evaluated in private inference
  double seconds = 0;       ///< online latency of the kept ReLUs and the polynomials
  double bytes = 0;         ///< online communication of the same
  int64_t polynomials = 0;  ///< positions evaluating a polynomial replacement
};

struct cost_report {
  cost_model model{};
  std::vector<slot_cost> slots{};
  int64_t macs = 0;            ///< MACs of the linear layers (0: not given)
  double linear_seconds = 0;   ///< their latency under the model
  double linear_bytes = 0;
  int64_t relus_total = 0;
  int64_t relus_kept = 0;
  int64_t polynomials = 0;     ///< polynomial positions over all slots
  double seconds = 0;          ///< total: slots + linear layers + the model's fixed cost
  double bytes = 0;
};

/// The cost of the ReLUs in `rows` (MaskSet::per_slot()) and of `macs` linear-layer MACs.
[[nodiscard]] inline cost_report estimate(const std::vector<relu_tally>& rows,
                                          const cost_model& model, int64_t macs = 0) {
  model.validate();
  require(!rows.empty(), "pi::estimate: no slots; expected MaskSet::per_slot() rows");
  require(macs >= 0, "pi::estimate: MAC count ", macs, "; expected >= 0");
  cost_report r{.model = model, .macs = macs};
  for (const auto& row : rows) {
    require(row.total >= 0 && row.active >= 0 && row.active <= row.total, "pi::estimate: slot '",
            row.name, "' keeps ", row.active, " of ", row.total,
            " ReLUs; expected 0 <= kept <= total");
    require(row.polynomial >= 0 && row.polynomial <= row.total, "pi::estimate: slot '", row.name,
            "' has ", row.polynomial, " polynomial positions of ", row.total,
            "; expected 0 <= polynomials <= total");
    // Per slot only the ReLU and polynomial terms: the fixed cost belongs to the inference.
    const auto relus = static_cast<double>(row.active), polys = static_cast<double>(row.polynomial);
    const double seconds = model.seconds_per_relu * relus + model.seconds_per_polynomial * polys;
    const double bytes = model.bytes_per_relu * relus + model.bytes_per_polynomial * polys;
    r.slots.push_back(
        {row.name, row.stage, row.layer, row.total, row.active, seconds, bytes, row.polynomial});
    r.relus_total += row.total;
    r.relus_kept += row.active;
    r.polynomials += row.polynomial;
  }
  r.linear_seconds = model.seconds_per_mac * static_cast<double>(macs);
  r.linear_bytes = model.bytes_per_mac * static_cast<double>(macs);
  // Totals from the model itself, so that they equal model.latency(kept, macs, polys) exactly.
  r.seconds = model.latency(r.relus_kept, macs, r.polynomials);
  r.bytes = model.communication(r.relus_kept, macs, r.polynomials);
  return r;
}

/// The cost of the network whose slots `masks` holds, in their current state.
[[nodiscard]] inline cost_report estimate(const MaskSet& masks, const cost_model& model,
                                          int64_t macs = 0) {
  return estimate(masks.per_slot(), model, macs);
}

namespace detail {

inline std::string fixed(double v, int decimals) { return fmt::format("{:.{}f}", v, decimals); }

/// Three significant digits in the unit that suits: "4.05 s", "291 ms", "22.5 us".
inline std::string duration(double s) {
  const double a = std::fabs(s);
  const auto sig3 = [](double v) { return fixed(v, v >= 100 ? 0 : v >= 10 ? 1 : 2); };
  if (a == 0) return "0 s";
  if (a >= 1) return sig3(s) + " s";
  if (a >= 1e-3) return sig3(s * 1e3) + " ms";
  return sig3(s * 1e6) + " us";
}

/// Decimal units, as network traffic is usually quoted: "1.18 kB", "14.6 MB".
inline std::string byte_size(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (std::fabs(b) >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  if (u == 0) return fixed(b, 0) + " B";
  return fixed(b, std::fabs(b) >= 100 ? 0 : std::fabs(b) >= 10 ? 1 : 2) + " " + units[u];
}

inline std::string percent(int64_t part, int64_t whole) {
  return whole == 0 ? std::string("-") : fixed(100.0 * static_cast<double>(part) / static_cast<double>(whole), 1) + "%";
}

}  // namespace detail

/// A terminal table: one line per slot, then linear layers (when MACs were given) and the total.
/// A column of polynomial positions appears when the network has any.
inline void print(std::ostream& out, const cost_report& r) {
  using namespace detail;
  constexpr size_t columns = 8;  // name, stage, kept, total, kept %, polynomials, latency, bytes
  using line = std::array<std::string, columns>;
  const bool polys = r.polynomials > 0;
  std::vector<line> lines;
  lines.push_back({"slot", "stage", "kept", "ReLUs", "kept %", "polynomials", "latency", "communication"});
  for (const auto& s : r.slots)
    lines.push_back({s.name, s.stage, grouped(s.kept), grouped(s.total), percent(s.kept, s.total),
                     grouped(s.polynomials), duration(s.seconds), byte_size(s.bytes)});
  const size_t body_end = lines.size();
  if (r.macs > 0)
    lines.push_back({"linear layers (" + grouped(r.macs) + " MACs)", "", "", "", "", "",
                     duration(r.linear_seconds), byte_size(r.linear_bytes)});
  if (r.model.seconds_fixed > 0 || r.model.bytes_fixed > 0)
    lines.push_back({"fixed per inference", "", "", "", "", "", duration(r.model.seconds_fixed),
                     byte_size(r.model.bytes_fixed)});
  lines.push_back({"total", "", grouped(r.relus_kept), grouped(r.relus_total),
                   percent(r.relus_kept, r.relus_total), grouped(r.polynomials), duration(r.seconds),
                   byte_size(r.bytes)});

  // Column widths; the summary lines' labels span the name and stage columns.
  std::array<size_t, columns> w{};
  for (size_t i = 0; i < lines.size(); ++i)
    for (size_t c = 0; c < columns; ++c)
      if (c > 1 || i < body_end) w[c] = std::max(w[c], lines[i][c].size());
  if (!polys) w[5] = 0;
  const auto pad = [](const std::string& s, size_t width, bool right) {
    const std::string fill(width > s.size() ? width - s.size() : 0, ' ');
    return right ? fill + s : s + fill;
  };
  size_t label_width = w[0] + 2 + w[1];
  for (size_t i = body_end; i < lines.size(); ++i) label_width = std::max(label_width, lines[i][0].size());
  w[1] = label_width - w[0] - 2;
  const auto rule = std::string(label_width + w[2] + w[3] + w[4] + w[6] + w[7] + 11 + (polys ? w[5] + 2 : 0), '-');

  out << "private-inference cost, model '" << r.model.name << "' (" << duration(r.model.seconds_per_relu)
      << " and " << byte_size(r.model.bytes_per_relu) << " per ReLU";
  if (polys)
    out << "; " << duration(r.model.seconds_per_polynomial) << " and "
        << byte_size(r.model.bytes_per_polynomial) << " per polynomial";
  if (r.model.seconds_per_mac > 0 || r.model.bytes_per_mac > 0)
    out << "; " << r.model.seconds_per_mac << " s and " << r.model.bytes_per_mac << " B per MAC";
  out << ")\n";
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& l = lines[i];
    if (i == 1 || i == body_end) out << rule << '\n';
    const std::string label =
        i < body_end ? pad(l[0], w[0], false) + "  " + pad(l[1], w[1], false) : pad(l[0], label_width, false);
    const char* of = l[2].empty() && l[3].empty() ? "   " : " / ";
    out << label << "  " << pad(l[2], w[2], true) << of << pad(l[3], w[3], true) << "  "
        << pad(l[4], w[4], true) << "  ";
    if (polys) out << pad(l[5], w[5], true) << "  ";
    out << pad(l[6], w[6], true) << "  " << pad(l[7], w[7], true) << '\n';
  }
}

inline std::ostream& operator<<(std::ostream& out, const cost_report& r) {
  print(out, r);
  return out;
}

/// The table of print() as a string.
[[nodiscard]] inline std::string to_string(const cost_report& r) {
  std::ostringstream out;
  print(out, r);
  return out.str();
}

}  // namespace linearize::pi
