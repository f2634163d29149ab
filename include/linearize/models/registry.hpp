#pragma once
// Models by name, for programs that pick one from the command line:
//   auto net = linearize::models::make_model("resnet18_in", {.classes = 100});
//
// A model registers itself in its own header, so adding one is one file and this registry knows
// no model:
//   inline const linearize::models::registration my_net_registration{{
//       .name = "my_net", .make = make_my_net, .width_knob = "channels of the first conv",
//       .default_width = 32}};
// An inline variable is one object however many translation units include the header, so the
// model registers once per program, before main(). A model is known where its header is part of
// the program: <linearize/linearize.hpp> includes the shipped ones; a user's model registers by
// being included.
#include <linearize/core/granularity.hpp>
#include <linearize/core/network.hpp>
#include <linearize/support/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace linearize::models {

/// The options every model takes; build a model from its own header for the rest.
struct model_spec {
  int64_t classes = 10;
  int64_t channels = 3;
  int64_t size = 32;
  /// The model's width knob (model_info::width_knob); empty = the model's default_width.
  std::optional<double> width{};
  bool stem_relu = false;  ///< a slot after the stem; models whose model_info::stem_relu is set
  granularity grain = granularity::element;
};

/// What the registry knows of a model.
struct model_info {
  std::string name{};
  /// Builds the model; spec.width is always set (the default filled in by make_model).
  Network (*make)(const model_spec&) = nullptr;
  std::string width_knob{};  ///< what model_spec::width means, e.g. "channels of layer1"
  double default_width = 1;
  /// The width of the baseline the programs train by default (train::baseline_spec), where it
  /// is not default_width: e.g. a narrower network that trains on a CPU in minutes.
  std::optional<double> baseline_width{};
  bool stem_relu = false;  ///< takes model_spec::stem_relu
};

class model_registry {
 public:
  /// Adds a model. A second model of the same name is not an exception here (this runs before
  /// main()): the name is marked, and making it is a linearize::error that says so.
  void add(model_info info) {
    if (find(info.name)) {
      doubled_.push_back(info.name);
      return;
    }
    models_.push_back(std::move(info));
  }

  /// The model called `name`; an unknown name is an error that lists the registered ones.
  [[nodiscard]] const model_info& at(std::string_view name) const {
    require(std::find(doubled_.begin(), doubled_.end(), name) == doubled_.end(), "model '", name,
            "' is registered by two different headers; rename one of them");
    const auto* info = find(name);
    if (!info) {
      std::string known;
      for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
      fail("unknown model '", name, "'; expected one of: ", known.empty() ? "(none registered: "
           "include the model's header, or <linearize/linearize.hpp> for the shipped ones)" : known);
    }
    return *info;
  }

  /// Registered names, sorted (registration order depends on the order of static
  /// initialization across translation units, which the language leaves open).
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& m : models_) out.push_back(m.name);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  [[nodiscard]] const model_info* find(std::string_view name) const {
    for (const auto& m : models_)
      if (m.name == name) return &m;
    return nullptr;
  }

  std::vector<model_info> models_;
  std::vector<std::string> doubled_;
};

/// The program's registry (a function-local static: ready whenever a registration runs).
[[nodiscard]] inline model_registry& registry() {
  static model_registry models;
  return models;
}

/// Registers a model on construction; a model header defines one as an inline variable.
struct registration {
  explicit registration(model_info info) { registry().add(std::move(info)); }
};

[[nodiscard]] inline std::vector<std::string> model_names() { return registry().names(); }

/// What the registry knows of model `name`; unknown names are an error listing the known ones.
[[nodiscard]] inline const model_info& model_info_of(std::string_view name) {
  return registry().at(name);
}

/// The model called `name`; an unknown name is an error that lists the known ones.
[[nodiscard]] inline Network make_model(std::string_view name, const model_spec& spec = {}) {
  const auto& info = registry().at(name);
  require(!spec.stem_relu || info.stem_relu, "make_model: stem_relu is not an option of '", name,
          "'");
  auto filled = spec;
  if (!filled.width) filled.width = info.default_width;
  require(std::isfinite(*filled.width) && *filled.width > 0, name, ": width = ", *filled.width,
          "; expected a positive ", info.width_knob);
  return info.make(filled);
}

/// A width knob that counts channels (or a whole factor of them), for a model's factory.
[[nodiscard]] inline int64_t whole_width(std::string_view model, double width) {
  require(std::floor(width) == width, model, ": width = ", width, "; expected a whole number");
  return static_cast<int64_t>(width);
}

}  // namespace linearize::models
