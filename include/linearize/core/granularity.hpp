#pragma once
// How finely a slot's mask addresses its activation map: one gate per element (C x H x W,
// SNL and coordinate descent), per channel (C), or per layer (1, DeepReDuce's unit).
#include <linearize/support/error.hpp>

#include <string>
#include <string_view>

namespace linearize {

enum class granularity { element, channel, layer };

[[nodiscard]] constexpr std::string_view to_string(granularity g) {
  switch (g) {
    case granularity::element: return "element";
    case granularity::channel: return "channel";
    case granularity::layer: return "layer";
  }
  return "?";
}

[[nodiscard]] inline granularity parse_granularity(std::string_view text) {
  for (auto g : {granularity::element, granularity::channel, granularity::layer})
    if (text == to_string(g)) return g;
  fail("unknown mask granularity '", text, "'; expected element, channel or layer");
}

}  // namespace linearize
