#pragma once
// Records a network's forward pass as a PI graph (pi_graph.hpp): run it once on a sample batch
// and note, in order, every ATen operator it calls at the top level and every ReLU slot, with
// the tensors that flow between them.
//
// Why a trace of ATen operators. A general exporter needs the computation graph of any network
// built from torch modules, the zoo's and a user's own, and LibTorch's C++ modules keep none:
// they have no forward hooks, and torch::jit::tracer (the C++ core of Python's torch.jit.trace)
// records the operators *inside* a ReLU slot, where the fused kernel writes raw memory that no
// operator shows, so the graph it gave would be silently wrong; torch.onnx's conversion from a
// JIT graph is Python. A per-model exporter, or models calling through a recorder, would bind
// every network, users' included, to the exporter. What every module does go through is the
// ATen dispatcher, which reports each operator call with its inputs and outputs to
// RecordFunction observers (the profiler's mechanism; pi/mac_count.hpp counts MACs with it), and
// a ReluSlot announces itself to the same observers as one step (core/relu_slot.hpp). So a
// thread-local observer sees conv2d, batch_norm, linear, add, pooling, reshapes and slots in the
// order they run, whichever module calls them; tensors are matched by identity to make the
// dataflow; weights are found among the network's parameters, which also names their module.
//
// What it cannot express it refuses with a linearize::error naming the operator and its module
// (or the last module before it): an operator outside the supported list below, a plain ReLU
// outside a slot (its ReLUs would run in PI uncounted), a slot with a soft gate or a replacement
// other than the identity or linearize::Polynomial, in-place arithmetic, a tensor the trace did
// not see being made (a constant built in forward(), raw-memory tricks), BatchNorm without
// running statistics. Supported: aten::conv2d, batch_norm (eval), linear (and what LibTorch's
// C++ Linear calls instead: t of its weight, then addmm, or matmul and an in-place += of its
// bias), add (two tensors, alpha 1), adaptive_avg_pool2d (to 1x1 or an even division),
// avg_pool2d, max_pool2d, mean over the spatial dimensions, flatten, view / reshape (batch
// kept), and, as the identity, dropout in eval mode, contiguous, clone and detach. Control flow that depends on data is recorded for the
// sample it ran on only; export_for_pi (pi_export.hpp) checks the graph against the network on
// fresh inputs.
#include <linearize/core/granularity.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/io/pi_graph.hpp>
#include <linearize/support/error.hpp>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace linearize::io {

namespace detail::trace {

struct event {
  std::string op;                   // "aten::conv2d", ReluSlotImpl::record_name, ...
  std::vector<c10::IValue> inputs;  // holding the tensors keeps their identities unique
  std::vector<c10::IValue> outputs;
};

struct recording {
  std::vector<event> events;
  int depth = 0;  // operators now running: only the outermost ones are the network's steps
};

inline recording*& current() {
  thread_local recording* r = nullptr;
  return r;
}

struct observer : at::ObserverContext {
  int64_t index = -1;
};

inline std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  auto* rec = current();
  if (rec == nullptr) return nullptr;
  auto ctx = std::make_unique<observer>();
  if (rec->depth == 0) {
    ctx->index = static_cast<int64_t>(rec->events.size());
    const auto in = fn.inputs();
    rec->events.push_back({fn.name(), std::vector<c10::IValue>(in.begin(), in.end()), {}});
  }
  ++rec->depth;
  return ctx;
}

inline void on_end(const at::RecordFunction& fn, at::ObserverContext* base) {
  auto* rec = current();
  auto* ctx = static_cast<observer*>(base);
  if (rec == nullptr || ctx == nullptr) return;
  --rec->depth;
  if (ctx->index >= 0) rec->events[static_cast<size_t>(ctx->index)].outputs = fn.outputs();
}

