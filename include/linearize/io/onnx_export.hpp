#pragma once
// Writes a PI graph (pi_graph.hpp) as an ONNX model, with ONNX's own protobuf classes (Debian's
// libonnx-dev) and checked by ONNX's checker before it is written. Opset 13, IR version 7: what
// ONNX Runtime (since 1.6) and most PI compilers read.
//
// The model takes "input" [batch, sample shape...] (float32, batch free) and returns "output".
// Each slot becomes the positions it evaluates, nothing more:
//   all positions kept                 Relu(x)
//   all positions polynomial           ((c2 * x + c1) * x + c0), coefficients per channel
//   otherwise                          x as [P, batch] (Reshape, Transpose); Gather the kept
//                                      positions, Relu, ScatterND them back; Gather the
//                                      polynomial positions, evaluate, ScatterND back; Transpose
//                                      and Reshape to x's shape. Positions in neither are x.
// so the graph holds exactly relu_count() ReLU evaluations per sample (onnx_relu_count.hpp counts
// them from the file). Other nodes: Conv (BatchNorm folded in), Gemm or MatMul + Add, Mul + Add
// for a BatchNorm that could not be folded, Add, AveragePool, MaxPool, GlobalAveragePool,
// Flatten, Reshape. The model's metadata holds the network's description and both counts.
#include <linearize/io/pi_graph.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <torch/torch.h>

#include <bit>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace linearize::io {

inline constexpr int64_t onnx_opset = 13;
inline constexpr int64_t onnx_ir_version = 7;

namespace detail::onnx_writer {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; this writer copies memory as it is");

class writer {
 public:
  explicit writer(const pi_graph& g) : g_(g) {
    model_.set_ir_version(onnx_ir_version);
    model_.set_producer_name("linearize");
    model_.set_producer_version("1");
    model_.set_doc_string("ReLU-linearized network for private inference: " + g.network);
    auto* opset = model_.add_opset_import();
    opset->set_domain("");
    opset->set_version(onnx_opset);
    graph_ = model_.mutable_graph();
    graph_->set_name("linearized");
    name_values();
  }

  onnx::ModelProto build() {
    add_io(graph_->add_input(), "input", 0);
    for (const auto& n : g_.nodes) add(n);
    if (g_.output == 0) node("Identity", {"input"}, {"output"}, "output");
    add_io(graph_->add_output(), "output", g_.output);
    metadata("network", g_.network);
    metadata("relu_count", std::to_string(g_.relu_count()));
    metadata("polynomial_count", std::to_string(g_.polynomial_count()));
    return std::move(model_);
  }

 private:
  // Value names: the producing module's name, made unique; "input" and "output" at the ends.
  void name_values() {
    names_.assign(static_cast<size_t>(g_.values()), "");
    names_[0] = "input";
    std::map<std::string, int> used{{"input", 1}, {"output", 1}};
    for (const auto& n : g_.nodes) {
      std::string name = n.name.empty() ? std::string(to_string(n.op)) : n.name;
      if (const int k = used[name]++; k > 0) name += "#" + std::to_string(k + 1);
      names_[static_cast<size_t>(n.output)] = name;
    }
    if (g_.output != 0) names_[static_cast<size_t>(g_.output)] = "output";
  }

  [[nodiscard]] const std::string& name(int v) const { return names_[static_cast<size_t>(v)]; }
  [[nodiscard]] const std::vector<int64_t>& shape(int v) const { return g_.shapes[static_cast<size_t>(v)]; }

  void add_io(onnx::ValueInfoProto* info, const std::string& value_name, int v) {
    info->set_name(value_name);
    auto* type = info->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto_DataType_FLOAT);
    auto* s = type->mutable_shape();
    s->add_dim()->set_dim_param("batch");
    for (int64_t d : shape(v)) s->add_dim()->set_dim_value(d);
  }

  void metadata(const std::string& key, const std::string& value) {
    auto* p = model_.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }

  std::string constant(const std::string& base, const torch::Tensor& t) {
    const auto c = t.is_floating_point() ? t.to(torch::kCPU, torch::kFloat).contiguous()
                                         : t.to(torch::kCPU, torch::kLong).contiguous();
    const std::string n = base;
    auto* init = graph_->add_initializer();
    init->set_name(n);
    init->set_data_type(c.scalar_type() == torch::kFloat ? onnx::TensorProto_DataType_FLOAT
                                                         : onnx::TensorProto_DataType_INT64);
    for (int64_t d : c.sizes()) init->add_dims(d);
    init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
    return n;
  }

