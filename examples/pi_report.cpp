// What a researcher looks at after linearizing a network: its private-inference cost layer by
// layer under each cost-model preset (pi/cost_model.hpp) and network (pi/network.hpp), with the
// ReLU, polynomial and linear cost side by side; where ReLUs stop dominating; the ReLUs kept per
// layer as a bar chart; the cost per layer as grouped bars; and accuracy against ReLU count with
// the published numbers for comparison. No training here: the network is ResNet18-IN as the
// literature counts it (CIFAR, 3x32x32, 491,520 ReLUs) and the mask is made up (a seeded uniform
// choice of --relus ReLUs); the accuracy plot shows published numbers only.
//   pi_report [--relus N] [--out DIR]
#include "cli.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/core/replace_linearized.hpp>
#include <linearize/io/results.hpp>
#include <linearize/io/svg_plot.hpp>
#include <linearize/models/resnet18_in.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/pi/cost_report.hpp>
#include <linearize/pi/mac_count.hpp>
#include <linearize/pi/network.hpp>
#include <linearize/support/runtime.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace lz = linearize;
namespace pi = linearize::pi;
namespace io = linearize::io;

/// Each preset with the networks it makes sense on: end-to-end fits carry their own.
std::vector<std::pair<pi::cost_model, pi::network>> settings() {
  return {{pi::delphi(), pi::no_network()},
          {pi::garbled_circuits(), pi::lan()},
          {pi::garbled_circuits(), pi::wan()},
          {pi::cheetah(), pi::lan()},
          {pi::cheetah(), pi::wan()}};
}

std::string seconds(double s) { return pi::detail::duration(s); }

/// Hardens every slot to a seeded uniform choice of `keep` ReLUs.
void keep_uniformly(const lz::MaskSet& masks, int64_t keep, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto order = torch::randperm(masks.entries(), gen);
  auto flat = torch::zeros({masks.entries()}, torch::kBool);
  flat.index_put_({order.slice(0, 0, keep)}, true);
  masks.harden(flat);
}

io::grouped_bar_chart cost_chart(const pi::cost_report& r) {
  io::grouped_bar_chart c;
  c.title = "Latency per layer, " + r.model.name + (r.net.modelled() ? " on " + r.net.name : std::string());
  c.series = {"ReLU", "polynomial", "linear"};
  for (const auto& row : r.rows) {
    if (row.slot) {
      const auto& s = r.slots[row.index];
      c.groups.push_back(s.name);
      c.values.push_back({s.relu_seconds, s.polynomial_seconds, 0.0});
    } else {
      const auto& l = r.linear[row.index];
      c.groups.push_back(l.name);
      c.values.push_back({0.0, 0.0, l.seconds});
    }
  }
  return c;
}

