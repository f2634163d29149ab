#pragma once
// Results of accuracy-versus-ReLU-budget studies: one row per trained network (method, budget,
// ReLUs kept, top-1 accuracy, private-inference latency, the run's cost), plus free-form extra
// columns (seed, dataset, lambda, ...). Written as CSV (spreadsheets, pandas) and JSON
// (nlohmann-json), both atomically, and read back from CSV so that a long benchmark can resume
// and append.
//
// Missing measurements are NaN: an empty CSV cell, `null` in JSON. Numbers are written in the
// shortest form that reads back to the same double, so a CSV round trip is exact.
#include <linearize/io/json.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace linearize::io {

inline constexpr double missing = std::numeric_limits<double>::quiet_NaN();

struct result_row {
  std::string method{};              ///< e.g. "snl", "snl+bcd", "deepreduce"
  double budget = missing;           ///< the ReLU budget asked for (count)
  int64_t relu_count = 0;            ///< ReLUs the result keeps
  double accuracy = missing;         ///< top-1, percent
  double pi_latency_s = missing;     ///< estimated private-inference latency (pi::cost_model)
  double wall_time_s = missing;      ///< time the method took
  int64_t images_forwarded = 0;      ///< images through the network, the method's compute cost
  std::vector<std::pair<std::string, std::string>> extra{};  ///< free-form columns, in order