// Installs the observer for its lifetime, on this thread only.
class recording_scope {
 public:
  explicit recording_scope(recording& rec) {
    require(current() == nullptr, "trace_for_pi: already tracing on this thread (nested call)");
    current() = &rec;
    handle_ = at::addThreadLocalCallback(
        at::RecordFunctionCallback(&on_start, &on_end)
            .needsInputs(true)
            .needsOutputs(true)
            .scopes({at::RecordScope::FUNCTION, at::RecordScope::USER_SCOPE}));
  }
  ~recording_scope() {
    at::removeCallback(handle_);
    current() = nullptr;
  }
  recording_scope(const recording_scope&) = delete;
  recording_scope& operator=(const recording_scope&) = delete;

 private:
  at::RecordFunctionGuard enabled_{true};
  at::CallbackHandle handle_{};
};

inline constexpr const char* supported =
    "conv2d, batch_norm (eval mode), linear (also as t + addmm or matmul + add_), add of two "
    "tensors, ReLU slots, avg_pool2d, "
    "max_pool2d, adaptive_avg_pool2d, mean over H and W, flatten, view/reshape, and dropout "
    "(eval), contiguous, clone, detach as the identity";

inline std::string module_of(const std::string& parameter) {
  const auto dot = parameter.rfind('.');
  return dot == std::string::npos ? std::string("(top level)") : parameter.substr(0, dot);
}

/// Turns the recorded events into graph nodes.
class builder {
 public:
  builder(const torch::nn::Module& net, std::string network, const torch::Tensor& input)
      : network_(std::move(network)), batch_(input.size(0)) {
    for (const auto& p : net.named_parameters(true)) parameters_[p.value().data_ptr()] = p.key();
    for (const auto& b : net.named_buffers(true)) parameters_[b.value().data_ptr()] = b.key();
    for (const auto& m : net.named_modules("", /*include_self=*/false))
      if (auto slot = std::dynamic_pointer_cast<ReluSlotImpl>(m.value())) {
        require(slot->materialized(), "trace_for_pi: slot '", m.key(),
                "' does not know its activation shape; give slot_options::shape or run one "
                "forward pass first");
        slots_[slot->mask().data_ptr()] = {m.key(), slot};
      }
    graph_.network = network_;
    graph_.shapes.push_back(per_sample(input));
    values_[input.unsafeGetTensorImpl()] = 0;
  }

  void add(const event& e) {
    const std::string& op = e.op;
    if (op == ReluSlotImpl::record_name) return add_slot(e);
    if (op == "aten::conv2d") return add_conv(e);
    if (op == "aten::batch_norm") return add_batch_norm(e);
    if (op == "aten::linear") return add_linear(e);
    // LibTorch's C++ Linear: addmm(bias, x, weight.t()) for 2-d input with a bias, else
    // matmul(x, weight.t()) and an in-place `+= bias`.
    if (op == "aten::t") return add_transpose(e);
    if (op == "aten::addmm") return add_addmm(e);
    if (op == "aten::matmul") return add_matmul(e);
    if (op == "aten::add_") return add_bias_in_place(e);
    if (op == "aten::add") return add_sum(e);
    if (op == "aten::adaptive_avg_pool2d") return add_adaptive_pool(e);
    if (op == "aten::avg_pool2d") return add_avg_pool(e);
    if (op == "aten::max_pool2d") return add_max_pool(e);
    if (op == "aten::mean") return add_mean(e);
    if (op == "aten::flatten") return add_flatten(e);
    if (op == "aten::view" || op == "aten::reshape") return add_reshape(e);
    if (op == "aten::dropout" || op == "aten::feature_dropout" || op == "aten::alpha_dropout") {
      require(e.inputs.size() >= 3 && e.inputs[2].isBool() && !e.inputs[2].toBool(), where(e),
              " runs in training mode; expected eval mode (the export calls eval())");
      return alias(e);
    }
    if (op == "aten::contiguous" || op == "aten::clone" || op == "aten::detach") return alias(e);
    if (op == "aten::relu" || op == "aten::relu_" || op == "aten::clamp_min" ||
        op == "aten::threshold")
      fail("pi export of ", network_, ": ", where(e), " is a ReLU outside a linearize::ReluSlot; ",
           "private inference would evaluate its ReLUs with no mask counting them. Make it a "
           "ReluSlot (models/layers.hpp: slot()) so that it can be linearized and counted");
    if (!op.empty() && op.back() == '_')
      fail("pi export of ", network_, ": ", where(e), " works in place; the export follows values, "
           "not memory: write the out-of-place form (y = a + b, not a += b)");
    fail("pi export of ", network_, ": ", where(e), " cannot be expressed in a PI graph; supported: ",
         supported);
  }

