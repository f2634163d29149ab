#pragma once
// A framework-neutral file pair for a PI graph (pi_graph.hpp), for private-inference frameworks
// without ONNX import: a JSON manifest (nlohmann-json) that describes the layers, and one raw
// file of little-endian numbers that holds the weights and the kept positions.
//
//   manifest.json
//     "format":   "linearize-pi-export 1"
//     "network":  what it was made from, e.g. "resnet18_in(classes=10, channels=1, size=28, width=4)"
//     "data":     {"file": "weights.bin", "bytes": N, "fnv1a": "<16 hex digits>"} (FNV-1a 64)
//     "relu_count", "polynomial_count": ReLU and polynomial evaluations per sample
//     "shapes":   per value id, its per-sample shape (no batch dimension); value 0 is the input
//     "output":   the value id the network returns
//     "layers":   in order of evaluation, each {"op", "name", "inputs": [value ids],
//                 "output": value id, ...}; by op:
//       conv      kernel, stride, padding, dilation (2 each; padding on both sides), groups,
//                 weight [out, in/groups, kh, kw], bias [out] (BatchNorm already folded in)
//       gemm      weight [out, in], bias [out] (optional): y = x weight^T + bias
//       affine    weight = scale [C], bias = shift [C]: y[c] = x[c] * scale[c] + shift[c]
//       add       two inputs of one shape
//       slot      elements (per sample), relu_positions [K] (int32), polynomial_positions [Q]
//                 (int32) with c2, c1, c0 [C]: y = relu(x) at relu_positions,
//                 (c2[c] x + c1[c]) x + c0[c] at polynomial_positions, where c = position /
//                 (elements / C), and y = x at every other position. Positions are flat indices
//                 into one sample's activation, row-major over its shape (c, h, w), increasing.
//       avg_pool  kernel, stride, padding, ceil_mode, count_include_pad
//       max_pool  kernel, stride, padding, dilation, ceil_mode
//       global_avg_pool, flatten (to [elements]), reshape (to the output's shape): no data
//     A tensor is {"offset": bytes into the data file (a multiple of 64), "shape": [...],
//     "dtype": "float32" | "int32"}, stored contiguous, row-major, little-endian.
//   weights.bin
//     the tensors, each at its offset, zero bytes between them.
//
// read_pi_manifest() reads the pair back into a pi_graph (checked: format, size, checksum,
// bounds, shapes), so that evaluate() can run what a framework would read.
#include <linearize/io/pi_graph.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/checksum.hpp>
#include <linearize/support/error.hpp>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

namespace linearize::io {

inline constexpr const char* pi_manifest_format = "linearize-pi-export 1";

namespace detail::manifest {

static_assert(std::endian::native == std::endian::little,
              "the data file is little-endian; this writer copies memory as it is");

inline constexpr size_t alignment = 64;

inline std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

class data_writer {
 public:
  nlohmann::json add(const torch::Tensor& t) {
    const bool positions = t.scalar_type() == torch::kLong;
    torch::Tensor c;
    if (positions) {
      require(t.numel() == 0 || t.max().item<int64_t>() <= std::numeric_limits<int32_t>::max(),
              "pi manifest: a position exceeds int32; expected activations below 2^31 elements");
      c = t.to(torch::kCPU, torch::kInt).contiguous();
    } else {
      c = t.to(torch::kCPU, torch::kFloat).contiguous();
    }
    bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment, '\0');
    const size_t offset = bytes_.size();
    bytes_.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
    return {{"offset", offset}, {"shape", c.sizes().vec()}, {"dtype", positions ? "int32" : "float32"}};
  }
  [[nodiscard]] const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

class data_reader {
 public:
  data_reader(std::string bytes, std::string file) : bytes_(std::move(bytes)), file_(std::move(file)) {}

