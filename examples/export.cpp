// Exports a linearized network for private inference: an ONNX model that evaluates only the
// kept ReLUs, and the same graph as a JSON manifest with a raw weights file (io/pi_export.hpp).
//
//   export --weights runs/demo/linearized.pt
//                                      the demo's result: its finetuned weights and masks
//   export --mask runs/demo/mask       a mask alone on the demo's baseline (without the weights
//                                      finetuned with it, the accuracy is not the demo's)
//   export                             the demo's baseline, linearized here in seconds: keep the
//                                      budget's ReLUs with the largest first-order damage
//                                      (select/first_order.hpp), re-estimate BatchNorm, no
//                                      finetuning
//   export --help
//
// The baseline is the demo's: the one examples/pretrain caches (runs/baseline/...), else the
// quick one the demo trains (runs/demo/baseline.pt); with neither, this trains the demo's quick
// baseline first (2 epochs, about 2 minutes on 2 idle cores). Writes <out>/model.onnx,
// manifest.json, weights.bin, and <out>/check/: test images with the C++ network's logits, which
// tests/onnx/check_onnxruntime.js compares with ONNX Runtime's; README ("Export for private
// inference") shows how to load the export.
#include "cli.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/registry.hpp>
#include <linearize/io/pi_export.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/policy/budget.hpp>
#include <linearize/select/first_order.hpp>
#include <linearize/support/runtime.hpp>
#include <linearize/train/baseline.hpp>
#include <linearize/train/batchnorm.hpp>
#include <linearize/train/evaluate.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace lz = linearize;

struct settings {
  std::string weights{};
  std::string mask{};
  std::string baseline{};
  std::string budget = "2%";
  int64_t samples = 512;
  std::string data_dir{};
  std::string out = "runs/export";
  bool evaluate = true;
  int64_t check_images = 100;
};

/// The demo's baseline: the given weights, the cached pretrain one, the demo's quick one, or a
/// quick one trained now.
lz::train::baseline baseline_for(const settings& s, const lz::train::baseline_spec& spec) {
  lz::train::baseline_options options;
  if (!s.baseline.empty()) {
    lz::require(lz::train::baseline_complete(s.baseline), "--baseline '", s.baseline,
                "' is not a complete baseline (weights with their .json record)");
    options.out = s.baseline;
  } else {
    for (const fs::path& candidate : {lz::train::default_baseline_path(spec), fs::path("runs/demo/baseline.pt")})
      if (lz::train::baseline_complete(candidate)) {
        options.out = candidate;
        break;
      }
  }
  // A finished baseline is used as it was trained: its recipe (the demo's quick one has 2
  // epochs) comes from its record, not from the defaults, which would refuse it.
  if (!options.out.empty()) {
    options.recipe = lz::train::read_baseline_record(options.out).recipe;
  } else {
    options.out = "runs/demo/baseline.pt";
    options.recipe.epochs = 2;
    fmt::print("no cached baseline: training the demo's quick one ({} epochs) into {}\n",
               options.recipe.epochs, options.out.string());
  }
  auto base = lz::train::load_or_train_baseline(spec, options);
  fmt::print("baseline {}: {}, test top-1 {:.2f}%\n", options.out.string(), base.net->describe(),
             100 * base.record.test_top1);
  return base;
}

/// Keeps the budget's entries with the largest first-order damage (the ReLUs whose removal
/// would cost most), from `samples` training images.
void linearize_quickly(lz::NetworkImpl& net, const lz::MaskSet& masks, const settings& s,
                       const lz::train::baseline_spec& spec) {
  const auto budget = lz::parse_budget(s.budget);
  const auto keep = budget.resolve(masks.total_relus());
  const auto train = lz::data::load_dataset(spec.data, spec.data_dir, lz::data::part::train);
  const auto damage = lz::select::estimate_first_order(net, masks, train, s.samples, 32, 0).damage;
  // Entries in order of damage, kept while their ReLUs fit the budget.
  const auto order = std::get<1>(damage.sort(/*stable=*/true, 0, /*descending=*/true));
  const auto cost = masks.relus_per_entry().index_select(0, order).cumsum(0);
  auto flat = torch::zeros({masks.entries()}, torch::kBool);
  flat.index_put_({order}, cost.le(keep));
  masks.harden(flat);
  // Removing ReLUs moves every activation after them: re-estimate BatchNorm (SNL's binarization
  // step, a few seconds).
  lz::train::recalibrate_batchnorm(net, train, 8);
  fmt::print("linearized here to {} ReLUs by first-order damage on {} training images, BatchNorm "
             "re-estimated, no finetuning\n", masks.relu_count(), s.samples);
}