  pi_graph finish(const torch::Tensor& output) {
    const auto found = values_.find(output.unsafeGetTensorImpl());
    require(found != values_.end(), "pi export of ", network_, ": the forward pass returned a tensor "
            "that no recorded operation computed (made from raw memory, or a constant); expected "
            "the result of the network's layers");
    graph_.output = found->second;
    prune();
    validate(graph_);
    return std::move(graph_);
  }

 private:
  // ---- values ----------------------------------------------------------------------------------
  [[nodiscard]] std::vector<int64_t> per_sample(const torch::Tensor& t) const {
    return std::vector<int64_t>(t.sizes().begin() + 1, t.sizes().end());
  }

  // Names the operator and, when it has a parameter, its module; else the node before it.
  [[nodiscard]] std::string where(const event& e) const {
    for (const auto& v : e.inputs)
      if (v.isTensor() && v.toTensor().defined())
        if (auto p = parameters_.find(v.toTensor().data_ptr()); p != parameters_.end())
          return linearize::detail::concat("module '", module_of(p->second), "' (", e.op, ")");
    return linearize::detail::concat("operator ", e.op, " (after ",
                                     graph_.nodes.empty() ? std::string("the input")
                                                          : "'" + graph_.nodes.back().name + "'",
                                     ")");
  }

  int value(const event& e, size_t i) {
    require(i < e.inputs.size() && e.inputs[i].isTensor(), "pi export of ", network_, ": ",
            where(e), " has no tensor operand ", i, "; expected one");
    const auto& t = e.inputs[i].toTensor();
    if (auto v = values_.find(t.unsafeGetTensorImpl()); v != values_.end()) {
      ++readers_[v->second];
      return v->second;
    }
    if (auto p = parameters_.find(t.data_ptr()); p != parameters_.end())
      fail("pi export of ", network_, ": ", where(e), " uses the network's tensor '", p->second,
           "' as an operand; the export reads parameters only as weights of conv2d, linear and "
           "batch_norm");
    fail("pi export of ", network_, ": ", where(e), " reads a tensor that no recorded operation "
         "computed (a constant made in forward(), or raw memory); expected the input or a layer's "
         "result");
  }

  [[nodiscard]] std::pair<std::string, torch::Tensor> parameter(const event& e, size_t i,
                                                                std::string_view role) const {
    require(i < e.inputs.size() && e.inputs[i].isTensor(), "pi export of ", network_, ": ", where(e),
            " has no ", role, "; expected a tensor");
    const auto& t = e.inputs[i].toTensor();
    const auto p = parameters_.find(t.data_ptr());
    require(p != parameters_.end(), "pi export of ", network_, ": ", where(e), " takes its ", role,
            " from a tensor that is not a parameter or buffer of the network; expected the "
            "module's own");
    return {p->second, t.detach().to(torch::kCPU, torch::kFloat).clone()};
  }

  [[nodiscard]] torch::Tensor optional_parameter(const event& e, size_t i, std::string_view role) const {
    if (i >= e.inputs.size() || e.inputs[i].isNone()) return {};
    if (e.inputs[i].isTensor() && !e.inputs[i].toTensor().defined()) return {};
    return parameter(e, i, role).second;
  }

  int new_value(const event& e, size_t output = 0) {
    require(output < e.outputs.size() && e.outputs[output].isTensor(), "pi export of ", network_,
            ": ", where(e), " returned no tensor");
    const auto& t = e.outputs[output].toTensor();
    require(t.dim() >= 1 && t.size(0) == batch_, "pi export of ", network_, ": ", where(e),
            " returned shape ", t.sizes(), ", which mixes the batch dimension of ", batch_,
            " samples; expected every sample computed alone");
    const int id = graph_.values();
    graph_.shapes.push_back(per_sample(t));
    values_[t.unsafeGetTensorImpl()] = id;
    return id;
  }