  torch::Tensor get(const nlohmann::json& j, const std::string& what) const {
    require(j.is_object() && j.contains("offset") && j.contains("shape") && j.contains("dtype"),
            "pi manifest: ", what, " is not a tensor {offset, shape, dtype}");
    const auto offset = j.at("offset").get<uint64_t>();
    const auto shape = j.at("shape").get<std::vector<int64_t>>();
    const auto dtype = j.at("dtype").get<std::string>();
    require(dtype == "float32" || dtype == "int32", "pi manifest: ", what, " has dtype '", dtype,
            "'; expected float32 or int32");
    int64_t n = 1;
    for (int64_t d : shape) {
      require(d >= 0, "pi manifest: ", what, " has a negative dimension");
      n *= d;
    }
    const uint64_t size = static_cast<uint64_t>(n) * 4;
    require(offset % alignment == 0 && offset <= bytes_.size() && size <= bytes_.size() - offset,
            "pi manifest: ", what, " at offset ", offset, " (", size, " bytes) lies outside '",
            file_, "' (", bytes_.size(), " bytes)");
    auto t = torch::empty(shape, dtype == "int32" ? torch::kInt : torch::kFloat);
    std::memcpy(t.data_ptr(), bytes_.data() + offset, size);
    return dtype == "int32" ? t.to(torch::kLong) : t;
  }

 private:
  std::string bytes_;
  std::string file_;
};

}  // namespace detail::manifest

/// The manifest of `g`, with its tensors appended to `data` (the data file's contents).
[[nodiscard]] inline nlohmann::json pi_manifest(const pi_graph& g, std::string& data,
                                                const std::string& data_file = "weights.bin") {
  validate(g);
  detail::manifest::data_writer w;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& n : g.nodes) {
    nlohmann::json l{{"op", std::string(to_string(n.op))}, {"name", n.name}, {"inputs", n.inputs}, {"output", n.output}};
    switch (n.op) {
      case pi_op::conv:
        l["kernel"] = n.kernel;
        l["stride"] = n.stride;
        l["padding"] = n.padding;
        l["dilation"] = n.dilation;
        l["groups"] = n.groups;
        [[fallthrough]];
      case pi_op::gemm:
      case pi_op::affine:
        l["weight"] = w.add(n.weight);
        if (n.bias.defined()) l["bias"] = w.add(n.bias);
        break;
      case pi_op::slot:
        l["elements"] = elements(g.shapes[static_cast<size_t>(n.inputs[0])]);
        l["relus"] = n.relu_positions.numel();
        l["polynomials"] = n.polynomial_positions.numel();
        l["relu_positions"] = w.add(n.relu_positions);
        l["polynomial_positions"] = w.add(n.polynomial_positions);
        if (n.polynomial_positions.numel() > 0) {
          l["c2"] = w.add(n.c2);
          l["c1"] = w.add(n.c1);
          l["c0"] = w.add(n.c0);
        }
        break;
      case pi_op::max_pool: l["dilation"] = n.dilation; [[fallthrough]];
      case pi_op::avg_pool:
        l["kernel"] = n.kernel;
        l["stride"] = n.stride;
        l["padding"] = n.padding;
        l["ceil_mode"] = n.ceil_mode;
        if (n.op == pi_op::avg_pool) l["count_include_pad"] = n.count_include_pad;
        break;
      case pi_op::add:
      case pi_op::global_avg_pool:
      case pi_op::flatten:
      case pi_op::reshape: break;
    }
    layers.push_back(std::move(l));
  }
  data = w.bytes();
  return {{"format", pi_manifest_format},
          {"network", g.network},
          {"data", {{"file", data_file}, {"bytes", data.size()}, {"fnv1a", detail::manifest::hex(fnv1a(data))}}},
          {"relu_count", g.relu_count()},
          {"polynomial_count", g.polynomial_count()},
          {"shapes", g.shapes},
          {"output", g.output},
          {"layers", layers}};
}

/// Writes `dir`/manifest.json and `dir`/weights.bin (each atomically).
inline void write_pi_manifest(const pi_graph& g, const std::filesystem::path& dir) {
  std::string data;
  const auto manifest = pi_manifest(g, data);
  write_atomically(dir / "weights.bin", [&](std::ostream& out) {
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  });
  write_atomically(dir / "manifest.json", [&](std::ostream& out) { out << manifest.dump(1) << '\n'; });
}

