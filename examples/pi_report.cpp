// What a researcher looks at after linearizing a network: the private-inference cost per layer
// (DELPHI preset), the ReLUs kept per layer as a bar chart, and accuracy against ReLU count with
// the published numbers for comparison. No training here: the mask is made up (every other
// channel of the first layer linearized), the accuracy plot shows published numbers only.
//   pi_report [output directory]
#include "cli.hpp"

#include <linearize/linearize.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

namespace {

struct SmallNetImpl : torch::nn::Module {
  SmallNetImpl() {
    using linearize::slot_options;
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 16, 3).padding(1)));
    relu1 = register_module("relu1", linearize::ReluSlot(slot_options{.shape = {16, 32, 32}, .stage = "stage1"}));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).stride(2).padding(1)));
    relu2 = register_module("relu2", linearize::ReluSlot(slot_options{.shape = {32, 16, 16}, .stage = "stage2"}));
    fc = register_module("fc", torch::nn::Linear(32 * 16 * 16, 10));
  }
  torch::Tensor forward(torch::Tensor x) { return fc(relu2(conv2(relu1(conv1(x)))).flatten(1)); }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  linearize::ReluSlot relu1{nullptr}, relu2{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(SmallNet);

}  // namespace

int main(int argc, char** argv) {
  namespace io = linearize::io;
  namespace pi = linearize::pi;
  cli::app app{"The private-inference cost per layer of a small network with a made-up mask, a ReLU bar "
               "chart and the published accuracy-per-ReLU numbers as plots.", "pi_report"};
  std::filesystem::path out = "pi_report";
  app.add_option("out", out, "output directory");
  return cli::run(app, argc, argv, [&] {
    linearize::runtime::configure();

    SmallNet net;
    const linearize::MaskSet masks(*net);
    masks[0].harden((torch::arange(16) % 2 == 0).view({16, 1, 1}).expand({16, 32, 32}));

    // Cost per slot; the MAC count only matters for protocols that charge linear layers online.
    const auto macs = pi::count_macs(net, {3, 32, 32});
    const auto cost = pi::estimate(masks, pi::delphi(), macs.total());
    std::cout << cost << '\n';

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
    io::result_row row{.method = "example-mask", .relu_count = masks.relu_count(), .pi_latency_s = cost.seconds};
    row.set("macs", macs.total());
    io::write_csv(out / "results.csv", {row});
    io::write_json(out / "results.json", {row});
    fmt::print("wrote {}/{{relus_per_layer.svg, accuracy_vs_relus.svg, results.csv, results.json}}\n",
               out.string());
    return 0;
  });
}