  [[nodiscard]] std::string next_name(const std::string& kind) {
    return kind + "_" + std::to_string(++counters_[kind]);
  }

  void push(pi_node node, const event& e) {
    node.output = new_value(e);
    producer_[node.output] = graph_.nodes.size();
    graph_.nodes.push_back(std::move(node));
  }

  void alias(const event& e) {
    const int v = value(e, 0);
    require(!e.outputs.empty() && e.outputs[0].isTensor(), "pi export of ", network_, ": ", where(e),
            " returned no tensor");
    values_[e.outputs[0].toTensor().unsafeGetTensorImpl()] = v;
  }

  [[nodiscard]] static std::vector<int64_t> pair_of(const c10::IValue& v, std::string_view what,
                                                    const std::string& at) {
    require(v.isIntList(), at, ": ", what, " is not a list of integers");
    auto list = v.toIntVector();
    if (list.size() == 1) list.push_back(list[0]);
    require(list.size() == 2, at, ": ", what, " has ", list.size(), " values; expected 2 (2-d)");
    return list;
  }

  [[nodiscard]] const std::vector<int64_t>& shape(int v) const {
    return graph_.shapes[static_cast<size_t>(v)];
  }

  // ---- operators ---------------------------------------------------------------------------------
  void add_slot(const event& e) {
    require(e.inputs.size() == 2 && e.inputs[1].isTensor(), "pi export: malformed slot record");
    const auto found = slots_.find(e.inputs[1].toTensor().data_ptr());
    require(found != slots_.end(), "pi export of ", network_, ": a ReluSlot ran that is not a "
            "submodule of the network; expected every slot registered (register_module)");
    const auto& [name, slot] = found->second;
    pi_node n{.op = pi_op::slot, .name = name, .inputs = {value(e, 0)}};
    const auto gate = slot->gate().detach().to(torch::kCPU, torch::kDouble);
    const auto soft = gate.ne(0).logical_and(gate.ne(1));
    if (soft.any().item<bool>())
      fail("pi export of ", network_, ": slot '", name, "' has a soft gate (e.g. ",
           gate.masked_select(soft)[0].item<double>(), "); a PI framework either evaluates a ReLU "
           "or not. Harden the mask first (MaskSet::harden, ReluSlotImpl::harden_above), and "
           "clear a relaxation's gate");
    const auto& s = slot->options.shape;
    std::vector<int64_t> gate_view(s.size(), 1);
    if (slot->options.grain == granularity::element) gate_view = s;
    if (slot->options.grain == granularity::channel) gate_view[0] = s[0];
    const auto kept = gate.view(gate_view).expand(s).reshape({-1}).ne(0);
    n.relu_positions = kept.nonzero().view({-1}).to(torch::kLong).contiguous();
    n.polynomial_positions = torch::empty({0}, torch::kLong);
    const auto linearized = kept.logical_not().nonzero().view({-1}).to(torch::kLong).contiguous();
    if (linearized.numel() > 0 && slot->has_replacement()) {
      const auto poly = slot->replacement_as<PolynomialImpl>();
      require(poly != nullptr, "pi export of ", network_, ": slot '", name,
              "' replaces its linearized ReLUs by ",
              slot->replacement() ? slot->replacement()->name() : std::string("a module"),
              ", which the export cannot express; expected the identity or linearize::Polynomial");
      n.polynomial_positions = linearized;
      const auto coefficients = [](const torch::Tensor& c) {
        return c.detach().to(torch::kCPU, torch::kFloat).reshape({-1}).clone();
      };
      n.c2 = coefficients(poly->c2);
      n.c1 = coefficients(poly->c1);
      n.c0 = coefficients(poly->c0);
    }
    push(std::move(n), e);
  }