int run(int64_t relus, const std::filesystem::path& out) {
  lz::runtime::configure();
  auto net = lz::models::resnet18_in({.classes = 100});
  const lz::MaskSet masks(*net);
  lz::require(relus >= 0 && relus <= masks.total_relus(), "--relus ", relus, "; expected 0 to ",
              masks.total_relus());
  const auto macs = pi::count_macs(net, {3, 32, 32});
  fmt::print("{}: {} ReLUs, {} MACs in {} linear layers; mask: {} ReLUs kept, chosen uniformly "
             "(made up, seed 0)\n\n",
             net->describe(), masks.total_relus(), macs.total(), macs.ops.size(), relus);
  keep_uniformly(masks, relus, 0);

  // The per-layer report for each preset, and its plot; then the same mask with AutoReP's
  // polynomial (coefficients at the identity: the cost does not depend on them) in the
  // linearized positions, printed for one setting and plotted for all.
  const auto plot_name = [&](const pi::cost_model& model, const pi::network& network, bool polynomial) {
    return out / ("cost_per_layer_" + model.name + (network.modelled() ? "_" + network.name : "") +
                  (polynomial ? "_polynomials" : "") + ".svg");
  };
  for (const auto& [model, network] : settings()) {
    const auto r = pi::estimate(masks, model, macs, network);
    std::cout << r << "source: " << model.source << "\n\n";
    io::write_svg(plot_name(model, network, false), cost_chart(r));
  }
  lz::replace_linearized(*net, lz::polynomial_replacement{});
  for (const auto& [model, network] : settings()) {
    const auto r = pi::estimate(masks, model, macs, network);
    if (model.name == "garbled-circuits" && network.name == "lan")
      std::cout << "with AutoReP's polynomial in every linearized position:\n" << r << "\n";
    io::write_svg(plot_name(model, network, true), cost_chart(r));
  }
  lz::replace_linearized(*net, lz::identity_replacement{});

  // Where ReLUs stop dominating: the whole network at several budgets, identity and AutoReP's
  // polynomial in the linearized positions.
  const std::vector<int64_t> budgets{masks.total_relus(), 50'000, relus, 6'000, 0};
  fmt::print("latency per image by kept ReLUs (ReLU share of it); last column: kept ReLUs above "
             "which the ReLUs cost more than everything else (always: nothing else costs; never: not "
             "even all {1} ReLUs; from the {0}-ReLU mask)\n", relus, masks.total_relus());
  fmt::print("{:<34}", "model / network");
  for (auto b : budgets) fmt::print("{:>22}", fmt::format("{} ReLUs", b));
  fmt::print("{:>18}\n", "ReLUs dominate >");
  for (const bool polynomial : {false, true}) {
    if (polynomial) lz::replace_linearized(*net, lz::polynomial_replacement{});
    for (const auto& [model, network] : settings()) {
      const std::string label = model.name + (network.modelled() ? " / " + network.name : std::string()) +
                                (polynomial ? " + polynomials" : "");
      fmt::print("{:<34}", label);
      double threshold = 0;
      for (auto b : budgets) {
        keep_uniformly(masks, b, 0);
        const auto r = pi::estimate(masks, model, macs, network);
        fmt::print("{:>22}", fmt::format("{} ({:.0f}%)", seconds(r.seconds),
                                         r.seconds > 0 ? 100 * r.relu_seconds / r.seconds : 0.0));
        if (b == relus) threshold = r.relu_dominance_threshold();
      }
      // Above the network's own ReLU count the ReLUs never dominate, whatever the mask.
      fmt::print("{:>18}\n", threshold == 0                                            ? std::string("always")
                             : threshold > static_cast<double>(masks.total_relus()) ? std::string("never")
                                                                                     : fmt::format("{:.0f}", threshold));
    }
  }
  lz::replace_linearized(*net, lz::identity_replacement{});
  keep_uniformly(masks, relus, 0);

  io::bar_chart bars{.title = "ReLUs kept per layer", .bars = io::bars_from(masks.per_slot())};
  io::write_svg(out / "relus_per_layer.svg", bars);

  // Published ResNet18 / CIFAR-100 numbers (REFERENCES.md); a study adds its own rows with
  // io::accuracy_plot(rows) and keeps these as references.
  io::line_plot plot{.title = "ResNet18 on CIFAR-100: published accuracy per ReLU count"};
  plot.references = {
      {"SNL", {{12.9e3, 66.53}, {14.9e3, 67.17}, {25e3, 70.05}, {29.8e3, 70.18}, {40e3, 72.35}, {49.4e3, 73.75},
               {60e3, 74.85}, {79.1e3, 75.72}, {99.9e3, 75.94}, {120e3, 76.35}, {180e3, 77.65}}},
      {"DeepReDuce", {{12.3e3, 64.97}, {28.7e3, 68.68}, {49.2e3, 69.50}, {57.3e3, 72.68}, {114.7e3, 74.72},
                      {196.6e3, 75.51}, {229.4e3, 76.22}}},
      {"SENet", {{24.6e3, 70.59}, {49.6e3, 75.28}}},
      {"AutoReP", {{12.9e3, 67.73}, {50e3, 74.28}}}};
  io::write_svg(out / "accuracy_vs_relus.svg", plot);

  // One result row, as a benchmark would append it after each run (accuracy not measured here).
  const auto delphi = pi::estimate(masks, pi::delphi(), macs);
  io::result_row row{.method = "example-mask", .relu_count = masks.relu_count(), .pi_latency_s = delphi.seconds};
  row.set("macs", macs.total());
  io::write_csv(out / "results.csv", {row});
  io::write_json(out / "results.json", {row});
  fmt::print("\nwrote {}/{{cost_per_layer_*.svg (with _polynomials: polynomials in the linearized positions), relus_per_layer.svg, accuracy_vs_relus.svg, results.csv, "
             "results.json}}\n", out.string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t relus = 15'000;
  std::filesystem::path out = "pi_report";
  cli::app app{"Private-inference cost of a linearized ResNet18 layer by layer, under each cost model "
               "preset and network, with plots.",
               "pi_report"};
  app.add_option("--relus", relus, "ReLUs the made-up mask keeps")->check(cli::at_least<int64_t>(0));
  app.add_option("--out", out, "output directory");
  return cli::run(app, argc, argv, [&] { return run(relus, out); });
}