  /// Sets an extra column (replacing an earlier value of the same key).
  result_row& set(std::string key, std::string value) {
    for (auto& [k, v] : extra)
      if (k == key) {
        v = std::move(value);
        return *this;
      }
    extra.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  result_row& set(std::string key, const char* value) { return set(std::move(key), std::string(value)); }
  template <class Number>
    requires std::is_arithmetic_v<Number>
  result_row& set(std::string key, Number value);
  /// The extra column `key`, or nullptr.
  [[nodiscard]] const std::string* get(std::string_view key) const {
    for (const auto& [k, v] : extra)
      if (k == key) return &v;
    return nullptr;
  }
};

/// The fixed columns, in file order; extra columns follow.
inline constexpr std::array<std::string_view, 7> result_columns = {
    "method", "budget", "relu_count", "accuracy", "pi_latency_s", "wall_time_s", "images_forwarded"};

namespace detail {

/// Shortest text that reads back to the same double; integral values without exponent.
inline std::string number_text(double v) {
  if (std::isnan(v)) return "";
  if (v == std::trunc(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

inline bool parse_number(std::string_view text, double& out) {
  if (text.empty()) {
    out = missing;
    return true;
  }
  if (text.front() == '+') text.remove_prefix(1);  // from_chars refuses a leading '+'
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

inline bool parse_integer(std::string_view text, int64_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

inline bool is_fixed_column(std::string_view name) {
  for (auto c : result_columns)
    if (c == name) return true;
  return false;
}

/// Refuses rows that would write a file that misleads or does not read back.
inline void validate(const result_row& r, size_t index) {
  const auto where = [&] { return "result row " + std::to_string(index) + " ('" + r.method + "')"; };
  require(!r.method.empty(), "result row ", index, ": empty method; expected a method name");
  const auto measured = [&](const char* what, double v, double hi) {
    require(std::isnan(v) || (std::isfinite(v) && v >= 0 && v <= hi), where(), ": ", what, " = ", v,
            "; expected a finite value in [0, ", hi, "] or missing (NaN)");
  };
  const double any = std::numeric_limits<double>::max();
  measured("budget", r.budget, any);
  measured("accuracy (top-1 %)", r.accuracy, 100);
  measured("pi_latency_s", r.pi_latency_s, any);
  measured("wall_time_s", r.wall_time_s, any);
  require(r.relu_count >= 0, where(), ": relu_count = ", r.relu_count, "; expected >= 0");
  require(r.images_forwarded >= 0, where(), ": images_forwarded = ", r.images_forwarded, "; expected >= 0");
  std::vector<std::string_view> keys;
  for (size_t i = 0; i < r.extra.size(); ++i) {
    const auto& key = r.extra[i].first;
    require(!key.empty(), where(), ": extra column ", i, " has an empty name");
    require(!is_fixed_column(key), where(), ": extra column '", key,
            "' has the name of a fixed column; choose another name");
    keys.push_back(key);
  }
  // Sorted, not pairwise: a file read back may hold thousands of columns.
  std::sort(keys.begin(), keys.end());
  const auto dup = std::adjacent_find(keys.begin(), keys.end());
  require(dup == keys.end(), where(), ": extra column '", dup == keys.end() ? "" : *dup,
          "' appears twice");
}

/// Extra column names of all rows, in order of first appearance.
inline std::vector<std::string> extra_columns(const std::vector<result_row>& rows) {
  std::vector<std::string> names;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.extra)
      if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
  return names;
}

// RFC 4180: quote a field holding a separator, a quote or a line break (and one with outer
// spaces, which some readers trim); double the quotes inside.
inline std::string csv_field(std::string_view s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

/// One CSV record: its fields and the line it starts on.
struct csv_record {
  std::vector<std::string> fields;
  size_t line = 0;
};

inline std::vector<csv_record> split_csv(std::string_view text, const std::string& source) {
  std::vector<csv_record> records;
  csv_record rec{{}, 1};
  std::string field;
  size_t line = 1;
  bool quoted = false, was_quoted = false, any = false;
  const auto end_field = [&] {
    rec.fields.push_back(std::move(field));
    field.clear();
    was_quoted = false;
  };
  const auto end_record = [&] {
    end_field();
    if (!(rec.fields.size() == 1 && rec.fields[0].empty() && !any)) records.push_back(std::move(rec));
    rec = csv_record{{}, line};
    any = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    switch (c) {
      case '"':
        require(field.empty() && !was_quoted, "results file '", source, "', line ", line,
                ": a quote inside an unquoted field; expected the field quoted with inner quotes doubled");
        quoted = was_quoted = any = true;
        break;
      case ',':
        end_field();
        any = true;
        break;
      case '\r':
        if (i + 1 < text.size() && text[i + 1] == '\n') break;  // CRLF: the \n ends the record
        [[fallthrough]];
      case '\n':
        ++line;
        end_record();
        break;
      default:
        require(!was_quoted, "results file '", source, "', line ", line,
                ": text after a closing quote; expected a separator");
        field += c;
        any = true;
    }
  }
  require(!quoted, "results file '", source, "': a quoted field opened on or before line ", line,
          " is never closed (file truncated?)");
  if (any || !field.empty()) end_record();
  return records;
}

}  // namespace detail

template <class Number>
  requires std::is_arithmetic_v<Number>
result_row& result_row::set(std::string key, Number value) {
  if constexpr (std::is_same_v<Number, bool>)
    return set(std::move(key), std::string(value ? "true" : "false"));
  else if constexpr (std::is_integral_v<Number>)
    return set(std::move(key), std::to_string(value));
  else
    return set(std::move(key), detail::number_text(static_cast<double>(value)));
}

/// CSV text: a header line, then one line per row (extra columns: the union over all rows).
[[nodiscard]] inline std::string to_csv(const std::vector<result_row>& rows) {
  for (size_t i = 0; i < rows.size(); ++i) detail::validate(rows[i], i);
  const auto extras = detail::extra_columns(rows);
  std::string out;
  for (size_t c = 0; c < result_columns.size(); ++c) out += (c ? "," : "") + std::string(result_columns[c]);
  for (const auto& e : extras) out += "," + detail::csv_field(e);
  out += '\n';
  for (const auto& r : rows) {
    using detail::number_text;
    out += detail::csv_field(r.method) + ',' + number_text(r.budget) + ',' + std::to_string(r.relu_count) +
           ',' + number_text(r.accuracy) + ',' + number_text(r.pi_latency_s) + ',' +
           number_text(r.wall_time_s) + ',' + std::to_string(r.images_forwarded);
    for (const auto& e : extras) {
      const auto* v = r.get(e);
      out += ',' + (v ? detail::csv_field(*v) : std::string());
    }
    out += '\n';
  }
  return out;
}

/// A row as a JSON object: the fixed columns (missing measurements null), then the extra
/// columns as text members.
[[nodiscard]] inline json to_json_value(const result_row& r) {
  json j = {{"method", r.method},
            {"budget", real_to_json(r.budget)},
            {"relu_count", r.relu_count},
            {"accuracy", real_to_json(r.accuracy)},
            {"pi_latency_s", real_to_json(r.pi_latency_s)},
            {"wall_time_s", real_to_json(r.wall_time_s)},
            {"images_forwarded", r.images_forwarded}};
  for (const auto& [k, v] : r.extra) j[k] = v;
  return j;
}

/// JSON text: an array with one object per row.
[[nodiscard]] inline std::string to_json(const std::vector<result_row>& rows) {
  json out = json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    detail::validate(rows[i], i);
    out.push_back(to_json_value(rows[i]));
  }
  return json_text(out);
}

/// Rows from CSV text written by to_csv() (or by a spreadsheet keeping its columns). `source`
/// names the text in error messages. An empty extra cell reads as an absent column.
[[nodiscard]] inline std::vector<result_row> parse_csv(std::string_view text,
                                                       const std::string& source = "<text>") {
  const auto records = detail::split_csv(text, source);
  require(!records.empty(), "results file '", source, "' is empty; expected a header line starting '",
          result_columns[0], ",", result_columns[1], ",...'");
  const auto& header = records[0].fields;
  for (size_t c = 0; c < result_columns.size(); ++c) {
    require(c < header.size(), "results file '", source, "': header has ", header.size(),
            " columns; expected at least the ", result_columns.size(), " fixed ones (", result_columns[0],
            ", ..., ", result_columns.back(), ")");
    require(header[c] == result_columns[c], "results file '", source, "': header column ", c + 1, " is '",
            header[c], "'; expected '", result_columns[c], "'");
  }
  // A repeated name would merge two columns into one value silently. (Unnamed columns, e.g.
  // from a trailing separator, may repeat: a row may only leave them empty.)
  {
    std::vector<std::pair<std::string_view, size_t>> names;
    for (size_t c = 0; c < header.size(); ++c)
      if (!header[c].empty()) names.emplace_back(header[c], c);
    std::sort(names.begin(), names.end());
    for (size_t i = 1; i < names.size(); ++i)
      require(names[i].first != names[i - 1].first, "results file '", source, "': header column ",
              names[i].second + 1, " '", names[i].first, "' repeats column ", names[i - 1].second + 1,
              "; expected each column once");
  }
  std::vector<result_row> rows;
  for (size_t i = 1; i < records.size(); ++i) {
    const auto& f = records[i].fields;
    const auto line = records[i].line;
    require(f.size() == header.size(), "results file '", source, "', line ", line, ": ", f.size(),
            " fields; expected ", header.size(), " as in the header");
    const auto number = [&](size_t c) {
      double v = 0;
      require(detail::parse_number(f[c], v), "results file '", source, "', line ", line, ", column '",
              header[c], "': '", f[c], "' is not a number");
      return v;
    };
    const auto integer = [&](size_t c) {
      int64_t v = 0;
      require(detail::parse_integer(f[c], v), "results file '", source, "', line ", line, ", column '",
              header[c], "': '", f[c], "' is not an integer");
      return v;
    };
    result_row r;
    r.method = f[0];
    r.budget = number(1);
    r.relu_count = integer(2);
    r.accuracy = number(3);
    r.pi_latency_s = number(4);
    r.wall_time_s = number(5);
    r.images_forwarded = integer(6);
    for (size_t c = result_columns.size(); c < f.size(); ++c)  // names are unique: no set()
      if (!f[c].empty()) r.extra.emplace_back(header[c], f[c]);
    detail::validate(r, rows.size());
    rows.push_back(std::move(r));
  }
  return rows;
}

inline void write_csv(const std::filesystem::path& path, const std::vector<result_row>& rows) {
  const auto text = to_csv(rows);
  write_atomically(path, [&](std::ostream& out) { out << text; });
}

inline void write_json(const std::filesystem::path& path, const std::vector<result_row>& rows) {
  const auto text = to_json(rows);
  write_atomically(path, [&](std::ostream& out) { out << text; });
}

[[nodiscard]] inline std::vector<result_row> read_csv(const std::filesystem::path& path) {
  return parse_csv(read_file(path), path.string());
}

/// Adds one row to a CSV results file (creating it), rewriting the file atomically: an
/// interrupted benchmark leaves either the old or the new file, never a torn line.
inline void append_csv(const std::filesystem::path& path, const result_row& row) {
  auto rows = std::filesystem::exists(path) ? read_csv(path) : std::vector<result_row>{};
  rows.push_back(row);
  write_csv(path, rows);
}

}  // namespace linearize::io