  void add_conv(const event& e) {
    // conv2d(input, weight, bias, stride, padding, dilation, groups)
    require(e.inputs.size() == 7, "pi export of ", network_, ": ", where(e), " has ", e.inputs.size(),
            " operands; expected 7");
    auto [weight_name, weight] = parameter(e, 1, "weight");
    const std::string at = "pi export of " + network_ + ": module '" + module_of(weight_name) + "' (conv2d)";
    require(weight.dim() == 4, at, ": weight of shape ", weight.sizes(), "; expected 4 dimensions");
    pi_node n{.op = pi_op::conv, .name = module_of(weight_name), .inputs = {value(e, 0)}};
    n.kernel = {weight.size(2), weight.size(3)};
    n.stride = pair_of(e.inputs[3], "stride", at);
    n.dilation = pair_of(e.inputs[5], "dilation", at);
    if (e.inputs[4].isString()) {  // conv2d's padding="valid" / "same" overload
      const auto mode = e.inputs[4].toStringRef();
      n.padding = {0, 0};
      if (mode == "same")
        for (size_t d = 0; d < 2; ++d) {
          const int64_t total = n.dilation[d] * (n.kernel[d] - 1);
          require(total % 2 == 0, at, ": padding 'same' with an even kernel pads unevenly; ",
                  "expected an odd kernel or explicit padding");
          n.padding[d] = total / 2;
        }
      else
        require(mode == "valid", at, ": padding '", mode, "'; expected 'valid', 'same' or numbers");
    } else {
      n.padding = pair_of(e.inputs[4], "padding", at);
    }
    require(e.inputs[6].isInt(), at, ": groups is not an integer");
    n.groups = e.inputs[6].toInt();
    n.weight = std::move(weight);
    n.bias = optional_parameter(e, 2, "bias");
    push(std::move(n), e);
  }

  void add_batch_norm(const event& e) {
    // batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
    require(e.inputs.size() == 9, "pi export of ", network_, ": ", where(e), " has ",
            e.inputs.size(), " operands; expected 9");
    const bool stats = e.inputs[3].isTensor() && e.inputs[3].toTensor().defined() &&
                       e.inputs[4].isTensor() && e.inputs[4].toTensor().defined();
    require(stats && !e.inputs[5].toBool(), "pi export of ", network_, ": ", where(e),
            " normalizes by each batch's own statistics (no running statistics, or training "
            "mode); a fixed graph cannot; expected BatchNorm with track_running_stats in eval mode");
    auto [mean_name, mean] = parameter(e, 3, "running mean");
    const auto var = parameter(e, 4, "running variance").second.to(torch::kDouble);
    const double eps = e.inputs[7].toDouble();
    auto gamma = optional_parameter(e, 1, "weight");
    auto beta = optional_parameter(e, 2, "bias");
    if (!gamma.defined()) gamma = torch::ones_like(mean);
    if (!beta.defined()) beta = torch::zeros_like(mean);
    const auto scale = gamma.to(torch::kDouble) / (var + eps).sqrt();
    const auto shift = beta.to(torch::kDouble) - mean.to(torch::kDouble) * scale;
    pi_node n{.op = pi_op::affine, .name = module_of(mean_name), .inputs = {value(e, 0)}};
    require(shape(n.inputs[0]).size() >= 1 && shape(n.inputs[0])[0] == mean.numel(), "pi export of ",
            network_, ": ", where(e), " has ", mean.numel(), " channels for an input of channels ",
            shape(n.inputs[0]).empty() ? 0 : shape(n.inputs[0])[0]);
    n.weight = scale.to(torch::kFloat);
    n.bias = shift.to(torch::kFloat);
    push(std::move(n), e);
  }

  void add_linear(const event& e) {
    auto [weight_name, weight] = parameter(e, 1, "weight");
    pi_node n{.op = pi_op::gemm, .name = module_of(weight_name), .inputs = {value(e, 0)}};
    require(weight.dim() == 2, "pi export of ", network_, ": ", where(e), ": weight of shape ",
            weight.sizes(), "; expected [out, in]");
    n.weight = std::move(weight);
    n.bias = optional_parameter(e, 2, "bias");
    push(std::move(n), e);
  }

