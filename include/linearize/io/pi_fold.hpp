#pragma once
// Simplifies a traced PI graph (pi_trace.hpp) into what a PI framework should run:
//   - a BatchNorm (an affine node) right after a convolution or a fully connected layer, and
//     the only reader of its output, is folded into that layer's weights and bias:
//       W'[o] = W[o] * scale[o],  b'[o] = b[o] * scale[o] + shift[o];
//     in PI a linear layer's cost does not change with its weights, so the BatchNorm is free;
//     one that cannot be folded (WideResNet's pre-activation BN reads a sum) stays an affine node;
//   - a slot with no kept ReLU and no polynomial is the identity and disappears;
//   - values are renumbered densely.
// A fully kept slot stays a slot whose ReLU positions are all of them (writers emit a plain ReLU).
#include <linearize/io/pi_graph.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace linearize::io {

struct fold_summary {
  int batchnorms_folded = 0;  ///< affine nodes merged into the layer before them
  int slots_removed = 0;      ///< slots that computed the identity
};

/// `g` simplified as above (the input is left as it is); `summary`, when given, says what changed.
[[nodiscard]] inline pi_graph fold(pi_graph g, fold_summary* summary = nullptr) {
  validate(g);
  fold_summary done;
  std::vector<int> alias(static_cast<size_t>(g.values()));
  for (int v = 0; v < g.values(); ++v) alias[static_cast<size_t>(v)] = v;
  const auto resolve = [&](int v) {
    while (alias[static_cast<size_t>(v)] != v) v = alias[static_cast<size_t>(v)];
    return v;
  };

  // 1. identity slots
  std::vector<pi_node> nodes;
  for (auto& n : g.nodes) {
    for (int& v : n.inputs) v = resolve(v);
    if (n.op == pi_op::slot && n.relu_positions.numel() == 0 && n.polynomial_positions.numel() == 0) {
      alias[static_cast<size_t>(n.output)] = n.inputs[0];
      ++done.slots_removed;
      continue;
    }
    nodes.push_back(std::move(n));
  }
  g.output = resolve(g.output);

  // 2. BatchNorm into the linear layer before it, when that layer's output has no other reader.
  std::vector<int> readers(static_cast<size_t>(g.values()), 0);
  for (const auto& n : nodes)
    for (int v : n.inputs) ++readers[static_cast<size_t>(v)];
  ++readers[static_cast<size_t>(g.output)];
  std::vector<int> producer(static_cast<size_t>(g.values()), -1);
  std::vector<bool> dropped(nodes.size(), false);
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto& bn = nodes[i];
    if (bn.op == pi_op::affine) {
      const int in = bn.inputs[0];
      const int p = producer[static_cast<size_t>(in)];
      if (p >= 0 && readers[static_cast<size_t>(in)] == 1) {
        auto& layer = nodes[static_cast<size_t>(p)];
        // A fully connected layer's channel is dimension 1 only when its output is [N, out].
        const bool foldable = layer.op == pi_op::conv ||
                              (layer.op == pi_op::gemm && g.shapes[static_cast<size_t>(in)].size() == 1);
        if (foldable) {
          torch::NoGradGuard no_grad;
          std::vector<int64_t> view(static_cast<size_t>(layer.weight.dim()), 1);
          view[0] = layer.weight.size(0);
          const auto scale = bn.weight.to(torch::kDouble);
          layer.weight = (layer.weight.to(torch::kDouble) * scale.view(view)).to(torch::kFloat);
          const auto bias = layer.bias.defined() ? layer.bias.to(torch::kDouble)
                                                 : torch::zeros_like(scale);
          layer.bias = (bias * scale + bn.bias.to(torch::kDouble)).to(torch::kFloat);
          layer.output = bn.output;
          producer[static_cast<size_t>(bn.output)] = p;
          dropped[i] = true;
          ++done.batchnorms_folded;
          continue;
        }
      }
    }
    producer[static_cast<size_t>(bn.output)] = static_cast<int>(i);
  }

  // 3. dense value numbers, in order of first definition
  std::vector<int> number(static_cast<size_t>(g.values()), -1);
  pi_graph out{.network = g.network};
  number[0] = 0;
  out.shapes.push_back(g.shapes[0]);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (dropped[i]) continue;
    auto& n = nodes[i];
    for (int& v : n.inputs) v = number[static_cast<size_t>(v)];
    number[static_cast<size_t>(n.output)] = out.values();
    out.shapes.push_back(g.shapes[static_cast<size_t>(n.output)]);
    n.output = number[static_cast<size_t>(n.output)];
    out.nodes.push_back(std::move(n));
  }
  out.output = number[static_cast<size_t>(g.output)];
  validate(out);
  if (summary) *summary = done;
  return out;
}

}  // namespace linearize::io
