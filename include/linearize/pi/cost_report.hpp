#pragma once
// The private-inference cost of a (partly linearized) network, layer by layer: which layers the
// latency and communication come from, ReLU, polynomial and linear cost side by side, so that a
// researcher sees where the remaining ReLUs sit, what they cost next to the linear layers, and
// where ReLUs stop dominating. Computed from a MaskSet (or its per_slot() rows), a cost_model and,
// optionally, the linear layers' MACs (mac_count.hpp: per layer and in the order the network runs
// them, or one total) and a network (network.hpp).
#include <linearize/core/mask_set.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/pi/mac_count.hpp>
#include <linearize/pi/network.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/format.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
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
  double relu_seconds = 0;        ///< the ReLUs' part of `seconds`
  double polynomial_seconds = 0;  ///< the polynomials' part
  double rounds = 0;              ///< round trips of the slot (none once nothing is left)
};

/// Cost of one linear layer (or of all of them, when only their MAC total is known).
struct linear_cost {
  std::string name{};  ///< module ("layer1.0.conv1"), operator, or "linear layers (N MACs)"
  int64_t macs = 0;
  int64_t layers = 1;  ///< layers it stands for: 1, or 0 when only a MAC total is known (no rounds)
  double seconds = 0;
  double bytes = 0;
  double rounds = 0;
};

/// A row of the report in the order the network runs: slot or linear layer, and which.
struct layer_row {
  bool slot = true;
  size_t index = 0;
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
  network net{};                    ///< the network the latencies include (none: computation only)
  std::vector<linear_cost> linear{};
  std::vector<layer_row> rows{};    ///< every slot and linear entry, in the order they run
  double relu_seconds = 0;          ///< the ReLUs' part of `seconds`
  double polynomial_seconds = 0;    ///< the polynomials' part
  double fixed_seconds = 0;         ///< the model's per-inference cost
  double rounds = 0;                ///< online round trips in all
  double offline_seconds = 0;       ///< preprocessing (not in `seconds`)
  double offline_bytes = 0;

  /// Kept ReLUs whose computation and traffic cost what everything else (polynomials, linear
  /// layers, fixed cost) costs: above it the ReLUs dominate, below it they stop dominating.
  /// The ReLU layers' rounds are left out (they do not grow with the count). 0: anything else
  /// is free, so any ReLU dominates; +inf: a ReLU costs nothing here, so they never do.
  [[nodiscard]] double relu_dominance_threshold() const {
    const double others = seconds - relu_seconds;
    const double each = model.seconds_per_extra_relu(net);
    if (each <= 0) return std::numeric_limits<double>::infinity();
    return others <= 0 ? 0.0 : others / each;
  }
};