  // A weight as a matrix product uses it: weight.t() of a parameter (recorded by add_transpose),
  // or a parameter [in, out] itself; returned as [out, in].
  [[nodiscard]] std::pair<std::string, torch::Tensor> matrix_weight(const event& e, size_t i) const {
    require(i < e.inputs.size() && e.inputs[i].isTensor(), "pi export of ", network_, ": ", where(e),
            " has no matrix operand ", i);
    const auto& t = e.inputs[i].toTensor();
    if (auto found = transposed_.find(t.unsafeGetTensorImpl()); found != transposed_.end())
      return found->second;
    auto [name, w] = parameter(e, i, "weight matrix");
    return {name, w.t().contiguous()};
  }

  void add_transpose(const event& e) {
    const auto& t = e.inputs.at(0).toTensor();
    const auto p = parameters_.find(t.data_ptr());
    require(p != parameters_.end() && t.dim() == 2, "pi export of ", network_, ": ", where(e),
            " transposes an activation; the export supports the transpose of a weight matrix only");
    transposed_[e.outputs.at(0).toTensor().unsafeGetTensorImpl()] = {
        p->second, t.detach().to(torch::kCPU, torch::kFloat).clone()};
  }

  void add_addmm(const event& e) {
    // addmm(self = bias, mat1 = x, mat2 = weight^T, beta, alpha)
    require(e.inputs.size() == 5 && e.inputs[3].toScalar().toDouble() == 1.0 &&
                e.inputs[4].toScalar().toDouble() == 1.0,
            "pi export of ", network_, ": ", where(e), " scales its terms (beta, alpha); expected 1");
    auto [name, weight] = matrix_weight(e, 2);
    pi_node n{.op = pi_op::gemm, .name = module_of(name), .inputs = {value(e, 1)}};
    auto bias = parameter(e, 0, "bias").second.reshape({-1});
    require(bias.numel() == weight.size(0), "pi export of ", network_, ": ", where(e), " adds ",
            bias.numel(), " biases to ", weight.size(0), " outputs");
    n.weight = std::move(weight);
    n.bias = std::move(bias);
    push(std::move(n), e);
  }

  void add_matmul(const event& e) {
    auto [name, weight] = matrix_weight(e, 1);
    push({.op = pi_op::gemm, .name = module_of(name), .inputs = {value(e, 0)}, .weight = std::move(weight)}, e);
  }

  // `y += bias` on the fresh output of a matrix product without bias (LibTorch's Linear on
  // inputs of more than 2 dimensions): the bias joins that node. Anything else in place is refused.
  void add_bias_in_place(const event& e) {
    const auto& self = e.inputs.at(0).toTensor();
    const auto v = values_.find(self.unsafeGetTensorImpl());
    const auto p = v == values_.end() ? producer_.end() : producer_.find(v->second);
    const bool fresh_product = p != producer_.end() && graph_.nodes[p->second].op == pi_op::gemm &&
                               !graph_.nodes[p->second].bias.defined() && readers_[v->second] == 0;
    if (!fresh_product || e.inputs.size() < 2 || !e.inputs[1].isTensor() ||
        parameters_.find(e.inputs[1].toTensor().data_ptr()) == parameters_.end())
      fail("pi export of ", network_, ": ", where(e), " works in place; the export follows values, "
           "not memory: write the out-of-place form (y = a + b, not a += b)");
    require(e.inputs.size() == 3 && e.inputs[2].toScalar().toDouble() == 1.0, "pi export of ",
            network_, ": ", where(e), " scales the bias (alpha); expected 1");
    auto& node = graph_.nodes[p->second];
    auto bias = parameter(e, 1, "bias").second.reshape({-1});
    require(bias.numel() == node.weight.size(0), "pi export of ", network_, ": ", where(e), " adds ",
            bias.numel(), " biases to ", node.weight.size(0), " outputs");
    node.bias = std::move(bias);
  }

  void add_sum(const event& e) {
    require(e.inputs.size() == 3 && e.inputs[1].isTensor(), "pi export of ", network_, ": ",
            where(e), " adds a number to a tensor; expected the sum of two tensors");
    require(e.inputs[2].toScalar().toDouble() == 1.0, "pi export of ", network_, ": ", where(e),
            " scales its second operand (alpha ", e.inputs[2].toScalar().toDouble(), "); expected 1");
    pi_node n{.op = pi_op::add, .name = next_name("add"), .inputs = {value(e, 0), value(e, 1)}};
    require(shape(n.inputs[0]) == shape(n.inputs[1]), "pi export of ", network_, ": ", where(e),
            " adds shapes ", detail::shape_text(shape(n.inputs[0])), " and ",
            detail::shape_text(shape(n.inputs[1])), "; expected equal shapes (no broadcasting)");
    push(std::move(n), e);
  }

