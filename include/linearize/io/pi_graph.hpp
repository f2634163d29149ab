#pragma once
// The network a private-inference (PI) framework runs once linearization is done: a small
// dataflow graph of the operations PI protocols implement (convolution, fully connected layer,
// per-channel affine, addition, pooling, reshapes) and of ReLU slots reduced to what they
// evaluate: ReLU at the kept positions, the slot's polynomial at polynomial positions, the
// identity everywhere else. A masked network (relu(x)*m + x*(1-m)) still evaluates every ReLU;
// this graph names the positions that need one, so that the framework evaluates only those.
//
// io/pi_trace.hpp records it from a network, io/pi_fold.hpp folds BatchNorm into convolutions and
// drops slots that compute the identity, io/onnx_export.hpp and io/pi_manifest.hpp write it.
// evaluate() runs it with LibTorch: it states the semantics every writer must keep, and the
// export checks with it that the graph reproduces the network.
//
// Values are numbered; value 0 is the network's input. Shapes are per sample (no batch
// dimension): the batch is free. Nodes are in an order where every input is computed before use.
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

namespace linearize::io {

/// What a node computes (x: its first input, y: its output).
enum class pi_op {
  conv,             ///< y = conv2d(x, weight, bias; stride, padding, dilation, groups)
  gemm,             ///< y = x weight^T + bias (weight [out, in]; acts on x's last dimension)
  affine,           ///< y = x * weight[c] + bias[c] per channel c (dimension 1): BatchNorm kept apart
  add,              ///< y = x + inputs[1] (same shape)
  slot,             ///< ReLU at relu_positions, polynomial at polynomial_positions, else y = x
  avg_pool,         ///< 2-d average pooling (kernel, stride, padding, ceil_mode, count_include_pad)
  max_pool,         ///< 2-d max pooling (kernel, stride, padding, dilation, ceil_mode)
  global_avg_pool,  ///< mean over every dimension after the channels, kept as size 1
  flatten,          ///< [N, d1, d2, ...] -> [N, d1 * d2 * ...]
  reshape,          ///< to the per-sample shape of the output value (same number of elements)
};

inline constexpr pi_op all_pi_ops[] = {pi_op::conv,     pi_op::gemm,     pi_op::affine,
                                       pi_op::add,      pi_op::slot,     pi_op::avg_pool,
                                       pi_op::max_pool, pi_op::global_avg_pool,
                                       pi_op::flatten,  pi_op::reshape};

[[nodiscard]] constexpr std::string_view to_string(pi_op op) {
  switch (op) {
    case pi_op::conv: return "conv";
    case pi_op::gemm: return "gemm";
    case pi_op::affine: return "affine";
    case pi_op::add: return "add";
    case pi_op::slot: return "slot";
    case pi_op::avg_pool: return "avg_pool";
    case pi_op::max_pool: return "max_pool";
    case pi_op::global_avg_pool: return "global_avg_pool";
    case pi_op::flatten: return "flatten";
    case pi_op::reshape: return "reshape";
  }
  return "?";
}

[[nodiscard]] inline pi_op parse_pi_op(std::string_view text) {
  for (auto op : all_pi_ops)
    if (to_string(op) == text) return op;
  std::string known;
  for (auto op : all_pi_ops) known += (known.empty() ? "" : ", ") + std::string(to_string(op));
  fail("unknown PI graph operation '", text, "'; expected one of: ", known);
}

struct pi_node {
  pi_op op = pi_op::conv;
  /// Where it comes from: the module path ("layer1.0.conv1", "layer1.0.relu1") or, for an
  /// operation without parameters, its kind and a counter ("add_3").
  std::string name{};
  std::vector<int> inputs{};  ///< value ids
  int output = -1;            ///< value id

  // conv and pooling: two values each (height, width); padding is symmetric
  std::vector<int64_t> kernel{}, stride{}, padding{}, dilation{};
  int64_t groups = 1;
  bool ceil_mode = false;
  bool count_include_pad = true;