namespace detail {

inline void check_rows(const std::vector<relu_tally>& rows) {
  require(!rows.empty(), "pi::estimate: no slots; expected MaskSet::per_slot() rows");
  for (const auto& row : rows) {
    require(row.total >= 0 && row.active >= 0 && row.active <= row.total, "pi::estimate: slot '",
            row.name, "' keeps ", row.active, " of ", row.total,
            " ReLUs; expected 0 <= kept <= total");
    require(row.polynomial >= 0 && row.polynomial <= row.total, "pi::estimate: slot '", row.name,
            "' has ", row.polynomial, " polynomial positions of ", row.total,
            "; expected 0 <= polynomials <= total");
  }
}

/// The report for `rows` and the linear entries `linear` (macs and layer counts filled in).
inline cost_report assemble(const std::vector<relu_tally>& rows, std::vector<linear_cost> linear,
                            const cost_model& model, const network& net) {
  model.validate();
  net.validate();
  check_rows(rows);
  cost_report r{.model = model, .net = net};
  workload all;
  for (const auto& row : rows) {
    // Per slot only the ReLU and polynomial terms: the fixed cost belongs to the inference.
    const auto c = model.cost({.relus = row.active,
                               .polynomials = row.polynomial,
                               .relu_layers = row.active > 0,
                               .polynomial_layers = row.polynomial > 0},
                              net);
    r.slots.push_back({.name = row.name,
                       .stage = row.stage,
                       .layer = row.layer,
                       .total = row.total,
                       .kept = row.active,
                       .seconds = c.relu_seconds + c.polynomial_seconds,
                       .bytes = c.bytes - model.bytes_fixed,
                       .polynomials = row.polynomial,
                       .relu_seconds = c.relu_seconds,
                       .polynomial_seconds = c.polynomial_seconds,
                       .rounds = c.rounds});
    r.relus_total += row.total;
    r.relus_kept += row.active;
    r.polynomials += row.polynomial;
    all.relu_layers += row.active > 0;
    all.polynomial_layers += row.polynomial > 0;
  }
  for (auto& l : linear) {
    const auto c = model.cost({.macs = l.macs, .linear_layers = l.layers}, net);
    l.seconds = c.linear_seconds;
    l.bytes = c.bytes - model.bytes_fixed;
    l.rounds = c.rounds;
    r.macs += l.macs;
    all.linear_layers += l.layers;
    r.linear_seconds += l.seconds;
    r.linear_bytes += l.bytes;
  }
  r.linear = std::move(linear);
  all.relus = r.relus_kept;
  all.polynomials = r.polynomials;
  all.macs = r.macs;
  // Totals from the model itself, so that they equal model.cost(...) exactly.
  const auto total = model.cost(all, net);
  r.seconds = total.seconds;
  r.bytes = total.bytes;
  r.relu_seconds = total.relu_seconds;
  r.polynomial_seconds = total.polynomial_seconds;
  r.linear_seconds = total.linear_seconds;
  r.fixed_seconds = total.fixed_seconds;
  r.rounds = total.rounds;
  r.offline_seconds = total.offline_seconds;
  r.offline_bytes = total.offline_bytes;
  return r;
}

}  // namespace detail

/// The cost of the ReLUs in `rows` (MaskSet::per_slot()) and of `macs` linear-layer MACs (one
/// entry; its rounds need the layers: see the mac_count overload), on `net`.
[[nodiscard]] inline cost_report estimate(const std::vector<relu_tally>& rows, const cost_model& model,
                                          int64_t macs = 0, const network& net = no_network()) {
  require(macs >= 0, "pi::estimate: MAC count ", macs, "; expected >= 0");
  std::vector<linear_cost> linear;
  if (macs > 0) {
    std::string label = "linear layers (";
    const auto digits = std::to_string(macs);
    for (size_t i = 0; i < digits.size(); ++i) label += (i > 0 && (digits.size() - i) % 3 == 0 ? "," : "") + digits.substr(i, 1);
    linear.push_back({.name = label + " MACs)", .macs = macs, .layers = 0});
  }
  auto r = detail::assemble(rows, std::move(linear), model, net);
  for (size_t i = 0; i < r.slots.size(); ++i) r.rows.push_back({true, i});
  for (size_t i = 0; i < r.linear.size(); ++i) r.rows.push_back({false, i});
  return r;
}

/// The cost of the network whose slots `masks` holds, in their current state.
[[nodiscard]] inline cost_report estimate(const MaskSet& masks, const cost_model& model,
                                          int64_t macs = 0, const network& net = no_network()) {
  return estimate(masks.per_slot(), model, macs, net);
}

