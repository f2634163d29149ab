#pragma once
// ReluSlot: the place of one ReLU layer in a network, as a gate between ReLU and what replaces
// it where it is linearized,
//   y = a * relu(x) + (1 - a) * r(x)     (a = 1: ReLU, a = 0: r, i.e. the ReLU is linearized)
// r is the identity by default, y = x - a * min(x, 0), run by the fused kernel; or a replacement
// (replacement.hpp), e.g. AutoReP's trainable polynomial (polynomial.hpp), registered as the
// slot's submodule "replacement". The mask `a` has one entry per element, channel or layer (see
// granularity.hpp) and is either soft (a trainable parameter that a relaxation turns into a
// gate) or hard (binary and frozen, what a private-inference deployment would run).
//
// Gradient at x = 0, the same on every path (fused, plain ops, fully kept, fully linearized):
// relu's slope there is 1, so dL/dx = g * (a + (1 - a) * r'(0)); with the identity, g. Values at
// NaN and +-inf: see the convention in kernels.hpp.
#include <linearize/core/granularity.hpp>
#include <linearize/core/kernels.hpp>
#include <linearize/core/replacement.hpp>
#include <linearize/support/error.hpp>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <cstdint>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

namespace linearize {

struct slot_options {
  granularity grain = granularity::element;
  /// Activation shape of one sample (e.g. {C, H, W}). Empty: learnt on the first forward, then
  /// fixed. Give it when you can: the mask then exists before an optimizer is built.
  std::vector<int64_t> shape{};
  /// Where the slot sits, for stage-level methods (DeepReDuce): stage name ("stem", "layer1",
  /// ...) and the slot's index within that stage.
  std::string stage{};
  int layer = -1;
  /// Initial value of every mask entry (SNL starts from 1: every ReLU on).
  double init = 1.0;
};

class ReluSlotImpl : public torch::nn::Cloneable<ReluSlotImpl> {
 public:
  explicit ReluSlotImpl(slot_options options_ = {}) : options(std::move(options_)) {
    for (int64_t d : options.shape)
      require(d > 0, "ReluSlot: activation shape ", shape_text(options.shape),
              " has a non-positive dimension; expected all dimensions > 0");
    if (options.grain == granularity::channel && !options.shape.empty())
      require(options.shape.size() >= 1, "ReluSlot: channel granularity needs a channel dimension");
    reset();
  }

