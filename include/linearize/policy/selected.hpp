#pragma once
// What a selection rule returns: the binary mask over all mask entries (bool [entries], MaskSet
// order), or, for a rule with findings of its own (coordinate descent's counters, DeepReDuce's
// criticality and steps), `selected<Report>`: the mask and the report, as the rule's own type.
// The composer keeps the report in stage_report::details; nothing is written into its reports
// through a reference.
#include <torch/torch.h>

#include <concepts>
#include <type_traits>

namespace linearize {

template <class Report>
struct selected {
  torch::Tensor mask;
  Report report;
};

template <class T>
inline constexpr bool is_selected = false;
template <class Report>
inline constexpr bool is_selected<selected<Report>> = true;

/// What select(ctx) may return.
template <class T>
concept selection_output = std::same_as<std::remove_cvref_t<T>, torch::Tensor> ||
                           is_selected<std::remove_cvref_t<T>>;

}  // namespace linearize
