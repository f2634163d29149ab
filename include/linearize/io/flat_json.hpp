#pragma once
// A flat JSON object (string keys; string, number, boolean or null values; no nesting) written
// and read back exactly: the small record files that sit beside a weights file and say what it
// is, readable by Python's json.load and by a person. Numbers are written in the shortest form
// that reads back to the same double; NaN is written as null and null reads as NaN.
#include <linearize/io/results.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace linearize::io {

using json_value = std::variant<std::string, double, bool>;

/// Members in insertion order (the file's order).
class flat_json {
 public:
  /// Sets `key` (replacing an earlier value of the same key).
  flat_json& set(const std::string& key, json_value value) {
    for (auto& [k, v] : members_)
      if (k == key) {
        v = std::move(value);
        return *this;
      }
    members_.emplace_back(key, std::move(value));
    return *this;
  }
  flat_json& set(const std::string& key, const char* value) {
    return set(key, json_value(std::string(value)));
  }
  /// Integers are JSON numbers (exact up to 2^53); bool stays bool.
  template <std::integral Integer>
    requires(!std::same_as<Integer, bool>)
  flat_json& set(const std::string& key, Integer value) {
    return set(key, json_value(static_cast<double>(value)));
  }

  [[nodiscard]] bool contains(std::string_view key) const { return find(key) != nullptr; }
  [[nodiscard]] const std::vector<std::pair<std::string, json_value>>& members() const {
    return members_;
  }

  /// The string member `key`; a missing member or one of another type names `source`.
  [[nodiscard]] const std::string& text(std::string_view key, std::string_view source) const {
    const auto* v = std::get_if<std::string>(&at(key, source));
    require(v != nullptr, "'", source, "': member '", key, "' is not a string");
    return *v;
  }
  [[nodiscard]] double number(std::string_view key, std::string_view source) const {
    const auto* v = std::get_if<double>(&at(key, source));
    require(v != nullptr, "'", source, "': member '", key, "' is not a number");
    return *v;
  }
  /// A number that must be a whole number (counts, epochs, seeds up to 2^53).
  [[nodiscard]] int64_t integer(std::string_view key, std::string_view source) const {
    const double v = number(key, source);
    require(std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 9.007199254740992e15, "'",
            source, "': member '", key, "' = ", v, "; expected a whole number");
    return static_cast<int64_t>(v);
  }
  [[nodiscard]] bool boolean(std::string_view key, std::string_view source) const {
    const auto* v = std::get_if<bool>(&at(key, source));
    require(v != nullptr, "'", source, "': member '", key, "' is not true or false");
    return *v;
  }
  /// Reads member `key` into `out` by out's type (text, true/false, whole or real number), so
  /// a field table can drive both writing (set) and reading.
  template <class T>
  void get(std::string_view key, std::string_view source, T& out) const {
    if constexpr (std::same_as<T, std::string>) out = text(key, source);
    else if constexpr (std::same_as<T, bool>) out = boolean(key, source);
    else if constexpr (std::integral<T>) {
      const int64_t v = integer(key, source);
      require(!std::unsigned_integral<T> || v >= 0, "'", source, "': member '", key, "' = ", v,
              "; expected a number >= 0");
      out = static_cast<T>(v);
    } else {
      static_assert(std::floating_point<T>, "flat_json::get: text, bool, integer or floating point");
      out = static_cast<T>(number(key, source));
    }
  }

 private:
  [[nodiscard]] const json_value* find(std::string_view key) const {
    for (const auto& [k, v] : members_)
      if (k == key) return &v;
    return nullptr;
  }
  [[nodiscard]] const json_value& at(std::string_view key, std::string_view source) const {
    const auto* v = find(key);
    require(v != nullptr, "'", source, "' has no member '", key, "'");
    return *v;
  }

  std::vector<std::pair<std::string, json_value>> members_;
};

/// One member per line, in order.
[[nodiscard]] inline std::string to_json(const flat_json& object) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : object.members()) {
    out += first ? "\n  " : ",\n  ";
    first = false;
    out += detail::json_string(key) + ": ";
    if (const auto* s = std::get_if<std::string>(&value))
      out += detail::json_string(*s);
    else if (const auto* b = std::get_if<bool>(&value))
      out += *b ? "true" : "false";
    else {
      const double d = std::get<double>(value);
      require(!std::isinf(d), "flat_json: member '", key, "' is ", d,
              "; JSON has no infinity (NaN is written as null)");
      out += detail::json_number(d);
    }
  }
  out += first ? "}\n" : "\n}\n";
  return out;
}

namespace detail {

/// A recursive-descent reader for exactly the subset to_json writes (and any flat object).
class flat_json_reader {
 public:
  flat_json_reader(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  flat_json object() {
    flat_json out;
    expect('{');
    if (peek() == '}') {
      ++i_;
    } else {
      for (;;) {
        std::string key = string();
        expect(':');
        if (out.contains(key)) bad("member '", key, "' appears twice");
        out.set(key, value());
        const char c = peek();
        ++i_;
        if (c == '}') break;
        if (c != ',') bad("expected ',' or '}' after member '", key, "'");
      }
    }
    if (peek() != '\0') bad("text after the closing '}'");
    return out;
  }

 private:
  char peek() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  void expect(char c) {
    if (peek() != c) bad("expected '", c, "' at offset ", i_);
    ++i_;
  }
  json_value value() {
    const char c = peek();
    if (c == '"') return string();
    if (c == '[' || c == '{') bad("nested arrays and objects are not supported (offset ", i_, ")");
    for (const auto& [word, v] : {std::pair<std::string_view, json_value>{"true", true},
                                  {"false", false}, {"null", missing}})
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return v;
      }
    const size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-.0123456789eE").find(s_[i_]) != std::string_view::npos)
      ++i_;
    double d = 0;
    if (start == i_ || !parse_number(s_.substr(start, i_ - start), d))
      bad("expected a value at offset ", start);
    return d;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      switch (c = s_[i_++]) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned code = 0;
          if (i_ + 4 > s_.size() || std::sscanf(std::string(s_.substr(i_, 4)).c_str(), "%4x", &code) != 1)
            bad("bad \\u escape at offset ", i_);
          i_ += 4;
          // UTF-8 of a code point below U+10000 (what a flat record needs; no surrogate pairs).
          if (code < 0x80) {
            out += static_cast<char>(code);
          } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
          }
          break;
        }
        default: out += c;  // \" \\ \/
      }
    }
    if (i_ >= s_.size()) bad("a string is not closed");
    ++i_;
    return out;
  }
  template <class... Why>
  [[noreturn]] void bad(Why&&... why) {
    fail("'", source_, "' is not a flat JSON object: ", std::forward<Why>(why)...);
  }

  std::string_view s_;
  std::string source_;
  size_t i_ = 0;
};

}  // namespace detail

/// Parses a flat JSON object; `source` names the text in error messages.
[[nodiscard]] inline flat_json parse_flat_json(std::string_view text, std::string_view source) {
  return detail::flat_json_reader(text, source).object();
}

/// Writes atomically: an interrupted write leaves the previous file as it was.
inline void write_flat_json(const std::filesystem::path& path, const flat_json& object) {
  const std::string text = to_json(object);
  write_atomically(path, [&](std::ostream& out) { out << text; });
}

[[nodiscard]] inline flat_json read_flat_json(const std::filesystem::path& path) {
  return parse_flat_json(read_file(path), path.string());
}

}  // namespace linearize::io