/// Reads `dir`/manifest.json and the data file it names back into a graph (validated).
[[nodiscard]] inline pi_graph read_pi_manifest(const std::filesystem::path& dir) {
  const auto path = dir / "manifest.json";
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("pi manifest '", path.string(), "' is not valid JSON: ", e.what());
  }
  try {
    require(m.value("format", std::string()) == pi_manifest_format, "pi manifest '", path.string(),
            "' has format '", m.value("format", std::string()), "'; expected '", pi_manifest_format, "'");
    const auto& d = m.at("data");
    const auto data_path = dir / d.at("file").get<std::string>();
    std::string bytes = read_file(data_path);
    require(bytes.size() == d.at("bytes").get<uint64_t>(), "pi manifest: '", data_path.string(),
            "' has ", bytes.size(), " bytes; the manifest says ", d.at("bytes").get<uint64_t>());
    require(detail::manifest::hex(fnv1a(bytes)) == d.at("fnv1a").get<std::string>(), "pi manifest: '",
            data_path.string(), "' fails its checksum (corrupt or from another export)");
    const detail::manifest::data_reader r(std::move(bytes), data_path.string());

    pi_graph g;
    g.network = m.at("network").get<std::string>();
    g.shapes = m.at("shapes").get<std::vector<std::vector<int64_t>>>();
    g.output = m.at("output").get<int>();
    for (const auto& l : m.at("layers")) {
      pi_node n;
      n.op = parse_pi_op(l.at("op").get<std::string>());
      n.name = l.at("name").get<std::string>();
      n.inputs = l.at("inputs").get<std::vector<int>>();
      n.output = l.at("output").get<int>();
      const std::string what = "layer '" + n.name + "'";
      const auto ints = [&](const char* key) { return l.at(key).get<std::vector<int64_t>>(); };
      switch (n.op) {
        case pi_op::conv:
          n.kernel = ints("kernel");
          n.stride = ints("stride");
          n.padding = ints("padding");
          n.dilation = ints("dilation");
          n.groups = l.at("groups").get<int64_t>();
          [[fallthrough]];
        case pi_op::gemm:
        case pi_op::affine:
          n.weight = r.get(l.at("weight"), what + " weight");
          if (l.contains("bias")) n.bias = r.get(l.at("bias"), what + " bias");
          break;
        case pi_op::slot:
          n.relu_positions = r.get(l.at("relu_positions"), what + " relu_positions");
          n.polynomial_positions = r.get(l.at("polynomial_positions"), what + " polynomial_positions");
          if (n.polynomial_positions.numel() > 0) {
            n.c2 = r.get(l.at("c2"), what + " c2");
            n.c1 = r.get(l.at("c1"), what + " c1");
            n.c0 = r.get(l.at("c0"), what + " c0");
          }
          break;
        case pi_op::max_pool: n.dilation = ints("dilation"); [[fallthrough]];
        case pi_op::avg_pool:
          n.kernel = ints("kernel");
          n.stride = ints("stride");
          n.padding = ints("padding");
          n.ceil_mode = l.at("ceil_mode").get<bool>();
          if (n.op == pi_op::avg_pool) n.count_include_pad = l.at("count_include_pad").get<bool>();
          break;
        case pi_op::add:
        case pi_op::global_avg_pool:
        case pi_op::flatten:
        case pi_op::reshape: break;
      }
      g.nodes.push_back(std::move(n));
    }
    validate(g);
    require(g.relu_count() == m.at("relu_count").get<int64_t>() &&
                g.polynomial_count() == m.at("polynomial_count").get<int64_t>(),
            "pi manifest '", path.string(), "': its layers hold ", g.relu_count(), " ReLUs and ",
            g.polynomial_count(), " polynomials; its header says ", m.at("relu_count"), " and ",
            m.at("polynomial_count"));
    return g;
  } catch (const nlohmann::json::exception& e) {
    fail("pi manifest '", path.string(), "' lacks or mistypes a field: ", e.what());
  }
}

}  // namespace linearize::io
