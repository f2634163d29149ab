#pragma once
// DeepReDuce's planner: from the ReLU counts of a network's stages and a criticality ranking to
// the sequence of steps that brings the network within a budget, with the count after each step.
// It trains nothing, so it can be called (and tested) before anything runs.
//
// The steps, in DeepReDuce's order:
//   cull     remove every ReLU of a stage, least critical stages first (the stem is a stage
//            when it has a ReLU); the `keep_stages` most critical stages are never culled;
//   thin     remove the ReLUs of every other slot of a stage (ResNet18: one of each block's
//            relu1 / relu2, which one is `thinning`), least critical remaining stages first;
//   reshape  build the network narrower and/or at a lower input resolution (the model
//            factory's width and size). A mask cannot express it: the plan names the option,
//            the caller builds that network (deepreduce_reshape.hpp) and trains it.
// Among the culled/thinned configurations within the budget the plan keeps the one with the
// most ReLUs (more ReLUs, more accuracy), fewer steps on ties; only
// when none fits does it look at the reshape options, if allowed. On ResNet18 with a stem ReLU
// and the ranking stem < layer1 < layer4 < layer2 < layer3 this gives the paper's counts:
// 229,376 (stem, layer1 culled), 196,608 (and layer4), 114,688 and 98,304 (thinned).
#include <linearize/core/mask_set.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/format.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace linearize::select {

/// Which slots of a thinned stage keep their ReLUs, by position within the stage (0-based,
/// network order). ResNet18-IN: even = relu1 of each BasicBlock (inside the residual branch),
/// odd = relu2 (after the residual add).
enum class thinning { keep_even, keep_odd };

[[nodiscard]] inline std::string to_string(thinning t) {
  return t == thinning::keep_even ? "keep even slots" : "keep odd slots";
}

/// The same network built at another width and/or input size, with its exact per-slot counts
/// (same stages, same number of slots per stage). Build these with deepreduce_reshape.hpp.
struct reshape_option {
  std::string name{};                  ///< e.g. "width 8, size 28"
  double width = 0;                    ///< the model factory's width knob
  int64_t size = 0;                    ///< input side
  std::vector<relu_tally> per_slot{};  ///< MaskSet(reshaped).per_slot()
};

enum class step_kind { cull, thin, reshape };

[[nodiscard]] inline std::string to_string(step_kind k) {
  return k == step_kind::cull ? "cull" : k == step_kind::thin ? "thin" : "reshape";
}

struct plan_step {
  step_kind kind = step_kind::cull;
  std::vector<std::string> stages{};  ///< culled or thinned by this step (empty for reshape)
  std::string reshape{};              ///< reshape steps: the option's name
  int64_t relu_count = 0;             ///< ReLUs after this step
  [[nodiscard]] std::string describe() const;
};

struct plan_settings {
  thinning thin = thinning::keep_even;
  /// The most critical stages that are never culled (all of them in a network with fewer).
  size_t keep_stages = 2;
  /// Thin stage by stage (least critical first); false: all remaining stages or none.
  bool partial_thinning = true;
  bool allow_reshape = false;
  std::vector<reshape_option> reshapes{};
  /// Grouping of the plan into steps (the stagewise scheduler's choice): stages culled per
  /// step and stages thinned per step; 0 puts all of a kind into one step.
  size_t cull_per_step = 1;
  size_t thin_per_step = 0;
};

struct deepreduce_plan {
  int64_t start_count = 0;                  ///< ReLUs before the first step
  int64_t budget = 0;
  std::vector<std::string> ranking{};       ///< least critical first
  thinning thin = thinning::keep_even;
  std::vector<std::string> culled{};        ///< all culled stages, in order
  std::vector<std::string> thinned{};       ///< all thinned stages, in order
  std::optional<reshape_option> reshape{};  ///< the reshape the plan needs, if any
  std::vector<plan_step> steps{};
  int64_t relu_count = 0;                   ///< after the last step

