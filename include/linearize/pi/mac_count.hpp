#pragma once
// MAC count: the multiply-accumulates of a network's linear layers (convolutions, fully connected
// layers, matrix products) for one input, found by running one forward pass and watching the
// ATen operators it calls. The cost model charges them for protocols whose linear layers cost
// online. LibTorch's C++ modules have no forward hooks, so the watching is done with a
// thread-local RecordFunction observer (the mechanism behind the profiler): it sees the
// operators whatever module or plain function calls them, and only on this thread. It also notes
// the ReLU slots as they run (they announce themselves to the same observers), so that a
// per-layer report can put linear layers and slots in the order the network runs them.
#include <linearize/core/relu_slot.hpp>
#include <linearize/support/error.hpp>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace linearize::pi {

/// One linear operator of a forward pass.
struct linear_op {
  std::string op{};                   ///< ATen name, e.g. "aten::conv2d", "aten::linear"
  std::vector<int64_t> output_shape{};  ///< including the batch dimension
  int64_t macs = 0;                   ///< for the whole batch the forward pass ran
  std::string module{};               ///< the module whose weight it used ("layer1.0.conv1"), if known
  int64_t slots_before = 0;           ///< ReLU slots that ran before it
};

struct mac_count {
  std::vector<linear_op> ops{};  ///< in the order they ran
  /// The ReLU slots in the order they ran: their names (count_macs), or "" (count_macs_of).
  std::vector<std::string> slots{};
  [[nodiscard]] int64_t total() const {
    int64_t n = 0;
    for (const auto& op : ops) n += op.macs;
    return n;
  }
};

namespace detail {

// How one operator's MACs follow from its operands: output elements times the length of the
// dot product behind each (or, for a transposed convolution, input elements times the outputs
// each one feeds).
struct mac_rule {
  int64_t per_element = 0;
  bool per_input_element = false;
  int64_t input_elements = 0;
};

inline bool is_linear_op(std::string_view name) {
  static constexpr std::string_view names[] = {
      "aten::conv1d",           "aten::conv2d",           "aten::conv3d",
      "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d",
      "aten::convolution",      "aten::_convolution",     "aten::linear",
      "aten::addmm",            "aten::mm",               "aten::bmm",
      "aten::baddbmm",          "aten::matmul"};
  for (auto n : names)
    if (n == name) return true;
  return false;
}

inline mac_rule rule_for(std::string_view name, c10::ArrayRef<const c10::IValue> in) {
  const auto tensor = [&](size_t i) {
    require(i < in.size() && in[i].isTensor(), "count_macs: operator ", name, " has no tensor operand ", i);
    return in[i].toTensor();
  };
  const auto inner = [](const at::Tensor& t) { return t.dim() == 0 ? int64_t{1} : t.size(-1); };
  mac_rule r;
  // Convolution weights are [out, in/groups, k...]; transposed ones [in, out/groups, k...].
  if (name.starts_with("aten::conv") || name == "aten::_convolution") {
    const auto w = tensor(1);
    bool transposed = name.starts_with("aten::conv_transpose");
    if (name == "aten::convolution" || name == "aten::_convolution")
      transposed = in.size() > 6 && in[6].isBool() && in[6].toBool();
    r.per_element = w.numel() / w.size(0);
    if (transposed) {
      r.per_input_element = true;
      r.input_elements = tensor(0).numel();
    }
  } else if (name == "aten::linear") {
    r.per_element = inner(tensor(1));                          // weight [out, in]
  } else if (name == "aten::addmm" || name == "aten::baddbmm") {
    r.per_element = inner(tensor(1));                          // self + mat1 @ mat2
  } else {                                                     // mm, bmm, matmul
    r.per_element = inner(tensor(0));
  }
  return r;
}

struct mac_observer : at::ObserverContext {
  bool outermost = false;
  mac_rule rule;
  std::string module;
  int64_t slots_before = 0;
};

struct mac_recording {
  mac_count result;
  std::unordered_map<const void*, std::string> parameters;  // data pointer -> parameter name
  std::unordered_map<const void*, std::string> slot_masks;  // mask data pointer -> slot name
  int depth = 0;      // linear operators now running: only the outermost one counts
  std::string error;  // callbacks run inside the dispatcher: report after the forward pass
};

inline mac_recording*& current_recording() {
  thread_local mac_recording* recording = nullptr;
  return recording;
}

inline std::string name_of(const std::unordered_map<const void*, std::string>& names,
                           c10::ArrayRef<const c10::IValue> in, size_t i) {
  if (i >= in.size() || !in[i].isTensor() || !in[i].toTensor().defined()) return {};
  const auto found = names.find(in[i].toTensor().data_ptr());
  return found == names.end() ? std::string() : found->second;
}

inline std::unique_ptr<at::ObserverContext> on_op_start(const at::RecordFunction& fn) {
  auto* rec = current_recording();
  if (rec == nullptr) return nullptr;
  if (std::string_view(fn.name()) == ReluSlotImpl::record_name) {
    if (rec->depth == 0) rec->result.slots.push_back(name_of(rec->slot_masks, fn.inputs(), 1));
    return nullptr;
  }
  if (!is_linear_op(fn.name())) return nullptr;
  auto ctx = std::make_unique<mac_observer>();
  ctx->outermost = rec->depth == 0;
  if (ctx->outermost) {
    // The module: the owner of the first parameter among the inputs (conv2d and linear take the
    // weight second, addmm takes the bias first and the transposed weight third).
    std::string weight;
    for (size_t i = 0; i < fn.inputs().size() && weight.empty(); ++i) weight = name_of(rec->parameters, fn.inputs(), i);
    ctx->module = weight.substr(0, weight.rfind('.') == std::string::npos ? 0 : weight.rfind('.'));
    ctx->slots_before = static_cast<int64_t>(rec->result.slots.size());
    try {
      ctx->rule = rule_for(fn.name(), fn.inputs());
    } catch (const std::exception& e) {
      if (rec->error.empty()) rec->error = e.what();
    }
  }
  ++rec->depth;
  return ctx;
}

inline void on_op_end(const at::RecordFunction& fn, at::ObserverContext* base) {
  auto* rec = current_recording();
  auto* ctx = static_cast<mac_observer*>(base);
  if (rec == nullptr || ctx == nullptr) return;
  --rec->depth;
  if (!ctx->outermost) return;
  const auto& outputs = fn.outputs();
  if (outputs.empty() || !outputs[0].isTensor()) return;
  const auto out = outputs[0].toTensor();
  const int64_t elements = ctx->rule.per_input_element ? ctx->rule.input_elements : out.numel();
  rec->result.ops.push_back({fn.name(), out.sizes().vec(), elements * ctx->rule.per_element,
                             ctx->module, ctx->slots_before});
}

// Installs the observer for its lifetime; nested recordings are refused.
class mac_recording_scope {
 public:
  explicit mac_recording_scope(mac_recording& rec) {
    require(current_recording() == nullptr, "count_macs: already counting on this thread (nested call)");
    current_recording() = &rec;
    handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&on_op_start, &on_op_end)
                                             .needsInputs(true)
                                             .needsOutputs(true)
                                             .scopes({at::RecordScope::FUNCTION, at::RecordScope::USER_SCOPE}));
  }
  ~mac_recording_scope() {
    at::removeCallback(handle_);
    current_recording() = nullptr;
  }
  mac_recording_scope(const mac_recording_scope&) = delete;
  mac_recording_scope& operator=(const mac_recording_scope&) = delete;

 private:
  at::RecordFunctionGuard enabled_{true};
  at::CallbackHandle handle_{};
};