/// The cost layer by layer: every linear layer of `macs` (count_macs of the same network) with
/// its own cost and rounds, in the order the network runs them between its slots.
[[nodiscard]] inline cost_report estimate(const MaskSet& masks, const cost_model& model,
                                          const mac_count& macs, const network& net = no_network()) {
  std::vector<linear_cost> linear;
  for (const auto& op : macs.ops)
    linear.push_back({.name = op.module.empty() ? op.op : op.module, .macs = op.macs});
  auto r = detail::assemble(masks.per_slot(), std::move(linear), model, net);
  // Slots in the order they ran (by name), linear layers between them; slots that did not run
  // (or ran unnamed) at the end.
  std::map<std::string, size_t> slot_index;
  for (size_t i = 0; i < masks.size(); ++i) slot_index[masks.name(i)] = i;
  std::vector<bool> placed(masks.size(), false);
  size_t ran = 0;
  const auto place_slots_until = [&](size_t end) {
    for (; ran < end && ran < macs.slots.size(); ++ran)
      if (const auto it = slot_index.find(macs.slots[ran]); it != slot_index.end() && !placed[it->second]) {
        r.rows.push_back({true, it->second});
        placed[it->second] = true;
      }
  };
  for (size_t i = 0; i < macs.ops.size(); ++i) {
    place_slots_until(static_cast<size_t>(macs.ops[i].slots_before));
    r.rows.push_back({false, i});
  }
  place_slots_until(macs.slots.size());
  for (size_t i = 0; i < masks.size(); ++i)
    if (!placed[i]) r.rows.push_back({true, i});
  return r;
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
  if (a >= 1e-7) return sig3(s * 1e6) + " us";  // "0.61 us" rather than "608 ns"
  return sig3(s * 1e9) + " ns";
}

/// Decimal units, as network traffic is usually quoted: "1.18 kB", "14.6 MB".
inline std::string byte_size(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (std::fabs(b) >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  if (u == 0) return fixed(b, std::fabs(b) < 10 && b != std::floor(b) ? 3 : 0) + " B";
  return fixed(b, std::fabs(b) >= 100 ? 0 : std::fabs(b) >= 10 ? 1 : 2) + " " + units[u];
}

inline std::string percent(int64_t part, int64_t whole) {
  return whole == 0 ? std::string("-") : fixed(100.0 * static_cast<double>(part) / static_cast<double>(whole), 1) + "%";
}

inline std::string rounds_text(double r) {
  return r == std::floor(r) ? grouped(static_cast<int64_t>(r)) : fixed(r, 1);
}

/// "3 Gbit/s, 0.3 ms round trip"
inline std::string network_text(const network& n) {
  std::string bw = "unlimited";
  if (std::isfinite(n.bytes_per_second)) {
    const double bits = n.bytes_per_second * 8;
    bw = bits >= 1e9 ? fixed(bits / 1e9, bits >= 1e10 ? 0 : 1) + " Gbit/s" : fixed(bits / 1e6, 0) + " Mbit/s";
  }
  return bw + ", " + duration(n.round_trip_seconds) + " round trip";
}

}  // namespace detail