  /// Steps that a mask can apply (cull and thin; the reshape step, if any, is last).
  [[nodiscard]] size_t mask_steps() const {
    return reshape ? steps.size() - 1 : steps.size();
  }
  [[nodiscard]] std::string describe() const;
};

namespace detail {

inline std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + (n.empty() ? "(no stage)" : n);
  return out;
}

/// One stage: its slots (indices into per_slot) in network order and their active ReLUs.
struct stage_slots {
  std::string name{};
  std::vector<size_t> slots{};
  std::vector<int64_t> relus{};
  [[nodiscard]] int64_t count() const {
    int64_t n = 0;
    for (auto r : relus) n += r;
    return n;
  }
  /// ReLUs left when thinned.
  [[nodiscard]] int64_t thinned(thinning t) const {
    int64_t n = 0;
    for (size_t i = 0; i < relus.size(); ++i)
      if ((i % 2 == 0) == (t == thinning::keep_even)) n += relus[i];
    return n;
  }
  /// A stage of one slot is never thinned: that would be culling it.
  [[nodiscard]] bool thinnable(thinning t) const { return slots.size() >= 2 && thinned(t) < count(); }
};

inline std::vector<stage_slots> stage_layout(const std::vector<relu_tally>& per_slot) {
  std::vector<stage_slots> stages;
  for (size_t i = 0; i < per_slot.size(); ++i) {
    auto it = std::find_if(stages.begin(), stages.end(),
                           [&](const auto& s) { return s.name == per_slot[i].stage; });
    if (it == stages.end()) it = stages.insert(stages.end(), stage_slots{per_slot[i].stage, {}, {}});
    it->slots.push_back(i);
    it->relus.push_back(per_slot[i].active);
  }
  return stages;
}

inline const stage_slots& find_stage(const std::vector<stage_slots>& layout, const std::string& name) {
  const auto it = std::find_if(layout.begin(), layout.end(), [&](const auto& s) { return s.name == name; });
  require(it != layout.end(), "DeepReDuce plan: no stage '", name, "' in the network");
  return *it;
}

/// The ranking must name every stage of the network once and nothing else.
inline void check_ranking(const std::vector<stage_slots>& layout, const std::vector<std::string>& ranking) {
  std::vector<std::string> names;
  for (const auto& s : layout) names.push_back(s.name);
  for (const auto& r : ranking) {
    require(std::find(names.begin(), names.end(), r) != names.end(), "DeepReDuce plan: ranking names stage '", r,
            "', which the network does not have; expected a permutation of: ", join(names));
    require(std::count(ranking.begin(), ranking.end(), r) == 1, "DeepReDuce plan: ranking names stage '", r,
            "' more than once; expected a permutation of: ", join(names));
  }
  for (const auto& n : names)
    require(std::find(ranking.begin(), ranking.end(), n) != ranking.end(), "DeepReDuce plan: ranking lacks stage '",
            n, "'; expected a permutation of: ", join(names));
}

/// A reshaped network must have the same stages with the same number of slots.
inline void check_same_structure(const std::vector<stage_slots>& base, const std::vector<stage_slots>& other,
                                 const std::string& option) {
  bool same = base.size() == other.size();
  for (size_t i = 0; same && i < base.size(); ++i)
    same = base[i].name == other[i].name && base[i].slots.size() == other[i].slots.size();
  require(same, "DeepReDuce plan: reshape option '", option,
          "' has another stage structure than the network; expected the same stages with the same "
          "number of slots each");
}

/// One culled/thinned configuration: the first `culled` stages of the live ranking culled, the
/// first `thinned` thinnable remaining stages thinned.
struct candidate {
  std::optional<size_t> reshape;
  size_t culled = 0, thinned = 0;
  int64_t count = 0;
};

struct live_order {
  std::vector<std::string> stages{};  ///< ranking restricted to stages that still have ReLUs
  size_t cullable = 0;
};