  void add_adaptive_pool(const event& e) {
    const int in = value(e, 0);
    const auto& s = shape(in);
    const std::string at = "pi export of " + network_ + ": " + where(e);
    require(s.size() == 3, at, ": input ", detail::shape_text(s), "; expected [C, H, W]");
    const auto size = pair_of(e.inputs[1], "output size", at);
    if (size[0] == 1 && size[1] == 1)
      return push({.op = pi_op::global_avg_pool, .name = next_name("global_avg_pool"), .inputs = {in}}, e);
    require(s[1] % size[0] == 0 && s[2] % size[1] == 0, at, ": ", s[1], "x", s[2], " to ", size[0],
            "x", size[1], " is not an even division; expected an output size that divides the input");
    const std::vector<int64_t> k{s[1] / size[0], s[2] / size[1]};
    push({.op = pi_op::avg_pool, .name = next_name("avg_pool"), .inputs = {in}, .kernel = k,
          .stride = k, .padding = {0, 0}},
         e);
  }

  void add_avg_pool(const event& e) {
    // avg_pool2d(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    const std::string at = "pi export of " + network_ + ": " + where(e);
    require(e.inputs.size() == 7 && e.inputs[6].isNone(), at, ": divisor_override is not supported");
    pi_node n{.op = pi_op::avg_pool, .name = next_name("avg_pool"), .inputs = {value(e, 0)}};
    n.kernel = pair_of(e.inputs[1], "kernel size", at);
    n.stride = e.inputs[2].toIntVector().empty() ? n.kernel : pair_of(e.inputs[2], "stride", at);
    n.padding = pair_of(e.inputs[3], "padding", at);
    n.ceil_mode = e.inputs[4].toBool();
    n.count_include_pad = e.inputs[5].toBool();
    push(std::move(n), e);
  }

  void add_max_pool(const event& e) {
    // max_pool2d(self, kernel_size, stride, padding, dilation, ceil_mode)
    const std::string at = "pi export of " + network_ + ": " + where(e);
    require(e.inputs.size() == 6, at, ": expected 6 operands");
    pi_node n{.op = pi_op::max_pool, .name = next_name("max_pool"), .inputs = {value(e, 0)}};
    n.kernel = pair_of(e.inputs[1], "kernel size", at);
    n.stride = e.inputs[2].toIntVector().empty() ? n.kernel : pair_of(e.inputs[2], "stride", at);
    n.padding = pair_of(e.inputs[3], "padding", at);
    n.dilation = pair_of(e.inputs[4], "dilation", at);
    n.ceil_mode = e.inputs[5].toBool();
    push(std::move(n), e);
  }

  void add_mean(const event& e) {
    // mean.dim(self, dim, keepdim, dtype): the spatial mean of [N, C, H, W] only
    const std::string at = "pi export of " + network_ + ": " + where(e);
    const int in = value(e, 0);
    const auto rank = static_cast<int64_t>(shape(in).size()) + 1;
    require(e.inputs.size() >= 3 && e.inputs[1].isIntList() && rank == 4, at,
            ": expected the mean over H and W of [N, C, H, W]");
    auto dims = e.inputs[1].toIntVector();
    for (auto& d : dims) d = d < 0 ? d + rank : d;
    std::sort(dims.begin(), dims.end());
    require(dims == std::vector<int64_t>{2, 3}, at, ": mean over dimensions other than H and W");
    pi_node pool{.op = pi_op::global_avg_pool, .name = next_name("global_avg_pool"), .inputs = {in}};
    if (e.inputs[2].toBool()) return push(std::move(pool), e);
    // mean without keepdim: pool to [C, 1, 1], then flatten to [C]
    pool.output = graph_.values();
    graph_.shapes.push_back({shape(in)[0], 1, 1});
    graph_.nodes.push_back(pool);
    push({.op = pi_op::flatten, .name = next_name("flatten"), .inputs = {pool.output}}, e);
  }