  std::string shape_constant(const std::string& base, std::vector<int64_t> per_sample) {
    per_sample.insert(per_sample.begin(), 0);  // 0: copy the batch dimension
    return constant(base, torch::tensor(per_sample, torch::kLong));
  }

  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& node_name) {
    auto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(node_name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return n;
  }

  static void ints(onnx::NodeProto* n, const std::string& key, const std::vector<int64_t>& values) {
    auto* a = n->add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto_AttributeType_INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  static void integer(onnx::NodeProto* n, const std::string& key, int64_t value) {
    auto* a = n->add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto_AttributeType_INT);
    a->set_i(value);
  }
  static std::vector<int64_t> pads(const std::vector<int64_t>& p) { return {p[0], p[1], p[0], p[1]}; }

  // A per-channel constant [C, 1, 1, ...] that broadcasts over [N, C, ...] of this rank.
  torch::Tensor per_channel(const torch::Tensor& values, size_t sample_rank) {
    std::vector<int64_t> view(sample_rank, 1);
    view[0] = values.numel();
    return values.reshape(view);
  }

  // (c2 * x + c1) * x + c0 with constants that broadcast against x.
  void polynomial(const std::string& x, const std::string& c2, const std::string& c1,
                  const std::string& c0, const std::string& out, const std::string& base) {
    node("Mul", {x, c2}, {base + "/c2x"}, base + "/c2x");
    node("Add", {base + "/c2x", c1}, {base + "/c2x+c1"}, base + "/c2x+c1");
    node("Mul", {base + "/c2x+c1", x}, {base + "/(c2x+c1)x"}, base + "/(c2x+c1)x");
    node("Add", {base + "/(c2x+c1)x", c0}, {out}, base + "/polynomial");
  }

  void add(const pi_node& n) {
    const auto& x = name(n.inputs[0]);
    const auto& y = name(n.output);
    const auto& in = shape(n.inputs[0]);
    switch (n.op) {
      case pi_op::conv: {
        std::vector<std::string> inputs{x, constant(y + ".weight", n.weight)};
        if (n.bias.defined()) inputs.push_back(constant(y + ".bias", n.bias));
        auto* c = node("Conv", inputs, {y}, y);
        ints(c, "kernel_shape", n.kernel);
        ints(c, "strides", n.stride);
        ints(c, "pads", pads(n.padding));
        ints(c, "dilations", n.dilation);
        integer(c, "group", n.groups);
        break;
      }
      case pi_op::gemm: {
        if (in.size() == 1) {
          std::vector<std::string> inputs{x, constant(y + ".weight", n.weight)};
          if (n.bias.defined()) inputs.push_back(constant(y + ".bias", n.bias));
          integer(node("Gemm", inputs, {y}, y), "transB", 1);
        } else if (n.bias.defined()) {
          const auto w = constant(y + ".weight_t", n.weight.t().contiguous());
          node("MatMul", {x, w}, {y + "/matmul"}, y + "/matmul");
          node("Add", {y + "/matmul", constant(y + ".bias", n.bias)}, {y}, y);
        } else {
          node("MatMul", {x, constant(y + ".weight_t", n.weight.t().contiguous())}, {y}, y);
        }
        break;
      }
      case pi_op::affine:
        node("Mul", {x, constant(y + ".scale", per_channel(n.weight, in.size()))}, {y + "/scaled"}, y + "/scale");
        node("Add", {y + "/scaled", constant(y + ".shift", per_channel(n.bias, in.size()))}, {y}, y);
        break;
      case pi_op::add: node("Add", {x, name(n.inputs[1])}, {y}, y); break;
      case pi_op::slot: add_slot(n, x, y, in); break;
      case pi_op::avg_pool: {
        auto* p = node("AveragePool", {x}, {y}, y);
        ints(p, "kernel_shape", n.kernel);
        ints(p, "strides", n.stride);
        ints(p, "pads", pads(n.padding));
        integer(p, "ceil_mode", n.ceil_mode ? 1 : 0);
        integer(p, "count_include_pad", n.count_include_pad ? 1 : 0);
        break;
      }
      case pi_op::max_pool: {
        auto* p = node("MaxPool", {x}, {y}, y);
        ints(p, "kernel_shape", n.kernel);
        ints(p, "strides", n.stride);
        ints(p, "pads", pads(n.padding));
        ints(p, "dilations", n.dilation);
        integer(p, "ceil_mode", n.ceil_mode ? 1 : 0);
        break;
      }
      case pi_op::global_avg_pool: node("GlobalAveragePool", {x}, {y}, y); break;
      case pi_op::flatten: integer(node("Flatten", {x}, {y}, y), "axis", 1); break;
      case pi_op::reshape:
        node("Reshape", {x, shape_constant(y + ".shape", shape(n.output))}, {y}, y);
        break;
    }
  }

  void add_slot(const pi_node& n, const std::string& x, const std::string& y,
                const std::vector<int64_t>& s) {
    const int64_t size = elements(s);
    const int64_t relus = n.relu_positions.numel(), polys = n.polynomial_positions.numel();
    if (relus == size) {
      node("Relu", {x}, {y}, y);
      return;
    }
    if (polys == size) {
      polynomial(x, constant(y + ".c2", per_channel(n.c2, s.size())),
                 constant(y + ".c1", per_channel(n.c1, s.size())),
                 constant(y + ".c0", per_channel(n.c0, s.size())), y, y);
      return;
    }
    // Positions along the first axis: x as [P, batch], so that indices do not depend on the batch.
    node("Reshape", {x, shape_constant(y + ".flat_shape", {size})}, {y + "/flat"}, y + "/flat");
    ints(node("Transpose", {y + "/flat"}, {y + "/positions"}, y + "/positions"), "perm", {1, 0});
    std::string current = y + "/positions";
    if (relus > 0) {
      const auto idx = constant(y + ".relu_positions", n.relu_positions);
      const auto idx_nd = constant(y + ".relu_positions_nd", n.relu_positions.view({-1, 1}));
      integer(node("Gather", {y + "/positions", idx}, {y + "/kept"}, y + "/gather_kept"), "axis", 0);
      node("Relu", {y + "/kept"}, {y + "/relu"}, y + "/relu");
      node("ScatterND", {current, idx_nd, y + "/relu"}, {y + "/with_relu"}, y + "/scatter_relu");
      current = y + "/with_relu";
    }
    if (polys > 0) {
      const auto idx = constant(y + ".polynomial_positions", n.polynomial_positions);
      const auto idx_nd = constant(y + ".polynomial_positions_nd", n.polynomial_positions.view({-1, 1}));
      integer(node("Gather", {y + "/positions", idx}, {y + "/linearized"}, y + "/gather_polynomial"), "axis", 0);
      // Coefficients per position, [K, 1] against [K, batch].
      const int64_t per_channel_elements = size / s[0];
      const auto channel = torch::div(n.polynomial_positions, per_channel_elements, "floor");
      const auto at = [&](const torch::Tensor& c) { return c.index_select(0, channel).view({-1, 1}); };
      polynomial(y + "/linearized", constant(y + ".c2_positions", at(n.c2)),
                 constant(y + ".c1_positions", at(n.c1)), constant(y + ".c0_positions", at(n.c0)),
                 y + "/polynomial", y + "/p");
      node("ScatterND", {current, idx_nd, y + "/polynomial"}, {y + "/with_polynomial"}, y + "/scatter_polynomial");
      current = y + "/with_polynomial";
    }
    ints(node("Transpose", {current}, {y + "/back"}, y + "/back"), "perm", {1, 0});
    node("Reshape", {y + "/back", shape_constant(y + ".shape", s)}, {y}, y + "/reshape");
  }

  const pi_graph& g_;
  onnx::ModelProto model_;
  onnx::GraphProto* graph_ = nullptr;
  std::vector<std::string> names_;
};

}  // namespace detail::onnx_writer

/// The ONNX model of `g`, checked by ONNX's checker.
[[nodiscard]] inline onnx::ModelProto to_onnx(const pi_graph& g) {
  validate(g);
  auto model = detail::onnx_writer::writer(g).build();
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    fail("to_onnx: the ONNX model of '", g.network, "' fails ONNX's checker: ", e.what());
  }
  return model;
}

/// Writes `g` as an ONNX file (atomically).
inline void write_onnx(const pi_graph& g, const std::filesystem::path& path) {
  const auto model = to_onnx(g);
  std::string bytes;
  require(model.SerializeToString(&bytes), "write_onnx: could not serialize the model of '",
          g.network, "'");
  write_atomically(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace linearize::io
