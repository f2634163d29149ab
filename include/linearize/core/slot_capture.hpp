#pragma once
// Watching the slots of a network while it runs: every call of a watched ReluSlot hands its
// input and output to a function, with the slot's position in a MaskSet. The slot shows to
// RecordFunction observers as one step "linearize::relu_slot" with inputs {x, mask} and
// outputs {y} (core/relu_slot.hpp); its mask's storage says which slot it is, so two networks
// of one architecture (a teacher and its student) can be watched apart. Nothing is stored here:
// the function reduces what it needs while the activations are alive, so no layer's activation
// map outlives its call. Used by SENet's selection (select/) and attention transfer (finetune/).
#include <linearize/core/mask_set.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/support/error.hpp>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string_view>

namespace linearize {

/// What a capture calls for each slot call: the slot's index in the MaskSet, its input, its
/// output (both [batch, activation shape...]).
using slot_call = std::function<void(size_t slot, const torch::Tensor& input, const torch::Tensor& output)>;

namespace detail {

struct slot_watch {
  std::map<const void*, size_t> slot_of;  // mask storage -> slot index
  slot_call on_call;
};
inline slot_watch*& current_slot_watch() {
  thread_local slot_watch* current = nullptr;
  return current;
}
// The slot's inputs live only while it starts (an array in its forward), so the start hands
// them to its end through the observer context.
struct slot_start : at::ObserverContext {
  size_t slot = 0;
  torch::Tensor input;
};
inline std::unique_ptr<at::ObserverContext> on_slot_start(const at::RecordFunction& fn) {
  auto* watch = current_slot_watch();
  if (watch == nullptr || std::string_view(fn.name()) != ReluSlotImpl::record_name) return nullptr;
  const auto in = fn.inputs();
  if (in.size() < 2 || !in[0].isTensor() || !in[1].isTensor()) return nullptr;
  const auto found = watch->slot_of.find(in[1].toTensor().data_ptr());
  if (found == watch->slot_of.end()) return nullptr;
  auto ctx = std::make_unique<slot_start>();
  ctx->slot = found->second;
  ctx->input = in[0].toTensor();
  return ctx;
}
inline void on_slot_end(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  auto* watch = current_slot_watch();
  auto* start = dynamic_cast<slot_start*>(ctx);
  if (watch == nullptr || start == nullptr) return;
  const auto& out = fn.outputs();
  if (out.empty() || !out[0].isTensor()) return;
  watch->on_call(start->slot, start->input, out[0].toTensor());
}

}  // namespace detail

/// While alive, calls `on_call` for every call of a slot of `masks` on this thread. One capture
/// per thread at a time (a nested one is an error).
class slot_capture {
 public:
  slot_capture(const MaskSet& masks, slot_call on_call) : slot_capture(masks, nullptr, std::move(on_call)) {}
  /// Both networks' slots at once (a student and its teacher): `second`'s slot i comes as
  /// masks.size() + i.
  slot_capture(const MaskSet& masks, const MaskSet* second, slot_call on_call) {
    require(detail::current_slot_watch() == nullptr,
            "slot_capture: already capturing on this thread (nested capture)");
    for (size_t i = 0; i < masks.size(); ++i) watch_.slot_of[masks[i].mask().data_ptr()] = i;
    if (second != nullptr)
      for (size_t i = 0; i < second->size(); ++i)
        require(watch_.slot_of.emplace((*second)[i].mask().data_ptr(), masks.size() + i).second,
                "slot_capture: slot '", second->name(i), "' is in both networks; expected two networks");
    watch_.on_call = std::move(on_call);
    detail::current_slot_watch() = &watch_;
    handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&detail::on_slot_start, &detail::on_slot_end)
                                             .needsInputs(true)
                                             .needsOutputs(true)
                                             .scopes({at::RecordScope::USER_SCOPE}));
  }
  ~slot_capture() {
    at::removeCallback(handle_);
    detail::current_slot_watch() = nullptr;
  }
  slot_capture(const slot_capture&) = delete;
  slot_capture& operator=(const slot_capture&) = delete;

 private:
  at::RecordFunctionGuard enabled_{true};
  detail::slot_watch watch_{};
  at::CallbackHandle handle_{};
};

}  // namespace linearize