inline live_order live(const std::vector<stage_slots>& layout, const std::vector<std::string>& ranking,
                       size_t keep_stages) {
  live_order out;
  for (const auto& r : ranking)
    if (find_stage(layout, r).count() > 0) out.stages.push_back(r);
  out.cullable = out.stages.size() - std::min(keep_stages, out.stages.size());
  return out;
}

/// The stages thinned, in order, when the first `culled` of `order` are culled.
inline std::vector<std::string> thin_order(const std::vector<stage_slots>& layout, const live_order& order,
                                           size_t culled, thinning t) {
  std::vector<std::string> out;
  for (size_t i = culled; i < order.stages.size(); ++i)
    if (find_stage(layout, order.stages[i]).thinnable(t)) out.push_back(order.stages[i]);
  return out;
}

/// Every configuration on `layout`, with its count.
inline std::vector<candidate> candidates(const std::vector<stage_slots>& layout, const live_order& order,
                                         const plan_settings& settings, std::optional<size_t> reshape) {
  std::vector<candidate> out;
  for (size_t c = 0; c <= order.cullable; ++c) {
    int64_t count = 0;
    for (size_t i = c; i < order.stages.size(); ++i) count += find_stage(layout, order.stages[i]).count();
    const auto thins = thin_order(layout, order, c, settings.thin);
    out.push_back({reshape, c, 0, count});
    for (size_t t = 1; t <= thins.size(); ++t) {
      const auto& s = find_stage(layout, thins[t - 1]);
      count -= s.count() - s.thinned(settings.thin);
      if (settings.partial_thinning || t == thins.size()) out.push_back({reshape, c, t, count});
    }
  }
  return out;
}

/// The configuration with the most ReLUs within the budget; ties go to fewer culled + thinned
/// stages, then to the earlier candidate (fewer culled, earlier reshape option).
inline std::optional<candidate> best_within(const std::vector<candidate>& all, int64_t budget) {
  std::optional<candidate> best;
  for (const auto& c : all) {
    if (c.count > budget) continue;
    if (!best || c.count > best->count ||
        (c.count == best->count && c.culled + c.thinned < best->culled + best->thinned))
      best = c;
  }
  return best;
}

inline const candidate& fewest(const std::vector<candidate>& all) {
  return *std::min_element(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.count < b.count; });
}

}  // namespace detail

/// The fewest ReLUs culling and thinning can reach on this network under any ranking: the
/// `keep_stages` stages with the smallest thinned counts survive, thinned. A budget below it
/// fails whatever the criticality measurement finds, so a selection checks it first.
[[nodiscard]] inline int64_t fewest_reachable(const std::vector<relu_tally>& per_slot, const plan_settings& settings) {
  const auto layout = detail::stage_layout(per_slot);
  std::vector<int64_t> floors;
  for (const auto& s : layout) {
    if (s.count() == 0) continue;
    floors.push_back(s.thinnable(settings.thin) ? s.thinned(settings.thin) : s.count());
  }
  std::sort(floors.begin(), floors.end());
  int64_t n = 0;
  for (size_t i = 0; i < std::min(settings.keep_stages, floors.size()); ++i) n += floors[i];
  return n;
}

/// The fewest ReLUs culling and thinning reach with this ranking (no reshaping): every stage
/// but the `keep_stages` most critical culled, those thinned. The lowest budget
/// plan_deepreduce accepts without reshaping.
[[nodiscard]] inline int64_t fewest_planned(const std::vector<relu_tally>& per_slot,
                                            const std::vector<std::string>& ranking, const plan_settings& settings) {
  const auto layout = detail::stage_layout(per_slot);
  detail::check_ranking(layout, ranking);
  const auto order = detail::live(layout, ranking, settings.keep_stages);
  return detail::fewest(detail::candidates(layout, order, settings, std::nullopt)).count;
}