  void add_flatten(const event& e) {
    const int in = value(e, 0);
    const auto rank = static_cast<int64_t>(shape(in).size()) + 1;
    auto start = e.inputs[1].toInt(), end = e.inputs[2].toInt();
    start = start < 0 ? start + rank : start;
    end = end < 0 ? end + rank : end;
    require(start >= 1, "pi export of ", network_, ": ", where(e),
            " flattens the batch dimension into the samples; expected start_dim >= 1");
    const bool whole = start == 1 && end == rank - 1;
    push({.op = whole ? pi_op::flatten : pi_op::reshape, .name = next_name(whole ? "flatten" : "reshape"),
          .inputs = {in}},
         e);
  }

  void add_reshape(const event& e) {
    push({.op = pi_op::reshape, .name = next_name("reshape"), .inputs = {value(e, 0)}}, e);
  }

  // Keeps the nodes the output depends on (a forward pass may compute things it discards).
  void prune() {
    std::vector<bool> needed(static_cast<size_t>(graph_.values()), false);
    needed[static_cast<size_t>(graph_.output)] = true;
    std::vector<pi_node> kept;
    for (auto it = graph_.nodes.rbegin(); it != graph_.nodes.rend(); ++it) {
      if (!needed[static_cast<size_t>(it->output)]) continue;
      for (int v : it->inputs) needed[static_cast<size_t>(v)] = true;
      kept.push_back(std::move(*it));
    }
    graph_.nodes.assign(std::make_move_iterator(kept.rbegin()), std::make_move_iterator(kept.rend()));
  }

  std::string network_;
  int64_t batch_;
  pi_graph graph_;
  std::unordered_map<const c10::TensorImpl*, int> values_;
  std::unordered_map<const void*, std::string> parameters_;
  std::unordered_map<const void*, std::pair<std::string, std::shared_ptr<ReluSlotImpl>>> slots_;
  // weight.t() of a parameter: its name and the weight as [out, in]
  std::unordered_map<const c10::TensorImpl*, std::pair<std::string, torch::Tensor>> transposed_;
  std::unordered_map<int, size_t> producer_;  // value id -> index of the node computing it
  std::unordered_map<int, int> readers_;      // value id -> operations that read it so far
  std::map<std::string, int> counters_;
};

template <class Module>
auto& module_of_holder(Module& net) {
  if constexpr (requires { net.ptr(); }) return *net;        // ModuleHolder (TORCH_MODULE)
  else if constexpr (requires { net.get(); }) return *net;   // std::shared_ptr
  else return net;
}

}  // namespace detail::trace

/// Runs `net`'s forward pass once on `input` ([batch, sample shape...]) in eval mode without
/// gradients, and returns what it computed as a PI graph (BatchNorm still apart, identity slots
/// still present: see fold() in pi_fold.hpp). Every slot must have a hard (0/1) mask. The
/// module's training flag is restored afterwards.
template <class Module>
[[nodiscard]] pi_graph trace_for_pi(Module& net, const torch::Tensor& input) {
  auto& impl = detail::trace::module_of_holder(net);
  require(input.dim() >= 2 && input.size(0) >= 1, "trace_for_pi: input of shape ", input.sizes(),
          "; expected [batch, sample dimensions...]");
  std::string name = impl.name();
  if constexpr (requires { impl.describe(); }) name = impl.describe();
  const bool was_training = impl.is_training();
  impl.eval();
  try {
    torch::NoGradGuard no_grad;
    detail::trace::builder build(impl, name, input);
    detail::trace::recording rec;
    torch::Tensor output;
    {
      detail::trace::recording_scope scope(rec);
      output = impl.forward(input);
    }
    for (const auto& e : rec.events) build.add(e);
    auto graph = build.finish(output);
    impl.train(was_training);
    return graph;
  } catch (...) {
    impl.train(was_training);
    throw;
  }
}

}  // namespace linearize::io
