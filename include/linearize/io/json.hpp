#pragma once
// The library's JSON files (baseline records, the run state inside checkpoints, result rows)
// through nlohmann-json, with two things added at the boundary:
//   - errors are linearize::error naming the file and what was wrong (nlohmann's exceptions are
//     caught here, never passed on);
//   - members are read by the type they are read into, checked: an integer must be a whole
//     number in the type's range (>= 0 for an unsigned one; uint64 seeds round-trip exactly), a
//     missing measurement (NaN) is null, and a struct is an object of its json_fields.
// A struct takes part by a json_fields(value, f) function beside it (found by ADL) that calls
// f("name", value.member) for each member in file order: one list drives writing and reading,
// so the two cannot drift apart.
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace linearize::io {

/// Members keep the order they were set in, so a file reads in the order it was written.
using json = nlohmann::ordered_json;

/// A member written as given that must read back equal: a format marker, or a setting that is
/// not an option (the recipe's optimizer).
struct fixed_text {
  const char* value;
};

namespace detail {

/// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
inline std::string json_message(const nlohmann::json::exception& e) {
  const std::string what = e.what();
  const auto end = what.find("] ");
  return end == std::string::npos ? what : what.substr(end + 2);
}

/// Where a value sits, for error messages: the file (or other source) and the member path.
struct json_place {
  std::string source;
  std::string path{};  ///< e.g. rows[2].eval.top1; empty: the whole text

  [[nodiscard]] std::string describe() const {
    return path.empty() ? "'" + source + "'" : "'" + source + "': member '" + path + "'";
  }
  [[nodiscard]] json_place member(std::string_view key) const {
    return {source, path.empty() ? std::string(key) : path + "." + std::string(key)};
  }
  [[nodiscard]] json_place element(size_t i) const {
    return {source, path + "[" + std::to_string(i) + "]"};
  }
};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T, class C, class A>
struct is_string_map<std::map<std::string, T, C, A>> : std::true_type {};

/// A value as a message shows it: text in single quotes, anything else as JSON.
inline std::string shown(const nlohmann::ordered_json& j) {
  if (j.is_string()) return "'" + j.get<std::string>() + "'";
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

struct ignore_field {
  template <class T>
  void operator()(const char*, T&&) const {}
};

}  // namespace detail

/// A type with a json_fields(value, f) function found by argument-dependent lookup.
template <class T>
concept json_record = requires(T& value) { json_fields(value, detail::ignore_field{}); };

/// A double as JSON: a finite value as a number (the shortest text that reads back to the same
/// double), NaN (a missing measurement) as null, an infinity as the text "inf" or "-inf"
/// (JSON has no infinity; Python's float() reads both).
[[nodiscard]] inline json real_to_json(double v) {
  if (std::isnan(v)) return nullptr;
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

/// `value` as JSON, by its type: text, true/false, integers exactly (int64 and uint64), reals by
/// real_to_json, std::optional (null when empty), std::vector (array), std::map with text keys
/// (object), a json_record (object of its fields, in order).
template <class T>
[[nodiscard]] json to_json_value(const T& value) {
  if constexpr (std::same_as<T, fixed_text>) {
    return value.value;
  } else if constexpr (std::same_as<T, std::string> || std::same_as<T, bool> || std::integral<T>) {
    return value;
  } else if constexpr (std::floating_point<T>) {
    return real_to_json(static_cast<double>(value));
  } else if constexpr (detail::is_optional<T>::value) {
    return value ? to_json_value(*value) : json(nullptr);
  } else if constexpr (detail::is_vector<T>::value) {
    json out = json::array();
    for (const auto& v : value) out.push_back(to_json_value(v));
    return out;
  } else if constexpr (detail::is_string_map<T>::value) {
    json out = json::object();
    for (const auto& [k, v] : value) out[k] = to_json_value(v);
    return out;
  } else {
    static_assert(json_record<const T>, "to_json_value: give the type a json_fields(value, f)");
    json out = json::object();
    json_fields(value, [&](const char* key, const auto& member) { out[key] = to_json_value(member); });
    return out;
  }
}

/// Reads `j` into `out` by out's type (the reverse of to_json_value). Anything else than what
/// the type needs is a linearize::error naming `place` and what was expected.
template <class T>
void read_json_value(const json& j, const detail::json_place& place, T& out) {
  const auto bad = [&](const char* expected) {
    fail(place.describe(), " = ", detail::shown(j), "; expected ", expected);
  };
  if constexpr (std::same_as<T, fixed_text>) {
    if (!j.is_string() || j.get_ref<const std::string&>() != out.value)
      fail(place.describe(), " = ", detail::shown(j), "; expected '", out.value, "'");
  } else if constexpr (std::same_as<T, std::string>) {
    if (!j.is_string()) bad("text");
    out = j.get<std::string>();
  } else if constexpr (std::same_as<T, bool>) {
    if (!j.is_boolean()) bad("true or false");
    out = j.get<bool>();
  } else if constexpr (std::integral<T>) {
    using limits = std::numeric_limits<T>;
    if (j.is_number_unsigned()) {
      const auto v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(limits::max())) bad("a smaller whole number");
      out = static_cast<T>(v);
    } else if (j.is_number_integer()) {  // negative
      const auto v = j.get<int64_t>();
      if constexpr (std::unsigned_integral<T>) bad("a number >= 0");
      if (v < static_cast<int64_t>(limits::min())) bad("a larger whole number");
      out = static_cast<T>(v);
    } else if (j.is_number_float()) {
      // A whole number written as a real (1e3, 6.0): exact below 2^53.
      const double v = j.get<double>();
      if (v != std::trunc(v) || std::fabs(v) >= 9007199254740992.0) bad("a whole number");
      if (std::unsigned_integral<T> && v < 0) bad("a number >= 0");
      if (v < static_cast<double>(limits::min()) || v > static_cast<double>(limits::max()))
        bad("a whole number in range");
      out = static_cast<T>(v);
    } else {
      bad(std::unsigned_integral<T> ? "a whole number >= 0" : "a whole number");
    }
  } else if constexpr (std::floating_point<T>) {
    if (j.is_null()) out = std::numeric_limits<T>::quiet_NaN();
    else if (j.is_number()) out = j.get<T>();
    else if (j == "inf") out = std::numeric_limits<T>::infinity();
    else if (j == "-inf") out = -std::numeric_limits<T>::infinity();
    else bad("a number (null: missing)");
  } else if constexpr (detail::is_optional<T>::value) {
    if (j.is_null()) {
      out.reset();
    } else {
      typename T::value_type v{};
      read_json_value(j, place, v);
      out = std::move(v);
    }
  } else if constexpr (detail::is_vector<T>::value) {
    if (!j.is_array()) bad("an array");
    out.clear();
    for (size_t i = 0; i < j.size(); ++i) read_json_value(j[i], place.element(i), out.emplace_back());
  } else if constexpr (detail::is_string_map<T>::value) {
    if (!j.is_object()) bad("an object");
    out.clear();
    for (const auto& [k, v] : j.items()) read_json_value(v, place.member(k), out[k]);
  } else {
    static_assert(json_record<T>, "read_json_value: give the type a json_fields(value, f)");
    if (!j.is_object()) bad("an object");
    json_fields(out, [&](const char* key, auto&& member) {
      const auto it = j.find(key);
      if (it == j.end()) fail(place.describe(), " has no member '", key, "'");
      read_json_value(*it, place.member(key), member);
    });
  }
}

/// Reads JSON text (`source` names it in errors) into `out`.
template <class T>
void read_json_value(const json& j, std::string_view source, T& out) {
  read_json_value(j, detail::json_place{std::string(source)}, out);
}

/// "name value, name value" for the members of a flat object: settings in a message.
[[nodiscard]] inline std::string describe_members(const json& object) {
  std::string out;
  for (const auto& [key, value] : object.items())
    out += (out.empty() ? "" : ", ") + key + ' ' +
           (value.is_string() ? value.get<std::string>()
                              : value.dump(-1, ' ', false, json::error_handler_t::replace));
  return out;
}

/// Parses JSON text; malformed text is a linearize::error naming `source` and where it broke.
[[nodiscard]] inline json parse_json(std::string_view text, std::string_view source) {
  try {
    return json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("'", source, "' is not valid JSON: ", detail::json_message(e));
  }
}

/// Indented text, one member per line; bytes that are not UTF-8 become U+FFFD instead of
/// failing the write.
[[nodiscard]] inline std::string json_text(const json& value) {
  return value.dump(2, ' ', false, json::error_handler_t::replace) + '\n';
}

/// Writes atomically: an interrupted write leaves the previous file as it was.
inline void write_json_file(const std::filesystem::path& path, const json& value) {
  const auto text = json_text(value);
  write_atomically(path, [&](std::ostream& out) { out << text; });
}

/// Reads and parses a file; a missing, unreadable or malformed one is an error naming it.
[[nodiscard]] inline json read_json_file(const std::filesystem::path& path) {
  return parse_json(read_file(path), path.string());
}

}  // namespace linearize::io
