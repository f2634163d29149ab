#pragma once
// Where two JSON records differ, named by path: what a refused resume tells the user (a
// checkpoint's identity, a work directory's settings), so that they see which setting changed
// and both its values, not just that something did.
#include <linearize/io/json.hpp>

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace linearize::io {

/// How the two sides are called in the messages: "seed: 0 there, 5 here".
struct difference_sides {
  std::string there = "there";
  std::string here = "here";
};

/// Each difference as "path: A <there>, B <here>" ("absent" for a member on one side only), in
/// `here`'s member order, then the members only `there` has; at most `limit` of them. Objects
/// are compared member by member unless their "kind" members differ (another kind of thing is
/// named whole), arrays of one length element by element.
[[nodiscard]] inline std::vector<std::string> json_differences(
    const json& there, const json& here, const difference_sides& sides = {},
    size_t limit = std::numeric_limits<size_t>::max()) {
  std::vector<std::string> out;
  const auto note = [&](const std::string& path, const std::string& a, const std::string& b) {
    out.push_back((path.empty() ? std::string("the record") : path) + ": " + a + " " + sides.there + ", " + b +
                  " " + sides.here);
  };
  const auto walk = [&](const auto& self, const json& a, const json& b, const std::string& path) -> void {
    if (out.size() >= limit || a == b) return;
    const auto member = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
    if (a.is_object() && b.is_object() && a.value("kind", json()) == b.value("kind", json())) {
      for (const auto& [key, value] : b.items()) {
        if (a.contains(key))
          self(self, a.at(key), value, member(key));
        else if (out.size() < limit)
          note(member(key), "absent", value.dump());
      }
      for (const auto& [key, value] : a.items())
        if (!b.contains(key) && out.size() < limit) note(member(key), value.dump(), "absent");
      return;
    }
    if (a.is_array() && b.is_array() && a.size() == b.size()) {
      for (size_t i = 0; i < a.size(); ++i) self(self, a[i], b[i], path + "[" + std::to_string(i) + "]");
      return;
    }
    note(path, a.dump(), b.dump());
  };
  walk(walk, there, here, "");
  return out;
}

}  // namespace linearize::io
