#pragma once
// Models by name, for programs that pick one from the command line:
//   auto net = linearize::models::make_model(argv[1], {.classes = 100});
// Names: resnet18_in, wide_resnet_22_8, mobilenet_v1. Only the options every model shares are
// here; build a model from its own header for the rest.
#include <linearize/core/granularity.hpp>
#include <linearize/core/network.hpp>
#include <linearize/models/mobilenet_v1.hpp>
#include <linearize/models/resnet18_in.hpp>
#include <linearize/models/wide_resnet.hpp>
#include <linearize/support/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linearize::models {

struct model_spec {
  int64_t classes = 10;
  int64_t channels = 3;
  int64_t size = 32;
  /// The model's width knob; empty = its default. resnet18_in: channels of layer1 (64);
  /// wide_resnet_22_8: widen factor (8); mobilenet_v1: width multiplier (1.0).
  std::optional<double> width{};
  bool stem_relu = false;  ///< resnet18_in only
  granularity grain = granularity::element;
};

[[nodiscard]] inline std::vector<std::string> model_names() {
  return {"resnet18_in", "wide_resnet_22_8", "mobilenet_v1"};
}

namespace detail {
inline int64_t whole_width(std::string_view model, double width) {
  require(std::floor(width) == width, model, ": width = ", width, "; expected a whole number");
  return static_cast<int64_t>(width);
}
}  // namespace detail

/// The model called `name`; an unknown name is an error that lists the known ones.
[[nodiscard]] inline Network make_model(std::string_view name, const model_spec& spec = {}) {
  const auto names = model_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    fail("unknown model '", name, "'; expected one of: ", known);
  }
  require(!spec.stem_relu || name == "resnet18_in", "make_model: stem_relu is an option of "
          "resnet18_in only, not of '", name, "'");
  if (name == "resnet18_in")
    return resnet18_in({.classes = spec.classes,
                        .channels = spec.channels,
                        .size = spec.size,
                        .width = detail::whole_width(name, spec.width.value_or(64)),
                        .stem_relu = spec.stem_relu,
                        .grain = spec.grain});
  if (name == "wide_resnet_22_8")
    return wide_resnet({.depth = 22,
                        .widen = detail::whole_width(name, spec.width.value_or(8)),
                        .classes = spec.classes,
                        .channels = spec.channels,
                        .size = spec.size,
                        .grain = spec.grain});
  if (name == "mobilenet_v1")
    return mobilenet_v1({.classes = spec.classes,
                         .channels = spec.channels,
                         .size = spec.size,
                         .multiplier = spec.width.value_or(1.0),
                         .grain = spec.grain});
  fail("make_model: no factory for '", name, "'");  // unreachable: every known name is above
}

}  // namespace linearize::models