  /// conv: [out, in / groups, kh, kw]; gemm: [out, in]; affine: the scale per channel [C].
  torch::Tensor weight{};
  /// conv, gemm: [out] (undefined: none); affine: the shift per channel [C].
  torch::Tensor bias{};

  /// slot: flat positions within one sample's activation (row-major over its shape), sorted,
  /// int64, disjoint: where a ReLU is evaluated, and where the polynomial is.
  torch::Tensor relu_positions{}, polynomial_positions{};
  /// slot with polynomial positions: r(x) = (c2 x + c1) x + c0, coefficients per channel [C];
  /// the channel of position p is p / (elements per channel).
  torch::Tensor c2{}, c1{}, c0{};
};

struct pi_graph {
  std::string network{};  ///< what it was made from, e.g. "resnet18_in(classes=10, ...)"
  std::vector<std::vector<int64_t>> shapes{};  ///< per value: its per-sample shape
  std::vector<pi_node> nodes{};
  int output = -1;  ///< the value the network returns

  [[nodiscard]] int values() const { return static_cast<int>(shapes.size()); }

  /// ReLUs one inference evaluates: the kept positions of every slot.
  [[nodiscard]] int64_t relu_count() const {
    int64_t n = 0;
    for (const auto& node : nodes)
      if (node.op == pi_op::slot) n += node.relu_positions.numel();
    return n;
  }
  /// Polynomial evaluations of one inference.
  [[nodiscard]] int64_t polynomial_count() const {
    int64_t n = 0;
    for (const auto& node : nodes)
      if (node.op == pi_op::slot) n += node.polynomial_positions.numel();
    return n;
  }
};

/// Elements of a per-sample shape.
[[nodiscard]] inline int64_t elements(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

namespace detail {

inline std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

inline void require_positions(const pi_graph& g, const pi_node& n, const torch::Tensor& positions,
                              std::string_view what, int64_t size) {
  require(positions.defined() && positions.dim() == 1 && positions.scalar_type() == torch::kLong,
          "PI graph: slot '", n.name, "' has no ", what, " positions as a flat int64 tensor");
  if (positions.numel() == 0) return;
  const auto p = positions.contiguous();
  const int64_t* d = p.data_ptr<int64_t>();
  for (int64_t i = 0; i < p.numel(); ++i) {
    require(d[i] >= 0 && d[i] < size, "PI graph: slot '", n.name, "' has ", what, " position ",
            d[i], "; expected one in [0, ", size, ")");
    require(i == 0 || d[i] > d[i - 1], "PI graph: slot '", n.name, "' has ", what,
            " positions out of order or repeated at ", d[i], "; expected strictly increasing");
  }
}

}  // namespace detail

/// Checks that `g` is well formed: every input computed before use, shapes that fit each
/// operation's parameters, slot positions in range and disjoint. A linearize::error names the
/// first node that is not.
inline void validate(const pi_graph& g) {
  require(g.values() >= 1 && !g.shapes[0].empty(), "PI graph of '", g.network,
          "' has no input shape");
  std::vector<bool> known(static_cast<size_t>(g.values()), false);
  known[0] = true;
  for (const auto& n : g.nodes) {
    const auto where = [&] { return linearize::detail::concat("PI graph node '", n.name, "' (", to_string(n.op), ")"); };
    const size_t arity = n.op == pi_op::add ? 2 : 1;
    require(n.inputs.size() == arity, where(), " has ", n.inputs.size(), " inputs; expected ", arity);
    for (int v : n.inputs)
      require(v >= 0 && v < g.values() && known[static_cast<size_t>(v)], where(), " reads value ", v,
              ", which no earlier node computes");
    require(n.output > 0 && n.output < g.values() && !known[static_cast<size_t>(n.output)], where(),
            " writes value ", n.output, "; expected a new value in [1, ", g.values(), ")");
    known[static_cast<size_t>(n.output)] = true;
    const auto& in = g.shapes[static_cast<size_t>(n.inputs[0])];
    const auto& out = g.shapes[static_cast<size_t>(n.output)];
    switch (n.op) {
      case pi_op::conv:
        require(in.size() == 3 && out.size() == 3 && n.weight.defined() && n.weight.dim() == 4 &&
                    n.weight.size(0) == out[0] && n.weight.size(1) * n.groups == in[0],
                where(), ": weight ", n.weight.defined() ? n.weight.sizes() : torch::IntArrayRef{},
                " does not map ", detail::shape_text(in), " to ", detail::shape_text(out));
        require(n.kernel.size() == 2 && n.stride.size() == 2 && n.padding.size() == 2 &&
                    n.dilation.size() == 2, where(), ": expected 2-d kernel, stride, padding, dilation");
        break;
      case pi_op::gemm:
        require(n.weight.defined() && n.weight.dim() == 2 && !in.empty() &&
                    in.back() == n.weight.size(1) && out.back() == n.weight.size(0),
                where(), ": weight does not map ", detail::shape_text(in), " to ", detail::shape_text(out));
        break;
      case pi_op::affine:
        require(!in.empty() && n.weight.defined() && n.bias.defined() && n.weight.numel() == in[0] &&
                    n.bias.numel() == in[0] && in == out,
                where(), ": expected a scale and a shift per channel of ", detail::shape_text(in));
        break;
      case pi_op::add:
        require(g.shapes[static_cast<size_t>(n.inputs[1])] == in && out == in, where(),
                ": expected two inputs and an output of one shape");
        break;
      case pi_op::slot: {
        require(in == out, where(), ": input ", detail::shape_text(in), " and output ",
                detail::shape_text(out), " differ");
        const int64_t size = elements(in);
        detail::require_positions(g, n, n.relu_positions, "ReLU", size);
        detail::require_positions(g, n, n.polynomial_positions, "polynomial", size);
        if (n.polynomial_positions.numel() > 0) {
          require(n.c2.defined() && n.c1.defined() && n.c0.defined() && n.c2.numel() == in[0] &&
                      n.c1.numel() == in[0] && n.c0.numel() == in[0],
                  where(), ": expected polynomial coefficients c2, c1, c0 for each of ", in[0], " channels");
          const auto both = at::isin(n.relu_positions, n.polynomial_positions);
          require(!both.any().item<bool>(), where(),
                  ": a position is both a ReLU and a polynomial; expected disjoint positions");
        }
        break;
      }
      case pi_op::avg_pool:
      case pi_op::max_pool:
        require(in.size() == 3 && out.size() == 3 && in[0] == out[0] && n.kernel.size() == 2 &&
                    n.stride.size() == 2 && n.padding.size() == 2,
                where(), ": expected 2-d pooling of [C, H, W]");
        break;
      case pi_op::global_avg_pool:
        require(in.size() >= 2 && out.size() == in.size() && out[0] == in[0] &&
                    elements(out) == out[0],
                where(), ": expected [C, ...] to [C, 1, ...]");
        break;
      case pi_op::flatten:
        require(out.size() == 1 && out[0] == elements(in), where(), ": ", detail::shape_text(in),
                " does not flatten to ", detail::shape_text(out));
        break;
      case pi_op::reshape:
        require(!out.empty() && elements(out) == elements(in), where(), ": ", detail::shape_text(in),
                " and ", detail::shape_text(out), " differ in size");
        break;
    }
  }
  require(g.output >= 0 && g.output < g.values() && known[static_cast<size_t>(g.output)],
          "PI graph of '", g.network, "': output value ", g.output, " is never computed");
}

namespace detail {

// One slot: copy x, then overwrite the ReLU positions and the polynomial positions.
inline torch::Tensor evaluate_slot(const pi_node& n, const torch::Tensor& x) {
  const auto flat = x.flatten(1);
  auto y = flat.clone();
  const auto device = x.device();
  if (n.relu_positions.numel() > 0) {
    const auto p = n.relu_positions.to(device);
    y.index_copy_(1, p, torch::relu(flat.index_select(1, p)));
  }
  if (n.polynomial_positions.numel() > 0) {
    const auto p = n.polynomial_positions.to(device);
    const int64_t per_channel = flat.size(1) / x.size(1);
    const auto channel = torch::div(p, per_channel, "floor");
    const auto coefficient = [&](const torch::Tensor& c) {
      return c.to(device, x.scalar_type()).index_select(0, channel);
    };
    const auto v = flat.index_select(1, p);
    y.index_copy_(1, p, (coefficient(n.c2) * v + coefficient(n.c1)) * v + coefficient(n.c0));
  }
  return y.view(x.sizes());
}

}  // namespace detail

/// Runs `g` on a batch `x` ([N, input shape...]) with LibTorch and returns its output value.
inline torch::Tensor evaluate(const pi_graph& g, const torch::Tensor& x) {
  validate(g);
  require(x.dim() == static_cast<int64_t>(g.shapes[0].size()) + 1 &&
              std::vector<int64_t>(x.sizes().begin() + 1, x.sizes().end()) == g.shapes[0],
          "PI graph of '", g.network, "': input of shape ", x.sizes(), "; expected [batch, ",
          detail::shape_text(g.shapes[0]).substr(1));
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> v(static_cast<size_t>(g.values()));
  v[0] = x;
  const auto batch_shape = [&](int value) {
    std::vector<int64_t> s{x.size(0)};
    const auto& per_sample = g.shapes[static_cast<size_t>(value)];
    s.insert(s.end(), per_sample.begin(), per_sample.end());
    return s;
  };
  for (const auto& n : g.nodes) {
    const auto& in = v[static_cast<size_t>(n.inputs[0])];
    const auto on = [&](const torch::Tensor& t) { return t.defined() ? t.to(in.device(), in.scalar_type()) : t; };
    torch::Tensor out;
    switch (n.op) {
      case pi_op::conv:
        out = torch::conv2d(in, on(n.weight), on(n.bias), n.stride, n.padding, n.dilation, n.groups);
        break;
      case pi_op::gemm: out = torch::linear(in, on(n.weight), on(n.bias)); break;
      case pi_op::affine: {
        std::vector<int64_t> view(static_cast<size_t>(in.dim() - 1), 1);
        view[0] = in.size(1);
        out = in * on(n.weight).view(view) + on(n.bias).view(view);
        break;
      }
      case pi_op::add: out = in + v[static_cast<size_t>(n.inputs[1])]; break;
      case pi_op::slot: out = detail::evaluate_slot(n, in); break;
      case pi_op::avg_pool:
        out = torch::avg_pool2d(in, n.kernel, n.stride, n.padding, n.ceil_mode, n.count_include_pad);
        break;
      case pi_op::max_pool:
        out = torch::max_pool2d(in, n.kernel, n.stride, n.padding, n.dilation, n.ceil_mode);
        break;
      case pi_op::global_avg_pool: {
        std::vector<int64_t> dims;
        for (int64_t d = 2; d < in.dim(); ++d) dims.push_back(d);
        out = in.mean(dims, /*keepdim=*/true);
        break;
      }
      case pi_op::flatten: out = in.flatten(1); break;
      case pi_op::reshape: out = in.reshape(batch_shape(n.output)); break;
    }
    require(out.sizes() == torch::IntArrayRef(batch_shape(n.output)), "PI graph node '", n.name,
            "' computed shape ", out.sizes(), "; the graph says [batch, ",
            detail::shape_text(g.shapes[static_cast<size_t>(n.output)]).substr(1));
    v[static_cast<size_t>(n.output)] = out;
  }
  return v[static_cast<size_t>(g.output)];
}

}  // namespace linearize::io