/// Test images and the C++ network's logits for them, as tests/onnx/check_onnxruntime.js reads
/// them: <dir>/cases.json and <dir>/export/{case.json, input.bin, expected.bin}.
void write_check(lz::NetworkImpl& net, const lz::data::image_dataset& test, int64_t images,
                 const fs::path& dir) {
  const auto x = lz::data::make_batch(test.images.slice(0, 0, images), test.mean, test.stdev, {}, 0);
  net.eval();
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = net.forward(x);
  }
  const auto write = [](const fs::path& path, const torch::Tensor& t) {
    const auto c = t.to(torch::kCPU, torch::kFloat).contiguous();
    std::ofstream out(path, std::ios::binary);
    out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    lz::require(out.good(), "cannot write '", path.string(), "'");
  };
  fs::create_directories(dir / "export");
  write(dir / "export" / "input.bin", x);
  write(dir / "export" / "expected.bin", logits);
  const nlohmann::json c{{"name", "export"},
                         {"model", "../../model.onnx"},
                         {"input", "input.bin"},
                         {"input_shape", x.sizes().vec()},
                         {"expected", "expected.bin"},
                         {"expected_shape", logits.sizes().vec()},
                         {"tolerance", 1e-4},
                         {"relus", lz::MaskSet(net).relu_count()}};
  std::ofstream(dir / "export" / "case.json") << c.dump(1) << '\n';
  std::ofstream(dir / "cases.json") << nlohmann::json::array({c}).dump(1) << '\n';
}

int run(const settings& s) {
  lz::runtime::configure();
  lz::train::baseline_spec spec;
  spec.data_dir = s.data_dir;
  auto base = baseline_for(s, spec);
  auto& net = *base.net;
  const lz::MaskSet masks(net);
  if (!s.weights.empty()) {
    // Every slot hard first: a hard slot takes its mask from the file through harden(), which
    // refuses a mask that is not binary.
    masks.harden(torch::ones({masks.entries()}, torch::kBool));
    lz::io::import_state(net, s.weights);
    fmt::print("weights and masks {}: {} of {} ReLUs kept\n", s.weights, masks.relu_count(),
               masks.total_relus());
  } else if (!s.mask.empty()) {
    masks.load(s.mask);
    fmt::print("mask {}: {} of {} ReLUs kept\n", s.mask, masks.relu_count(), masks.total_relus());
  } else {
    linearize_quickly(net, masks, s, spec);
  }
  const auto test = lz::data::load_dataset(spec.data, spec.data_dir, lz::data::part::test);
  if (s.evaluate)
    fmt::print("linearized network: test top-1 {:.2f}%\n", 100 * lz::train::evaluate(net, test).top1);

  const auto sample = std::vector<int64_t>{base.record.channels, base.record.image_height,
                                           base.record.image_width};
  const auto done = lz::io::export_for_pi(net, sample, s.out);
  fmt::print("\nexported {} to {}/\n", done.graph.network, s.out);
  fmt::print("  ReLUs kept by the masks        {:>9}\n", done.mask_relus);
  fmt::print("  ReLU evaluations in the graph  {:>9}  (counted back from model.onnx: {})\n",
             done.relus, done.onnx_relus);
  fmt::print("  polynomial evaluations         {:>9}\n", done.polynomials);
  fmt::print("  BatchNorms folded              {:>9}\n", done.folded.batchnorms_folded);
  fmt::print("  slots gone (no ReLU left)      {:>9} of {}\n", done.folded.slots_removed, masks.size());
  fmt::print("  graph vs network, max |diff|   {:>9.2e}  (on {} random inputs; outputs up to {:.3g})\n",
             done.max_difference, lz::io::pi_export_options{}.check_samples, done.max_output);
  const auto delphi = lz::pi::delphi();
  fmt::print("  DELPHI estimate per image      {:.3f} s, all ReLUs {:.3f} s\n",
             delphi.latency(done.relus, 0, done.polynomials), delphi.latency(masks.total_relus()));
  for (const auto& f : done.files) fmt::print("  wrote {}\n", f.string());
  if (s.check_images > 0) {
    const auto check = fs::path(s.out) / "check";
    write_check(net, test, std::min(s.check_images, test.size()), check);
    fmt::print("  wrote {}/: {} test images and the C++ logits; compare with ONNX Runtime:\n"
               "    node tests/onnx/check_onnxruntime.js build/node/node_modules {}\n",
               check.string(), std::min(s.check_images, test.size()), check.string());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  cli::app app{"Exports a linearized network for private inference: an ONNX model that evaluates "
               "only the kept ReLUs, plus a JSON manifest and a raw weights file.",
               "export"};
  auto* weights = app.add_option("--weights", s.weights, "a linearized network's weights and "
                                 "masks (io::export_state; the demo writes runs/demo/linearized.pt)")
                      ->check(CLI::ExistingFile);
  app.add_option("--mask", s.mask, "mask file to load onto the baseline (MaskSet::save; the demo "
                 "writes runs/demo/mask); without it or --weights the network is linearized here")
      ->check(CLI::ExistingFile)
      ->excludes(weights);
  app.add_option("--baseline", s.baseline, "baseline weights (with their .json record); default: "
                 "the cached pretrain baseline, else runs/demo/baseline.pt, else a quick one trained now");
  app.add_option("--budget", s.budget, "without --weights or --mask: ReLUs to keep (a count, 2%, 0.02)")
      ->check(cli::budget())
      ->capture_default_str();
  app.add_option("--samples", s.samples, "without --weights or --mask: training images for the first-order estimate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--data-dir", s.data_dir, "Fashion-MNIST directory (default: Debian's dataset-fashion-mnist)");
  app.add_option("--out", s.out, "output directory")->capture_default_str();
  app.add_flag("!--no-evaluate", s.evaluate, "skip the test accuracy of the linearized network");
  app.add_option("--check-images", s.check_images, "test images written to <out>/check with the "
                 "C++ logits, for ONNX Runtime to compare (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return cli::run(app, argc, argv, [&] { return run(s); });
}