/// Plans DeepReDuce's steps for a network with these slot counts (MaskSet::per_slot(); the
/// active counts are used, so a partly linearized network plans from where it stands), stages
/// ranked least critical first, to at most `budget` ReLUs. A budget no plan reaches is an error
/// that says how far the steps go.
[[nodiscard]] inline deepreduce_plan plan_deepreduce(const std::vector<relu_tally>& per_slot,
                                                     const std::vector<std::string>& ranking, int64_t budget,
                                                     const plan_settings& settings = {}) {
  require(!per_slot.empty(), "DeepReDuce plan: the network has no slots");
  require(budget > 0, "DeepReDuce plan: budget of ", budget, " ReLUs; expected a positive count");
  const auto layout = detail::stage_layout(per_slot);
  detail::check_ranking(layout, ranking);
  const auto order = detail::live(layout, ranking, settings.keep_stages);

  deepreduce_plan plan;
  plan.budget = budget;
  plan.ranking = ranking;
  plan.thin = settings.thin;
  for (const auto& s : layout) plan.start_count += s.count();

  const auto plain = detail::candidates(layout, order, settings, std::nullopt);
  auto chosen = detail::best_within(plain, budget);
  std::vector<std::vector<detail::stage_slots>> reshaped;
  if (!chosen) {
    const auto& low = detail::fewest(plain);
    const auto kept = std::vector<std::string>(order.stages.begin() + static_cast<std::ptrdiff_t>(low.culled),
                                               order.stages.end());
    const std::string reach = linearize::detail::concat(
        "budget of ", grouped(budget), " ReLUs is below ", grouped(low.count),
        ", the fewest that culling and thinning reach (only [", detail::join(kept),
        "] keep ReLUs, ", low.thinned > 0 ? "thinned" : "not thinned", "; keep_stages = ", settings.keep_stages, ")");
    require(settings.allow_reshape, "DeepReDuce plan: ", reach,
            "; reshaping is disabled: allow it with reshape options (select/deepreduce_reshape.hpp), lower "
            "keep_stages or raise the budget");
    require(!settings.reshapes.empty(), "DeepReDuce plan: ", reach,
            "; reshaping is allowed but no reshape options were given (select/deepreduce_reshape.hpp builds them)");
    std::vector<detail::candidate> all;
    for (size_t r = 0; r < settings.reshapes.size(); ++r) {
      reshaped.push_back(detail::stage_layout(settings.reshapes[r].per_slot));
      detail::check_same_structure(layout, reshaped.back(), settings.reshapes[r].name);
      const auto order_r = detail::live(reshaped.back(), ranking, settings.keep_stages);
      require(order_r.stages == order.stages, "DeepReDuce plan: reshape option '", settings.reshapes[r].name,
              "' has ReLUs in other stages than the network");
      const auto more = detail::candidates(reshaped.back(), order_r, settings, r);
      all.insert(all.end(), more.begin(), more.end());
    }
    chosen = detail::best_within(all, budget);
    if (!chosen) {
      const auto& least = detail::fewest(all);
      fail("DeepReDuce plan: ", reach, "; even with reshaping the fewest is ", grouped(least.count),
           " (", settings.reshapes[*least.reshape].name, "); add smaller reshape options or raise the budget");
    }
  }

  // The steps: culls, then thins (grouped as the scheduler asks), then the reshape.
  plan.culled.assign(order.stages.begin(), order.stages.begin() + static_cast<std::ptrdiff_t>(chosen->culled));
  const auto& basis = chosen->reshape ? reshaped[*chosen->reshape] : layout;
  const auto thins = detail::thin_order(basis, order, chosen->culled, settings.thin);
  plan.thinned.assign(thins.begin(), thins.begin() + static_cast<std::ptrdiff_t>(chosen->thinned));
  int64_t count = plan.start_count;
  const auto add_steps = [&](step_kind kind, const std::vector<std::string>& stages, size_t per_step) {
    const size_t group = per_step == 0 ? std::max<size_t>(stages.size(), 1) : per_step;
    for (size_t i = 0; i < stages.size(); i += group) {
      plan_step step{.kind = kind};
      for (size_t j = i; j < std::min(stages.size(), i + group); ++j) {
        const auto& s = detail::find_stage(layout, stages[j]);
        count -= kind == step_kind::cull ? s.count() : s.count() - s.thinned(settings.thin);
        step.stages.push_back(stages[j]);
      }
      step.relu_count = count;
      plan.steps.push_back(step);
    }
  };
  add_steps(step_kind::cull, plan.culled, settings.cull_per_step);
  add_steps(step_kind::thin, plan.thinned, settings.thin_per_step);
  if (chosen->reshape) {
    plan.reshape = settings.reshapes[*chosen->reshape];
    plan.steps.push_back({.kind = step_kind::reshape, .reshape = plan.reshape->name, .relu_count = chosen->count});
  }
  plan.relu_count = chosen->count;
  require(plan.relu_count <= budget, "DeepReDuce plan: internal error, planned ", plan.relu_count,
          " ReLUs over the budget of ", budget);
  return plan;
}