/// A terminal table: one line per slot and per linear layer in the order the network runs them,
/// ReLU, polynomial and linear latency side by side, then the fixed cost, the total and the
/// offline cost. Columns for polynomials, MACs and rounds appear when there are any.
inline void print(std::ostream& out, const cost_report& r) {
  using namespace detail;
  enum column { name, stage, kept, total, kept_pct, polys, macs, relu_t, poly_t, lin_t, latency, comm, rounds, count };
  using line = std::vector<std::string>;
  const bool show_polys = r.polynomials > 0, show_macs = r.macs > 0, show_rounds = r.rounds > 0;
  std::vector<bool> shown(count, true);
  shown[polys] = shown[poly_t] = show_polys;
  shown[macs] = shown[lin_t] = show_macs;
  shown[rounds] = show_rounds;

  std::vector<line> lines;
  lines.push_back({"layer", "stage", "kept", "ReLUs", "kept %", "polynomials", "MACs", "ReLU",
                   "polynomial", "linear", "latency", "communication", "rounds"});
  for (const auto& row : r.rows) {
    if (row.slot) {
      const auto& s = r.slots[row.index];
      lines.push_back({s.name, s.stage, grouped(s.kept), grouped(s.total), percent(s.kept, s.total),
                       grouped(s.polynomials), "", duration(s.relu_seconds),
                       duration(s.polynomial_seconds), "", duration(s.seconds), byte_size(s.bytes),
                       rounds_text(s.rounds)});
    } else {
      const auto& l = r.linear[row.index];
      lines.push_back({l.name, "", "", "", "", "", grouped(l.macs), "", "", duration(l.seconds),
                       duration(l.seconds), byte_size(l.bytes), rounds_text(l.rounds)});
    }
  }
  const size_t body_end = lines.size();
  if (r.fixed_seconds > 0 || r.model.bytes_fixed > 0)
    lines.push_back({"fixed per inference", "", "", "", "", "", "", "", "", "",
                     duration(r.fixed_seconds), byte_size(r.model.bytes_fixed), ""});
  lines.push_back({"total", "", grouped(r.relus_kept), grouped(r.relus_total),
                   percent(r.relus_kept, r.relus_total), grouped(r.polynomials), grouped(r.macs),
                   duration(r.relu_seconds), duration(r.polynomial_seconds),
                   duration(r.linear_seconds), duration(r.seconds), byte_size(r.bytes),
                   rounds_text(r.rounds)});
  // Offline time the model does not state shows as "-", not as 0 s.
  if (r.offline_seconds > 0 || r.offline_bytes > 0)
    lines.push_back({"offline, before the input (not in total)", "", "", "", "", "", "", "", "", "",
                     r.model.offline_seconds_per_relu > 0 ? duration(r.offline_seconds) : "-",
                     byte_size(r.offline_bytes), ""});

  // Column widths; the lines after the body span the name and stage columns with their label.
  std::vector<size_t> w(count, 0);
  for (size_t i = 0; i < lines.size(); ++i)
    for (size_t c = 0; c < count; ++c)
      if (c > stage || i < body_end) w[c] = std::max(w[c], lines[i][c].size());
  size_t label_width = w[name] + 2 + w[stage];
  for (size_t i = body_end; i < lines.size(); ++i) label_width = std::max(label_width, lines[i][name].size());
  w[stage] = label_width - w[name] - 2;
  const auto pad = [](const std::string& s, size_t width, bool right) {
    const std::string fill(width > s.size() ? width - s.size() : 0, ' ');
    return right ? fill + s : s + fill;
  };
  const auto render = [&](size_t i) {
    const auto& l = lines[i];
    std::string text = i < body_end ? pad(l[name], w[name], false) + "  " + pad(l[stage], w[stage], false)
                                    : pad(l[name], label_width, false);
    const char* of = l[kept].empty() && l[total].empty() ? "   " : " / ";
    text += "  " + pad(l[kept], w[kept], true) + of + pad(l[total], w[total], true);
    for (size_t c = kept_pct; c < count; ++c)
      if (shown[c]) text += "  " + pad(l[c], w[c], true);
    return text;
  };

  out << "private-inference cost, model '" << r.model.name << "' (" << duration(r.model.seconds_per_relu)
      << " and " << byte_size(r.model.bytes_per_relu) << " per ReLU";
  if (show_polys)
    out << "; " << duration(r.model.seconds_per_polynomial) << " and "
        << byte_size(r.model.bytes_per_polynomial) << " per polynomial";
  if (r.model.seconds_per_mac > 0 || r.model.bytes_per_mac > 0)
    out << "; " << duration(r.model.seconds_per_mac) << " and " << byte_size(r.model.bytes_per_mac)
        << " per MAC";
  out << ")";
  if (r.net.modelled()) out << ", network '" << r.net.name << "' (" << network_text(r.net) << ")";
  if (r.model.network_included) out << ", network included in the fit";
  out << '\n';
  const auto rule = std::string(render(0).size(), '-');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 1 || i == body_end) out << rule << '\n';
    out << render(i) << '\n';
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