template <class Forward>
[[nodiscard]] mac_count count_with(Forward&& forward, mac_recording rec) {
  {
    mac_recording_scope scope(rec);
    std::forward<Forward>(forward)();
  }
  require(rec.error.empty(), rec.error);
  return std::move(rec.result);
}
}  // namespace detail

/// Runs `forward()` once and counts the MACs of the linear operators it calls (counts are for
/// whatever batch it runs). An operator called inside another (linear -> addmm) counts once.
template <class Forward>
[[nodiscard]] mac_count count_macs_of(Forward&& forward) {
  return detail::count_with(std::forward<Forward>(forward), {});
}

/// MACs of `net`'s linear layers for one sample of shape `sample_shape` (e.g. {3, 32, 32}):
/// one forward pass on a batch of one zero image, in eval mode and without gradients (BatchNorm
/// statistics are untouched); the module's training flag is restored afterwards.
template <class Module>
[[nodiscard]] mac_count count_macs(Module& net, const std::vector<int64_t>& sample_shape) {
  auto& impl = [&]() -> auto& {
    if constexpr (requires { net.ptr(); }) return *net;   // ModuleHolder (TORCH_MODULE)
    else if constexpr (requires { net.get(); }) return *net;  // std::shared_ptr
    else return net;
  }();
  require(!sample_shape.empty(), "count_macs: empty sample shape; expected e.g. {3, 32, 32}");
  for (int64_t d : sample_shape)
    require(d > 0, "count_macs: sample shape has dimension ", d, "; expected all > 0");
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  const bool was_training = impl.is_training();
  torch::Device device = torch::kCPU;
  for (const auto& p : impl.parameters()) {
    device = p.device();
    break;
  }
  const auto input = torch::zeros(shape, torch::TensorOptions().device(device));
  // Names for the report: which module each weight belongs to, which slot each mask.
  detail::mac_recording names;
  for (const auto& p : impl.named_parameters(true)) names.parameters[p.value().data_ptr()] = p.key();
  for (const auto& m : impl.named_modules("", /*include_self=*/false))
    if (auto slot = std::dynamic_pointer_cast<ReluSlotImpl>(m.value()); slot && slot->materialized())
      names.slot_masks[slot->mask().data_ptr()] = m.key();
  impl.eval();
  try {
    torch::NoGradGuard no_grad;
    auto counted = detail::count_with([&] { (void)impl.forward(input); }, std::move(names));
    impl.train(was_training);
    return counted;
  } catch (...) {
    impl.train(was_training);
    throw;
  }
}

}  // namespace linearize::pi