/// Which slots keep their ReLUs after the first `steps_done` steps of `plan`, for a network with
/// these slots (the planned one, or a reshaped one with the same stages).
[[nodiscard]] inline std::vector<bool> slots_kept(const std::vector<relu_tally>& per_slot,
                                                  const deepreduce_plan& plan, size_t steps_done) {
  require(steps_done <= plan.steps.size(), "DeepReDuce plan: ", steps_done, " steps done; the plan has ",
          plan.steps.size());
  const auto layout = detail::stage_layout(per_slot);
  detail::check_ranking(layout, plan.ranking);
  std::vector<bool> keep(per_slot.size(), true);
  for (size_t i = 0; i < steps_done; ++i) {
    const auto& step = plan.steps[i];
    for (const auto& name : step.stages) {
      const auto& s = detail::find_stage(layout, name);
      for (size_t k = 0; k < s.slots.size(); ++k) {
        const bool dropped_by_thinning = (k % 2 == 0) != (plan.thin == thinning::keep_even);
        if (step.kind == step_kind::cull || dropped_by_thinning) keep[s.slots[k]] = false;
      }
    }
  }
  return keep;
}

/// The flat binary mask of `masks` after the first `steps_done` steps: the current mask with the
/// culled and thinned slots off (a reshape step changes no mask).
[[nodiscard]] inline torch::Tensor plan_mask(const MaskSet& masks, const deepreduce_plan& plan, size_t steps_done) {
  const auto keep = slots_kept(masks.per_slot(), plan, steps_done);
  auto flat = masks.binary();
  for (size_t i = 0; i < masks.size(); ++i)
    if (!keep[i]) flat.slice(0, masks.offset(i), masks.offset(i + 1)).fill_(false);
  return flat;
}

inline std::string plan_step::describe() const {
  if (kind == step_kind::reshape) return "reshape to " + reshape;
  return to_string(kind) + " " + detail::join(stages);
}

inline std::string deepreduce_plan::describe() const {
  std::ostringstream out;
  out << "DeepReDuce plan: " << grouped(start_count) << " -> " << grouped(relu_count)
      << " ReLUs (budget " << grouped(budget) << ")\n";
  out << "  stages, least critical first: " << detail::join(ranking) << "\n";
  if (steps.empty()) out << "  no step: already within the budget\n";
  for (size_t i = 0; i < steps.size(); ++i) {
    std::string what = steps[i].describe();
    if (steps[i].kind == step_kind::thin) what += " (" + to_string(thin) + ")";
    out << "  " << i + 1 << ". " << what << std::string(what.size() < 44 ? 44 - what.size() : 1, ' ')
        << "-> " << grouped(steps[i].relu_count) << "\n";
  }
  return out.str();
}

}  // namespace linearize::select
