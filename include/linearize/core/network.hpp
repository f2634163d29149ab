#pragma once
// Network: a module whose ReLUs are ReluSlots, with the few things the trainer and the
// linearization pipelines need from any model: a forward pass, a deep copy (the frozen teacher
// of knowledge distillation, the candidate networks of a search) and a one-line description.
// The model zoo (models/) implements it; so can a user's own network.
#include <linearize/core/relu_slot.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <memory>
#include <string>

namespace linearize {

class NetworkImpl : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  /// Same architecture, parameters, buffers, masks and mask state, sharing no storage.
  [[nodiscard]] virtual std::shared_ptr<NetworkImpl> copy() const = 0;
  /// e.g. "resnet18_in(classes=10, channels=1, size=28, width=16)".
  [[nodiscard]] virtual std::string describe() const = 0;
};
using Network = std::shared_ptr<NetworkImpl>;

/// Copies every parameter and buffer of `from` into the same-named tensor of `to`, and each
/// slot's soft/hard state and kind of replacement (a slot of `to` gets the replacement its
/// namesake in `from` has, then its parameters are copied with the rest). Apart from the
/// replacements, the two must have the same names and shapes; the first difference is a
/// linearize::error.
inline void copy_state(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  {
    const auto dst_modules = to.named_modules("", false);
    for (const auto& m : from.named_modules("", false)) {
      const auto src = std::dynamic_pointer_cast<ReluSlotImpl>(m.value());
      if (!src) continue;
      const auto* found = dst_modules.find(m.key());
      const auto dst = found ? std::dynamic_pointer_cast<ReluSlotImpl>(*found) : nullptr;
      require(dst != nullptr, "copy_state: slot '", m.key(), "' missing in the destination");
      if (src->has_replacement() || dst->has_replacement()) dst->set_replacement_like(*src);
    }
  }
  const auto src_params = from.named_parameters(true);
  auto dst_params = to.named_parameters(true);
  require(src_params.size() == dst_params.size(), "copy_state: ", src_params.size(),
          " parameters in the source, ", dst_params.size(), " in the destination");
  for (const auto& p : src_params) {
    auto* dst = dst_params.find(p.key());
    require(dst != nullptr, "copy_state: parameter '", p.key(), "' missing in the destination");
    require(dst->sizes() == p.value().sizes(), "copy_state: parameter '", p.key(), "' has shape ",
            p.value().sizes(), " in the source, ", dst->sizes(), " in the destination");
    dst->copy_(p.value());
    dst->set_requires_grad(p.value().requires_grad());
  }
  const auto src_buffers = from.named_buffers(true);
  auto dst_buffers = to.named_buffers(true);
  require(src_buffers.size() == dst_buffers.size(), "copy_state: ", src_buffers.size(),
          " buffers in the source, ", dst_buffers.size(), " in the destination");
  for (const auto& b : src_buffers) {
    auto* dst = dst_buffers.find(b.key());
    require(dst != nullptr, "copy_state: buffer '", b.key(), "' missing in the destination");
    require(dst->sizes() == b.value().sizes(), "copy_state: buffer '", b.key(), "' has shape ",
            b.value().sizes(), " in the source, ", dst->sizes(), " in the destination");
    dst->copy_(b.value());
  }
  const auto dst_modules = to.named_modules("", false);
  for (const auto& m : from.named_modules("", false)) {
    const auto src = std::dynamic_pointer_cast<ReluSlotImpl>(m.value());
    if (!src || !src->materialized()) continue;
    const auto* found = dst_modules.find(m.key());
    const auto dst = found ? std::dynamic_pointer_cast<ReluSlotImpl>(*found) : nullptr;
    require(dst != nullptr, "copy_state: slot '", m.key(), "' missing in the destination");
    if (src->is_hard())
      dst->harden(src->mask());
    else
      dst->soften();
  }
}

/// For networks built from an options value (`Derived(options)`): copy() rebuilds the network
/// from the same options and copies its state and train/eval mode.
template <class Derived>
class NetworkFromOptions : public NetworkImpl {
 public:
  [[nodiscard]] std::shared_ptr<NetworkImpl> copy() const override {
    const auto& self = static_cast<const Derived&>(*this);
    auto out = std::make_shared<Derived>(self.options);
    copy_state(self, *out);
    out->train(self.is_training());
    return out;
  }
};

/// Freezes a network for use as a teacher: eval mode, no gradients.
inline void freeze(NetworkImpl& net) {
  net.eval();
  for (auto& p : net.parameters()) p.set_requires_grad(false);
}

}  // namespace linearize
