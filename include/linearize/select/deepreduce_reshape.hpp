#pragma once
// DeepReDuce's third step, reshaping, through the model factories: the same model built with a
// smaller width knob (channels scale by alpha) and/or a smaller input (feature maps scale by
// rho^2). A mask cannot do that, so reshaping happens here, outside run():
//
//   auto options = select::reshape_options("resnet18_in", spec, {8}, {14});   // exact counts
//   auto plan = select::plan_deepreduce(per_slot, ranking, budget,
//                                       {.allow_reshape = true, .reshapes = options});
//   if (plan.reshape) {
//     auto small = select::build_reshaped("resnet18_in", spec, plan);  // culled + thinned, hard
//     ... train it (KD from the original teacher when the input size is unchanged)
//   }
// The counts come from building each network (slots know their shapes; no forward pass).
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/support/error.hpp>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace linearize::select {

/// `base` with the reshape option's width and input size.
[[nodiscard]] inline models::model_spec reshaped_spec(models::model_spec base, const reshape_option& option) {
  base.width = option.width;
  base.size = option.size;
  return base;
}

/// One reshape option per (width, size) of widths x sizes other than `base` itself (an empty
/// list keeps the base's width or size), with the exact per-slot counts of `model` built so.
[[nodiscard]] inline std::vector<reshape_option> reshape_options(std::string_view model,
                                                                 const models::model_spec& base,
                                                                 std::vector<double> widths,
                                                                 std::vector<int64_t> sizes) {
  if (widths.empty()) {
    require(base.width.has_value(), "reshape_options: give the base spec's width, or the widths to try");
    widths = {*base.width};
  }
  if (sizes.empty()) sizes = {base.size};
  std::vector<reshape_option> out;
  for (double w : widths) {
    require(std::isfinite(w) && w > 0, "reshape_options: width ", w, "; expected a positive width");
    for (int64_t s : sizes) {
      require(s > 0, "reshape_options: input size ", s, "; expected a positive size");
      if (base.width && *base.width == w && base.size == s) continue;  // that is no reshape
      std::ostringstream name;
      name << "width " << w << ", size " << s;
      reshape_option option{.name = name.str(), .width = w, .size = s};
      const auto net = models::make_model(model, reshaped_spec(base, option));
      option.per_slot = MaskSet(*net).per_slot();
      out.push_back(std::move(option));
    }
  }
  return out;
}

/// The network the plan's reshape step asks for, built by the factory from `base`, with the
/// plan's culling and thinning applied as a hard mask. Its weights are fresh: it needs training.
[[nodiscard]] inline Network build_reshaped(std::string_view model, const models::model_spec& base,
                                            const deepreduce_plan& plan) {
  require(plan.reshape.has_value(), "build_reshaped: the plan has no reshape step (it reaches its budget of ",
          plan.budget, " ReLUs by culling and thinning)");
  auto net = models::make_model(model, reshaped_spec(base, *plan.reshape));
  const MaskSet masks(*net);
  masks.harden(plan_mask(masks, plan, plan.mask_steps()));
  require(masks.relu_count() == plan.relu_count, "build_reshaped: the network built as '", plan.reshape->name,
          "' has ", masks.relu_count(), " ReLUs after culling and thinning; the plan counted ", plan.relu_count,
          " (was the plan made with options from another base spec?)");
  return net;
}

}  // namespace linearize::select
