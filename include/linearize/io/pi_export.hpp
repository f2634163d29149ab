#pragma once
// Export of a linearized network for private inference, in one call:
//
//   auto done = linearize::io::export_for_pi(*net, {1, 28, 28}, "runs/export");
//
// traces the network (pi_trace.hpp), folds BatchNorm and drops identity slots (pi_fold.hpp),
// checks that the graph computes what the network computes on a few seeded random inputs, then
// writes
//   model.onnx     the graph as ONNX (onnx_export.hpp): evaluates only the kept ReLUs
//   manifest.json  the same graph, framework-neutral, with
//   weights.bin    its weights and kept positions (pi_manifest.hpp)
// and counts the ReLUs of the written ONNX file back from the file (onnx_relu_count.hpp): the
// count must be the graph's, or the export fails. Element, channel and layer masks, identity and
// polynomial replacements; every slot's mask must be hard (0/1).
#include <linearize/core/relu_slot.hpp>
#include <linearize/io/onnx_export.hpp>
#include <linearize/io/onnx_relu_count.hpp>
#include <linearize/io/pi_fold.hpp>
#include <linearize/io/pi_graph.hpp>
#include <linearize/io/pi_manifest.hpp>
#include <linearize/io/pi_trace.hpp>
#include <linearize/support/error.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace linearize::io {

struct pi_export_options {
  int64_t check_samples = 4;  ///< seeded random inputs (standard normal) the export checks on
  uint64_t seed = 0;
  /// Largest difference allowed between graph and network outputs, times max(1, max |network|):
  /// rounding (BatchNorm folded into weights) stays far below it; a wrong graph does not.
  double tolerance = 1e-4;
  bool onnx = true;      ///< write model.onnx
  bool manifest = true;  ///< write manifest.json + weights.bin
};

struct pi_export_result {
  pi_graph graph{};
  fold_summary folded{};
  int64_t relus = 0;          ///< ReLU evaluations per sample in the graph
  int64_t polynomials = 0;    ///< polynomial evaluations per sample
  int64_t mask_relus = 0;     ///< kept ReLUs by the network's masks (each slot once)
  int64_t onnx_relus = -1;    ///< ReLU evaluations counted back from model.onnx (-1: not written)
  double max_difference = 0;  ///< graph against network on the check inputs
  double max_output = 0;      ///< the largest |output| of the network there (the scale of the above)
  std::vector<std::filesystem::path> files{};
};

/// The PI graph of `net` for samples of `sample_shape` (e.g. {3, 32, 32}), folded and checked
/// against the network as export_for_pi does, without writing anything.
template <class Module>
[[nodiscard]] pi_export_result pi_graph_of(Module& net, const std::vector<int64_t>& sample_shape,
                                           const pi_export_options& options = {}) {
  auto& impl = detail::trace::module_of_holder(net);
  require(!sample_shape.empty(), "export_for_pi: empty sample shape; expected e.g. {3, 32, 32}");
  for (int64_t d : sample_shape)
    require(d > 0, "export_for_pi: sample shape has dimension ", d, "; expected all > 0");
  require(options.check_samples >= 1, "export_for_pi: check_samples = ", options.check_samples,
          "; expected at least 1");
  require(std::isfinite(options.tolerance) && options.tolerance > 0, "export_for_pi: tolerance = ",
          options.tolerance, "; expected a positive number");

  torch::Device device = torch::kCPU;
  for (const auto& p : impl.parameters()) {
    device = p.device();
    break;
  }
  std::vector<int64_t> shape{options.check_samples};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const auto x = torch::randn(shape, gen, torch::kFloat).to(device);

  pi_export_result r;
  r.graph = fold(trace_for_pi(impl, x), &r.folded);
  r.relus = r.graph.relu_count();
  r.polynomials = r.graph.polynomial_count();
  for (const auto& m : impl.named_modules("", /*include_self=*/false))
    if (auto slot = std::dynamic_pointer_cast<ReluSlotImpl>(m.value())) r.mask_relus += slot->relu_count();

  // The graph must compute what the network computes (same mode: eval, no gradients).
  const bool was_training = impl.is_training();
  impl.eval();
  torch::Tensor expected;
  try {
    torch::NoGradGuard no_grad;
    expected = impl.forward(x).to(torch::kCPU, torch::kFloat);
  } catch (...) {
    impl.train(was_training);
    throw;
  }
  impl.train(was_training);
  const auto got = evaluate(r.graph, x).to(torch::kCPU, torch::kFloat);
  require(got.sizes() == expected.sizes(), "export_for_pi: the PI graph of ", r.graph.network,
          " returns shape ", got.sizes(), ", the network ", expected.sizes());
  const auto diff = (got - expected).abs();
  r.max_difference = diff.max().item<double>();
  r.max_output = expected.abs().max().item<double>();
  const double scale = std::max(1.0, r.max_output);
  if (!(r.max_difference <= options.tolerance * scale)) {
    const auto at = diff.flatten().argmax().item<int64_t>();
    fail("export_for_pi: the PI graph of ", r.graph.network, " differs from the network by ",
         r.max_difference, " (output element ", at, ": graph ", got.flatten()[at].item<double>(),
         ", network ", expected.flatten()[at].item<double>(), "); expected at most ",
         options.tolerance * scale, ". The network computes something the trace did not see "
         "(raw-memory work, data-dependent control flow); the export refuses rather than write a "
         "wrong graph");
  }
  return r;
}

/// Exports `net` for samples of `sample_shape` into the directory `dir` (see above).
template <class Module>
pi_export_result export_for_pi(Module& net, const std::vector<int64_t>& sample_shape,
                               const std::filesystem::path& dir, const pi_export_options& options = {}) {
  auto r = pi_graph_of(net, sample_shape, options);
  if (options.onnx) {
    const auto path = dir / "model.onnx";
    write_onnx(r.graph, path);
    r.onnx_relus = count_onnx_relus(path).total();
    require(r.onnx_relus == r.relus, "export_for_pi: '", path.string(), "' evaluates ", r.onnx_relus,
            " ReLUs per sample, the graph ", r.relus, " (a writer bug)");
    r.files.push_back(path);
  }
  if (options.manifest) {
    write_pi_manifest(r.graph, dir);
    r.files.push_back(dir / "manifest.json");
    r.files.push_back(dir / "weights.bin");
  }
  return r;
}

}  // namespace linearize::io
