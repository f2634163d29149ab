#pragma once
// A small command-line reader shared by the example programs (not part of the library):
// `--name value`, `--name=value` and bare flags; every option a program reads is consumed, and
// anything left over is reported as unknown. Bad input exits with status 2 and the usage text;
// an error during the run (linearize::error or another exception) exits with status 1 and its
// message.
#include <linearize/support/error.hpp>

#include <charconv>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace cli {

struct usage_error {
  std::string message;
};

class arguments {
 public:
  arguments(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0 || arg.size() == 2)
        throw usage_error{"unexpected argument '" + arg + "' (options start with --)"};
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        given_[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
      } else if (i + 1 < argc && std::string_view(argv[i + 1]).rfind("--", 0) != 0) {
        given_[arg.substr(2)] = argv[++i];
      } else {
        given_[arg.substr(2)] = std::nullopt;
      }
    }
  }

  [[nodiscard]] bool flag(const std::string& name) {
    const auto it = given_.find(name);
    if (it == given_.end()) return false;
    if (it->second) throw usage_error{"--" + name + " takes no value, got '" + *it->second + "'"};
    given_.erase(it);
    return true;
  }

  [[nodiscard]] std::string text(const std::string& name, std::string fallback) {
    const auto it = given_.find(name);
    if (it == given_.end()) return fallback;
    if (!it->second) throw usage_error{"--" + name + " expects a value"};
    auto v = *it->second;
    given_.erase(it);
    return v;
  }

  [[nodiscard]] std::optional<std::string> optional_text(const std::string& name) {
    if (!given_.count(name)) return std::nullopt;
    return text(name, "");
  }

  /// A number; `valid` says what is accepted (e.g. "a positive count") when `ok` rejects it.
  template <class T, class Ok>
  [[nodiscard]] T number(const std::string& name, T fallback, Ok ok, const char* valid) {
    const auto raw = optional_text(name);
    if (!raw) return fallback;
    T value{};
    const char* end = raw->data() + raw->size();
    const auto [ptr, ec] = std::from_chars(raw->data(), end, value);
    if (ec != std::errc() || ptr != end || !ok(value))
      throw usage_error{"--" + name + " expects " + valid + ", got '" + *raw + "'"};
    return value;
  }

  /// Call after reading every option: anything not read is unknown.
  void finish() const {
    if (!given_.empty()) throw usage_error{"unknown option --" + given_.begin()->first};
  }

 private:
  std::map<std::string, std::optional<std::string>> given_;
};

/// Runs `body(arguments&)`, turning usage errors into status 2 (with the usage text) and
/// linearize errors into status 1; `--help` prints the usage.
template <class Body>
int main(int argc, char** argv, const char* usage, Body&& body) {
  try {
    arguments args(argc, argv);
    if (args.flag("help")) {
      std::fputs(usage, stdout);
      return 0;
    }
    return body(args);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "error: %s\n\n%s", e.message.c_str(), usage);
    return 2;
  } catch (const std::exception& e) {  // linearize::error, and LibTorch's own
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

inline constexpr auto positive = [](auto v) { return v > 0; };
inline constexpr auto non_negative = [](auto v) { return v >= 0; };

}  // namespace cli