  void reset() override {
    gate_ = torch::Tensor();
    mask_ = torch::Tensor();
    replacement_ = {};
    if (!options.shape.empty()) {
      create_mask(torch::TensorOptions().dtype(torch::kFloat));
      install_replacement();
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    require(x.dim() >= 2, "ReluSlot: input of shape ", x.sizes(),
            " has no per-sample dimensions; expected [batch, ", shape_text(options.shape), "]");
    const std::vector<int64_t> sample(x.sizes().begin() + 1, x.sizes().end());
    if (options.shape.empty()) {  // learn the activation shape once, then keep it
      options.shape = sample;
      create_mask(x.options());
      install_replacement();
    }
    require(sample == options.shape, "ReluSlot", where(), ": input of shape ", x.sizes(),
            " does not match the slot's activation shape [batch, ", shape_text(options.shape), "]");
    // Observers of the forward pass (RecordFunction callbacks: io/pi_trace.hpp, the profiler)
    // see the slot as one step, with its input, its mask and its output, not the kernels inside
    // it. Nobody observing costs a thread-local check.
    at::RecordFunction scope(at::RecordScope::USER_SCOPE);
    if (scope.isActive()) {
      const c10::IValue inputs[] = {x, mask_};
      scope.before(record_name, c10::ArrayRef<const c10::IValue>(inputs));
    }
    auto y = forward_slot(x);
    if (scope.isActive()) scope.setOutputs(std::vector<c10::IValue>{y});
    return y;
  }

  /// The name under which the forward pass shows to RecordFunction observers.
  static constexpr const char* record_name = "linearize::relu_slot";

 private:
  torch::Tensor forward_slot(const torch::Tensor& x) {
    if (replacement_) return forward_replaced(x);
    if (gate_.defined()) return kernels::masked_relu(x, gate_.to(x.dtype()));
    if (hard_) {  // binary mask: whole-layer cases need no pass over a mask
      refresh_hard_summary();
      if (hard_all_off_) return x;
      if (hard_all_on_) return kernels::relu(x);
    }
    return kernels::masked_relu(x, mask_.to(x.dtype()));
  }

 public:
  // ---- what replaces the ReLU where it is linearized -------------------------------------------
  /// Puts `spec`'s replacement where this slot linearizes (see replacement.hpp). A slot that does
  /// not know its shape yet builds the module on its first forward: build an optimizer after
  /// that, or give slot_options::shape.
  template <replacement_spec Spec>
  void set_replacement(const Spec& spec) {
    set_replacement_factory(factory_of(spec));
  }
  /// Back to the identity: the fused masked ReLU, no module.
  void set_replacement(identity_replacement) { set_replacement_factory({}); }
  /// The type-erased form of set_replacement (an empty factory is the identity).
  void set_replacement_factory(replacement_factory factory) {
    make_replacement_ = std::move(factory);
    if (mask_.defined()) install_replacement();
  }
  /// Gives this slot the kind of replacement `other` has (a fresh module, its own parameters),
  /// as copy_state does before it copies the parameters.
  void set_replacement_like(const ReluSlotImpl& other) { set_replacement_factory(other.make_replacement_); }
  /// Whether linearized positions evaluate a replacement (false: the identity).
  [[nodiscard]] bool has_replacement() const { return static_cast<bool>(make_replacement_); }
  /// The replacement module (null for the identity, or before the slot knows its shape).
  [[nodiscard]] std::shared_ptr<torch::nn::Module> replacement() const { return replacement_.module; }
  /// The replacement module as its own type (null if it is another type or there is none): the
  /// hook for setting a replacement's parameters, e.g. a polynomial's coefficients from a fit.
  template <class M>
  [[nodiscard]] std::shared_ptr<M> replacement_as() const {
    return std::dynamic_pointer_cast<M>(replacement_.module);
  }
  /// How private inference pays for the linearized positions: linear (free) for the identity.
  [[nodiscard]] replacement_cost linearized_cost() const {
    return replacement_ ? replacement_.cost() : replacement_cost::linear;
  }

  // ---- counts ---------------------------------------------------------------------------------
  /// ReLUs of one sample's activation map (mask-independent).
  [[nodiscard]] int64_t total_relus() const {
    require_materialized();
    return std::accumulate(options.shape.begin(), options.shape.end(), int64_t{1},
                           std::multiplies<>());
  }
  [[nodiscard]] int64_t mask_entries() const { return total_relus() / relus_per_entry(); }
  [[nodiscard]] int64_t relus_per_entry() const {
    require_materialized();
    switch (options.grain) {
      case granularity::element: return 1;
      case granularity::channel: return total_relus_unchecked() / options.shape[0];
      case granularity::layer: return total_relus_unchecked();
    }
    return 1;
  }
  /// ReLUs still needed in private inference: every element whose gate is not exactly 0 (a soft
  /// gate of 0.3 still needs min(x, 0), i.e. a comparison in a garbled circuit).
  [[nodiscard]] int64_t relu_count() const {
    torch::NoGradGuard no_grad;
    const auto gate = gate_.defined() ? gate_ : mask_;
    return gate.ne(0).sum().item<int64_t>() * relus_per_entry();
  }
  /// Positions that evaluate a polynomial replacement in private inference: every element whose
  /// gate is not exactly 1, when the replacement costs multiplications (0 for the identity and
  /// for linear replacements, which are free). A soft gate strictly between 0 and 1 needs both a
  /// ReLU and the polynomial, so such a position counts in both.
  [[nodiscard]] int64_t polynomial_count() const {
    if (linearized_cost() != replacement_cost::polynomial) return 0;
    torch::NoGradGuard no_grad;
    const auto gate = gate_.defined() ? gate_ : mask_;
    return gate.ne(1).sum().item<int64_t>() * relus_per_entry();
  }

  // ---- state ----------------------------------------------------------------------------------
  [[nodiscard]] bool is_hard() const { return hard_; }
  /// The mask parameter (trainable when soft). Shape: element {C,H,W}, channel {C}, layer {1}.
  [[nodiscard]] const torch::Tensor& mask() const {
    require_materialized();
    return mask_;
  }
  /// What the forward pass multiplies by: the gate a relaxation set (set_gate) while it is set,
  /// else the mask itself. Shape of the mask.
  [[nodiscard]] const torch::Tensor& gate() const {
    require_materialized();
    return gate_.defined() ? gate_ : mask_;
  }
  /// Which entries keep their ReLU (gate != 0), as a bool tensor of the mask's shape.
  [[nodiscard]] torch::Tensor binary_mask() const {
    torch::NoGradGuard no_grad;
    return mask().ne(0);
  }

  /// Freezes the mask to the given 0/1 values (bool or numeric, the mask's shape or flat).
  void harden(const torch::Tensor& binary) {
    require_materialized();
    require(binary.numel() == mask_.numel(), "ReluSlot", where(), ": binary mask has ",
            binary.numel(), " entries; expected ", mask_.numel(), " (shape ", mask_.sizes(), ")");
    torch::NoGradGuard no_grad;
    const auto values = binary.to(torch::kCPU).to(torch::kDouble);
    require(values.eq(0).logical_or(values.eq(1)).all().item<bool>(), "ReluSlot", where(),
            ": binary mask holds values other than 0 and 1");
    mask_.set_requires_grad(false);
    mask_.copy_(binary.reshape(mask_.sizes()).to(mask_.options()));
    hard_ = true;
    gate_ = torch::Tensor();
  }
  /// Freezes the mask to (mask > threshold), SNL's binarization.
  void harden_above(double threshold) { harden(mask().detach().gt(threshold)); }
  /// Makes the mask trainable again, starting from its current values.
  void soften() {
    require_materialized();
    hard_ = false;
    mask_.set_requires_grad(true);
  }

  /// Relaxations (relax/) compute the gate from the mask parameter each step and hand it here;
  /// until cleared, forward uses it instead of the raw mask.
  void set_gate(torch::Tensor gate) {
    require_materialized();
    require(gate.numel() == mask_.numel(), "ReluSlot", where(), ": gate has ", gate.numel(),
            " entries; expected ", mask_.numel());
    gate_ = gate.reshape(mask_.sizes());
  }
  void clear_gate() { gate_ = torch::Tensor(); }
  /// Whether a relaxation's gate is set (a checkpoint keeps it: for a hysteretic relaxation it
  /// is the state the next gate depends on).
  [[nodiscard]] bool has_gate() const { return gate_.defined(); }
  [[nodiscard]] bool materialized() const { return mask_.defined(); }

  void pretty_print(std::ostream& out) const override {
    out << "ReluSlot(" << to_string(options.grain) << ", "
        << (options.shape.empty() ? std::string("shape learnt on first input") : shape_text(options.shape))
        << ", " << (hard_ ? "hard" : "soft");
    if (replacement_) out << ", replaced by " << replacement_.module->name();
    out << ")";
  }

  slot_options options;

 private:
  static std::string shape_text(const std::vector<int64_t>& shape) {
    if (shape.empty()) return "?";
    std::string s;
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
    return s;
  }
  [[nodiscard]] std::string where() const {
    return options.stage.empty() ? std::string() : " (stage " + options.stage + ")";
  }
  void require_materialized() const {
    require(mask_.defined(), "ReluSlot: activation shape unknown; give slot_options::shape or run "
                             "one forward pass before asking for counts or masks");
  }
  [[nodiscard]] int64_t total_relus_unchecked() const {
    return std::accumulate(options.shape.begin(), options.shape.end(), int64_t{1},
                           std::multiplies<>());
  }

  void create_mask(const torch::TensorOptions& like) {
    std::vector<int64_t> shape;
    switch (options.grain) {
      case granularity::element: shape = options.shape; break;
      case granularity::channel: shape = {options.shape.at(0)}; break;
      case granularity::layer: shape = {1}; break;
    }
    const auto given = like.dtype().toScalarType();
    const auto dtype = at::isFloatingType(given) ? given : torch::kFloat;
    auto init = torch::full(shape, options.init, torch::TensorOptions().dtype(dtype).device(like.device()));
    mask_ = register_parameter("mask", init, /*requires_grad=*/!hard_);
  }

  [[nodiscard]] replacement_site site() const {
    return {.shape = options.shape,
            .grain = options.grain,
            .stage = options.stage,
            .layer = options.layer,
            .options = torch::TensorOptions().dtype(mask_.scalar_type()).device(mask_.device())};
  }

  // Builds the replacement from the factory (none: the identity) as the submodule "replacement".
  void install_replacement() {
    if (named_children().contains("replacement")) unregister_module("replacement");
    replacement_ = {};
    if (!make_replacement_) return;
    replacement_ = make_replacement_(site());
    register_module("replacement", replacement_.module);
  }

  // y = a * relu(x) + (1 - a) * r(x). The replacement runs only where some position needs it:
  // a fully kept hard slot is relu(x) alone, a fully linearized one r(x) alone.
  torch::Tensor forward_replaced(const torch::Tensor& x) {
    const auto replaced = [&] {
      auto r = replacement_.forward(x);
      require(r.sizes() == x.sizes(), "ReluSlot", where(), ": replacement ",
              replacement_.module->name(), " returned shape ", r.sizes(), " for input of shape ",
              x.sizes(), "; expected the input's shape");
      return r.to(x.dtype());
    };
    if (!gate_.defined() && hard_) {
      refresh_hard_summary();
      if (hard_all_off_) return replaced();
      if (hard_all_on_) return kernels::relu(x);
    }
    const auto& gate = gate_.defined() ? gate_ : mask_;
    return kernels::masked_blend(x, gate.to(x.dtype()), replaced());
  }

  // A hard mask's "all off / all on" summary, recomputed only when the mask tensor changed
  // (in-place writes bump its version; set_data swaps its storage).
  void refresh_hard_summary() {
    const auto version = mask_._version();
    const void* data = mask_.data_ptr();
    if (version == summary_version_ && data == summary_data_) return;
    torch::NoGradGuard no_grad;
    hard_all_off_ = !mask_.ne(0).any().item<bool>();
    hard_all_on_ = mask_.ne(0).all().item<bool>();
    summary_version_ = version;
    summary_data_ = data;
  }

  torch::Tensor mask_;
  torch::Tensor gate_;
  replacement_factory make_replacement_{};  // empty: the identity
  installed_replacement replacement_{};     // built from it once the shape is known
  bool hard_ = false;
  bool hard_all_off_ = false, hard_all_on_ = false;
  int64_t summary_version_ = -1;
  const void* summary_data_ = nullptr;
};

TORCH_MODULE(ReluSlot);

}  // namespace linearize
