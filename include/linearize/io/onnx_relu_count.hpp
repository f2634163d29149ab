#pragma once
// Counts the ReLU evaluations an ONNX model makes per sample, from the model file alone: parse it
// with ONNX's protobuf classes, let ONNX's shape inference give every value its shape, and add up
// the elements of each Relu node's input except the batch dimension (the graph input's first,
// symbolic, dimension). This is the number a PI framework pays garbled circuits or comparisons
// for; for an export (onnx_export.hpp) it must equal the network's kept ReLUs.
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace linearize::io {

/// One Relu node of a model.
struct onnx_relu_node {
  std::string name{};       ///< the node's name (or its output's, if it has none)
  int64_t per_sample = 0;   ///< ReLU evaluations per sample
};

struct onnx_relu_tally {
  std::vector<onnx_relu_node> nodes{};
  [[nodiscard]] int64_t total() const {
    int64_t n = 0;
    for (const auto& r : nodes) n += r.per_sample;
    return n;
  }
};

/// The ReLU evaluations per sample of the ONNX model `model` (its shapes inferred here).
[[nodiscard]] inline onnx_relu_tally count_onnx_relus(onnx::ModelProto model) {
  try {
    onnx::shape_inference::InferShapes(model);
  } catch (const std::exception& e) {
    fail("count_onnx_relus: ONNX shape inference failed: ", e.what());
  }
  const auto& g = model.graph();
  require(g.input_size() >= 1 && g.input(0).type().tensor_type().shape().dim_size() >= 1,
          "count_onnx_relus: the model has no input with a shape; expected [batch, ...]");
  const std::string batch = g.input(0).type().tensor_type().shape().dim(0).dim_param();
  require(!batch.empty(), "count_onnx_relus: the input's first dimension is not symbolic; "
          "expected a free batch dimension (e.g. 'batch')");
  std::map<std::string, const onnx::TensorShapeProto*> shapes;
  const auto note = [&](const onnx::ValueInfoProto& v) {
    if (v.type().has_tensor_type() && v.type().tensor_type().has_shape())
      shapes[v.name()] = &v.type().tensor_type().shape();
  };
  for (const auto& v : g.input()) note(v);
  for (const auto& v : g.value_info()) note(v);
  for (const auto& v : g.output()) note(v);

  onnx_relu_tally tally;
  for (const auto& node : g.node()) {
    if (node.op_type() != "Relu") continue;
    const std::string name = node.name().empty() ? node.output(0) : node.name();
    const auto found = shapes.find(node.input(0));
    require(found != shapes.end(), "count_onnx_relus: Relu node '", name,
            "' reads a value of unknown shape ('", node.input(0), "')");
    int64_t per_sample = 1;
    int batch_dims = 0;
    for (const auto& d : found->second->dim()) {
      if (d.has_dim_param() && d.dim_param() == batch) {
        ++batch_dims;
        continue;
      }
      require(d.has_dim_value() && d.dim_value() >= 0, "count_onnx_relus: Relu node '", name,
              "' has an input dimension of unknown size");
      per_sample *= d.dim_value();
    }
    require(batch_dims == 1, "count_onnx_relus: Relu node '", name, "' has ", batch_dims,
            " batch dimensions in its input; expected exactly one");
    tally.nodes.push_back({name, per_sample});
  }
  return tally;
}

/// The same, from an ONNX file.
[[nodiscard]] inline onnx_relu_tally count_onnx_relus(const std::filesystem::path& path) {
  onnx::ModelProto model;
  const std::string bytes = read_file(path);
  require(model.ParseFromString(bytes), "count_onnx_relus: '", path.string(),
          "' is not an ONNX model (protobuf parse failed)");
  return count_onnx_relus(std::move(model));
}

}  // namespace linearize::io
