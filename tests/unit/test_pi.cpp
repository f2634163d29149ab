// Private-inference cost model: the DELPHI preset against the published latencies, per-slot
// reports that add up, linearity in the kept ReLUs, MAC counting of linear layers.
#include "test_support.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/pi/cost_model.hpp>
#include <linearize/pi/cost_report.hpp>
#include <linearize/pi/mac_count.hpp>
#include <linearize/support/format.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

using namespace linearize;
using linearize::testing::expect_error;

namespace {

// A network of three slots in two stages: 2x4x4 = 32, 4x2x2 = 16 (channel masks) and 10 ReLUs.
torch::nn::Sequential three_slots() {
  return torch::nn::Sequential(
      ReluSlot(slot_options{.shape = {2, 4, 4}, .stage = "stage1", .layer = 0}),
      ReluSlot(slot_options{.grain = granularity::channel, .shape = {4, 2, 2}, .stage = "stage1", .layer = 1}),
      ReluSlot(slot_options{.shape = {10}, .stage = "head", .layer = 0}));
}

struct ConvNetImpl : torch::nn::Module {
  ConvNetImpl() {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(8));
    relu = register_module("relu", ReluSlot(slot_options{.shape = {8, 8, 8}}));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).stride(2).padding(1).groups(2)));
    fc = register_module("fc", torch::nn::Linear(16 * 4 * 4, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = conv2(relu(bn(conv1(x))));
    return fc(x.flatten(1));
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  ReluSlot relu{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ConvNet);

}  // namespace

TEST_CASE("delphi() reproduces the published ResNet18 CIFAR-100 latencies within 10%", "[pi]") {
  const auto model = pi::delphi();
  // REFERENCES.md: DELPHI online latency, ResNet18 on CIFAR-100.
  const std::pair<int64_t, double> published[] = {{12'900, 0.291}, {49'900, 1.066}, {120'000, 2.802}, {180'000, 4.054}};
  for (const auto& [relus, seconds] : published) {
    INFO(relus << " ReLUs: model " << model.latency(relus) << " s, published " << seconds << " s");
    CHECK(std::fabs(model.latency(relus) - seconds) <= 0.10 * seconds);
  }
  CHECK(model.latency(0) == 0);  // near-zero intercept
  CHECK(model.seconds_per_relu == Approx(22.5e-6));

  const auto tiny = pi::delphi_tiny_imagenet();
  const std::pair<int64_t, double> tiny_published[] = {{59'400, 1.265}, {99'600, 2.12}, {298'800, 6.28}, {488'800, 10.28}};
  for (const auto& [relus, seconds] : tiny_published) CHECK(std::fabs(tiny.latency(relus) - seconds) <= 0.05 * seconds);
}

TEST_CASE("cost model presets by name, user coefficients, and their validation", "[pi]") {
  CHECK(pi::preset("delphi").seconds_per_relu == pi::delphi().seconds_per_relu);
  CHECK(pi::preset("delphi-tinyimagenet").name == "delphi-tinyimagenet");
  for (const auto& name : pi::preset_names()) CHECK(pi::preset(name).name == name);
  expect_error([] { (void)pi::preset("gazelle"); }, "unknown cost model 'gazelle'; expected one of: delphi");

  const pi::cost_model custom{.name = "mine", .seconds_per_relu = 1e-6, .bytes_per_relu = 100,
                              .seconds_per_mac = 1e-9, .bytes_per_mac = 0.5, .seconds_fixed = 0.25,
                              .bytes_fixed = 1000};
  CHECK(custom.latency(1000, 2'000'000) == Approx(0.25 + 1e-3 + 2e-3));
  CHECK(custom.communication(1000, 2'000'000) == Approx(1000 + 100'000 + 1'000'000));

  expect_error([] { (void)pi::cost_model{.name = "bad", .seconds_per_relu = -1}.latency(1); },
               "cost_model 'bad': seconds_per_relu = -1; expected a finite value >= 0");
  expect_error([] { (void)pi::cost_model{.bytes_per_mac = NAN}.communication(1); }, "bytes_per_mac = nan");
  expect_error([] { (void)pi::delphi().latency(-5); }, "ReLU count -5; expected >= 0");
  expect_error([] { (void)pi::delphi().latency(5, -1); }, "MAC count -1; expected >= 0");
}

TEST_CASE("cost report: per-slot costs add up to the total and follow the mask", "[pi]") {
  auto net = three_slots();
  const MaskSet masks(net);
  const auto model = pi::delphi();

  auto full = pi::estimate(masks, model);
  REQUIRE(full.slots.size() == 3);
  CHECK(full.relus_total == 32 + 16 + 10);
  CHECK(full.relus_kept == full.relus_total);
  CHECK(full.slots[1].name == "1");
  CHECK(full.slots[1].stage == "stage1");
  CHECK(full.slots[1].layer == 1);

  // Linearize: keep 5 elements of slot 0, one channel (4 ReLUs) of slot 1, nothing of slot 2.
  auto flat = torch::zeros({masks.entries()}, torch::kBool);
  flat.slice(0, 0, 5).fill_(true);
  flat[32] = true;
  masks.harden(flat);
  const auto r = pi::estimate(masks, model);
  CHECK(r.relus_kept == 5 + 4);
  CHECK(r.slots[0].kept == 5);
  CHECK(r.slots[1].kept == 4);
  CHECK(r.slots[2].kept == 0);
  CHECK(r.slots[2].seconds == 0);
  double seconds = 0, bytes = 0;
  int64_t kept = 0;
  for (const auto& s : r.slots) {
    seconds += s.seconds;
    bytes += s.bytes;
    kept += s.kept;
  }
  CHECK(kept == r.relus_kept);
  CHECK(seconds == Approx(r.seconds));
  CHECK(bytes == Approx(r.bytes));
  CHECK(r.seconds == model.latency(r.relus_kept));
  CHECK(r.bytes == Approx(9 * 1184.0));

  // With MACs and a fixed cost, the total is slots + linear layers + fixed.
  const pi::cost_model with_linear{.name = "lin", .seconds_per_relu = 2e-6, .bytes_per_relu = 10,
                                   .seconds_per_mac = 1e-9, .bytes_per_mac = 2, .seconds_fixed = 0.5};
  const auto rl = pi::estimate(masks, with_linear, 1'000'000);
  CHECK(rl.linear_seconds == Approx(1e-3));
  CHECK(rl.linear_bytes == Approx(2e6));
  CHECK(rl.seconds == Approx(0.5 + 1e-3 + 9 * 2e-6));
  CHECK(rl.bytes == Approx(2e6 + 90));

  expect_error([&] { (void)pi::estimate(masks, model, -3); }, "MAC count -3; expected >= 0");
  expect_error([&] { (void)pi::estimate(std::vector<relu_tally>{}, model); }, "no slots");
  expect_error([&] { (void)pi::estimate(std::vector<relu_tally>{{"x", "", -1, 4, 5}}, model); },
               "slot 'x' keeps 5 of 4 ReLUs");
}

TEST_CASE("latency and communication scale linearly with the ReLUs kept", "[pi]") {
  auto net = torch::nn::Sequential(ReluSlot(slot_options{.shape = {1000}}));
  const MaskSet masks(net);
  const auto model = pi::delphi();
  std::vector<double> seconds, bytes;
  for (int64_t kept : {0, 250, 500, 750, 1000}) {
    auto flat = torch::arange(1000) < kept;
    masks.harden(flat);
    const auto r = pi::estimate(masks, model);
    REQUIRE(r.relus_kept == kept);
    seconds.push_back(r.seconds);
    bytes.push_back(r.bytes);
  }
  CHECK(seconds[0] == 0);
  for (size_t i = 1; i < seconds.size(); ++i) {
    CHECK(seconds[i] == Approx(static_cast<double>(i) * seconds[1]));
    CHECK(bytes[i] == Approx(static_cast<double>(i) * bytes[1]));
  }
  CHECK(seconds[4] == Approx(1000 * 22.5e-6));
}

TEST_CASE("cost report prints a table with every slot, the linear layers and the total", "[pi]") {
  auto net = three_slots();
  const MaskSet masks(net);
  const auto text = pi::to_string(pi::estimate(masks, pi::delphi(), 123'456'789));
  INFO(text);
  CHECK(text.find("model 'delphi'") != std::string::npos);
  CHECK(text.find("22.5 us and 1.18 kB per ReLU") != std::string::npos);
  CHECK(text.find("stage1") != std::string::npos);
  CHECK(text.find("head") != std::string::npos);
  CHECK(text.find("linear layers (123,456,789 MACs)") != std::string::npos);
  CHECK(text.find("total") != std::string::npos);
  const auto total = text.substr(text.find("\ntotal"));
  CHECK(total.find("58 /    58  100.0%") != std::string::npos);
  CHECK(total.find("1.31 ms") != std::string::npos);  // 58 x 22.5 us = 1.305 ms
  CHECK(total.find("68.7 kB") != std::string::npos);  // 58 x 1184 B
  // All table lines (after the heading) have the same width: columns line up.
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  size_t width = 0;
  while (std::getline(lines, line)) {
    if (width == 0) width = line.size();
    CHECK(line.size() == width);
  }
}

TEST_CASE("count_macs counts convolutions (strided, grouped) and linear layers once each", "[pi]") {
  ConvNet net;
  net->train();
  const auto mean_before = net->bn->running_mean.clone();
  const auto counted = pi::count_macs(net, {3, 8, 8});
  const int64_t conv1 = 8 * 8 * 8 * (3 * 3 * 3);        // out C*H*W x in*kh*kw
  const int64_t conv2 = 16 * 4 * 4 * ((8 / 2) * 3 * 3);  // groups 2: in/groups per output
  const int64_t fc = 10 * 256;
  INFO("ops: " << counted.ops.size());
  REQUIRE(counted.ops.size() == 3);
  CHECK(counted.ops[0].op == "aten::conv2d");
  CHECK(counted.ops[0].macs == conv1);
  CHECK(counted.ops[0].output_shape == std::vector<int64_t>{1, 8, 8, 8});
  CHECK(counted.ops[1].macs == conv2);
  // Linear's C++ functional calls addmm directly for 2-d input with a bias.
  CHECK((counted.ops[2].op == "aten::addmm" || counted.ops[2].op == "aten::linear"));
  CHECK(counted.ops[2].macs == fc);
  CHECK(counted.total() == conv1 + conv2 + fc);
  CHECK(net->is_training());                                   // mode restored
  CHECK(torch::equal(net->bn->running_mean, mean_before));     // statistics untouched

  // Works on a shared_ptr and a plain module too, and on free functions.
  auto seq = std::make_shared<torch::nn::SequentialImpl>(torch::nn::Linear(4, 3), torch::nn::Linear(3, 2));
  CHECK(pi::count_macs(seq, {4}).total() == 4 * 3 + 3 * 2);
  const auto a = torch::randn({2, 5, 7}), b = torch::randn({2, 7, 3});
  CHECK(pi::count_macs_of([&] { (void)torch::matmul(a, b); }).total() == 2 * 5 * 3 * 7);
  CHECK(pi::count_macs_of([&] { (void)torch::relu(a); }).total() == 0);
  const auto w = torch::randn({6, 4, 3, 3});  // transposed: [in, out, k, k]
  const auto x = torch::randn({1, 6, 5, 5});
  CHECK(pi::count_macs_of([&] { (void)torch::conv_transpose2d(x, w); }).total() == 6 * 5 * 5 * (4 * 3 * 3));

  expect_error([&] { (void)pi::count_macs(net, {}); }, "empty sample shape");
  expect_error([&] { (void)pi::count_macs(net, {3, 0, 8}); }, "dimension 0");
  // The count feeds the report.
  const MaskSet masks(net);
  const auto r = pi::estimate(masks, pi::cost_model{.seconds_per_mac = 1e-9}, counted.total());
  CHECK(r.linear_seconds == Approx(1e-9 * static_cast<double>(counted.total())));
}

TEST_CASE("counts are shown with their digits grouped by thousands", "[pi]") {
  CHECK(linearize::grouped(0) == "0");
  CHECK(linearize::grouped(999) == "999");
  CHECK(linearize::grouped(96'000) == "96,000");
  CHECK(linearize::grouped(int64_t{-1'234'567}) == "-1,234,567");
  CHECK(linearize::grouped(std::numeric_limits<int64_t>::min()) == "-9,223,372,036,854,775,808");
  CHECK(linearize::grouped(std::numeric_limits<uint64_t>::max()) == "18,446,744,073,709,551,615");
}

TEST_CASE("garbled-circuit and Cheetah presets reproduce the measurements they come from", "[pi]") {
  const auto gc = pi::garbled_circuits();
  CHECK(gc.seconds_per_relu == 52e-6);           // evaluate online
  CHECK(gc.offline_seconds_per_relu == 102e-6);  // garble offline
  CHECK(gc.bytes_per_relu == 1184);
  CHECK(gc.seconds_per_mac == 0);  // HE offline, as DELPHI
  CHECK(!gc.network_included);

  const auto ot = pi::cheetah();
  // OpenCheetah issue 26: ReLU layers of ResNet50.
  const std::pair<int64_t, double> relus[] = {{50'176, 0.049}, {100'352, 0.099}, {200'704, 0.207}};
  for (const auto& [n, s] : relus) {
    INFO(n << " ReLUs: model " << ot.latency(n) << " s, measured " << s << " s");
    CHECK(std::fabs(ot.latency(n) - s) <= 0.05 * s);
  }
  // The same log's homomorphic 1x1 convolutions (MACs = output elements x input channels).
  const std::pair<int64_t, double> convs[] = {{14 * 14 * 1024 * 256, 1.375}, {7 * 7 * 2048 * 1024, 2.74},
                                              {14 * 14 * 512 * 1024, 2.306}};
  for (const auto& [macs, s] : convs) {  // the rate is within 11% of each; 2.306 s is 11.4% below it
    INFO(macs << " MACs: model " << ot.latency(0, macs) << " s, measured " << s << " s");
    CHECK(std::fabs(ot.latency(0, macs) - s) <= 0.12 * s);
  }
  // In the OT family one convolution costs what a million ReLUs do: linear layers matter again.
  CHECK(ot.latency(0, 51'380'224) > ot.latency(1'000'000));
  CHECK(pi::delphi().latency(0, 51'380'224) == 0);

  for (const auto& name : {"garbled-circuits", "cheetah"}) CHECK(pi::preset(name).name == name);
  for (const auto& name : pi::preset_names()) CHECK(!pi::preset(name).source.empty());
}

TEST_CASE("a network adds transfer time and round trips; end-to-end fits refuse one", "[pi]") {
  CHECK(pi::lan().bytes_per_second == 375e6);  // 3 Gbit/s
  CHECK(pi::lan().round_trip_seconds == 0.3e-3);
  CHECK(pi::wan().bytes_per_second == 50e6);   // 400 Mbit/s
  CHECK(pi::wan().round_trip_seconds == 40e-3);
  CHECK(!pi::no_network().modelled());
  CHECK(pi::network_preset("wan").name == "wan");
  expect_error([] { (void)pi::network_preset("5g"); }, "unknown network '5g'");

  const pi::cost_model m{.name = "m", .seconds_per_relu = 1e-6, .bytes_per_relu = 100,
                         .seconds_per_polynomial = 1e-7, .bytes_per_polynomial = 10,
                         .seconds_per_mac = 1e-9, .bytes_per_mac = 0.5, .seconds_fixed = 0.01,
                         .bytes_fixed = 1000, .rounds_per_relu_layer = 4,
                         .rounds_per_polynomial_layer = 1, .rounds_per_linear_layer = 1,
                         .offline_seconds_per_relu = 1e-4};
  const pi::workload w{.relus = 10'000, .polynomials = 2'000, .macs = 1'000'000, .relu_layers = 3,
                       .polynomial_layers = 2, .linear_layers = 5};
  const auto net = pi::wan();
  const auto c = m.cost(w, net);
  CHECK(c.relu_seconds == Approx(1e-6 * 1e4 + 100 * 1e4 / 50e6 + 4 * 3 * 0.04));
  CHECK(c.polynomial_seconds == Approx(1e-7 * 2e3 + 10 * 2e3 / 50e6 + 1 * 2 * 0.04));
  CHECK(c.linear_seconds == Approx(1e-9 * 1e6 + 0.5 * 1e6 / 50e6 + 1 * 5 * 0.04));
  CHECK(c.fixed_seconds == Approx(0.01 + 1000 / 50e6));
  CHECK(c.seconds == Approx(c.relu_seconds + c.polynomial_seconds + c.linear_seconds + c.fixed_seconds));
  CHECK(c.bytes == Approx(1000 + 100 * 1e4 + 10 * 2e3 + 0.5 * 1e6));
  CHECK(c.rounds == 4 * 3 + 2 + 5);
  CHECK(c.offline_seconds == Approx(1.0));
  // Without a network, the parts are the computation alone, as latency() gives it.
  CHECK(m.cost(w).seconds == Approx(m.latency(w.relus, w.macs, w.polynomials)));
  // The same ReLUs in fewer layers cost fewer round trips.
  auto fewer = w;
  fewer.relu_layers = 1;
  CHECK(m.cost(fewer, net).relu_seconds == Approx(c.relu_seconds - 2 * 4 * 0.04));

  expect_error([&] { (void)pi::delphi().cost(w, pi::lan()); }, "cost_model 'delphi' was fitted end to end");
  expect_error([] { (void)pi::network{.name = "bad", .bytes_per_second = 0}.seconds(1, 1); },
               "network 'bad': bytes_per_second = 0");
}

TEST_CASE("per-layer report: linear layers and slots in the order they run, parts add up", "[pi]") {
  ConvNet net;
  const MaskSet masks(net);
  auto flat = torch::zeros({masks.entries()}, torch::kBool);
  flat.slice(0, 0, 100).fill_(true);
  masks.harden(flat);
  const auto macs = pi::count_macs(net, {3, 8, 8});
  REQUIRE(macs.ops.size() == 3);
  CHECK(macs.ops[0].module == "conv1");
  CHECK(macs.ops[1].module == "conv2");
  CHECK(macs.ops[1].slots_before == 1);
  CHECK(macs.ops[2].module == "fc");  // found from the bias or the transposed weight (addmm)
  CHECK(macs.slots == std::vector<std::string>{"relu"});

  const auto model = pi::cheetah();
  const auto r = pi::estimate(masks, model, macs, pi::wan());
  REQUIRE(r.rows.size() == 4);
  CHECK(!r.rows[0].slot);  // conv1
  CHECK(r.rows[1].slot);   // relu
  CHECK(!r.rows[2].slot);  // conv2
  CHECK(!r.rows[3].slot);  // fc
  CHECK(r.linear[0].name == "conv1");
  double relu = 0, linear = 0;
  for (const auto& s : r.slots) relu += s.seconds;
  for (const auto& l : r.linear) linear += l.seconds;
  CHECK(relu == Approx(r.relu_seconds + r.polynomial_seconds));
  CHECK(linear == Approx(r.linear_seconds));
  CHECK(relu + linear + r.fixed_seconds == Approx(r.seconds));
  CHECK(r.rounds == model.rounds_per_relu_layer + 3 * model.rounds_per_linear_layer);
  // Kept ReLUs at the threshold cost what everything else costs.
  CHECK(r.relu_dominance_threshold() * model.seconds_per_extra_relu(pi::wan()) ==
        Approx(r.seconds - r.relu_seconds));
  // Nothing but ReLUs costs under DELPHI's fit: any ReLU dominates. A free ReLU never does.
  CHECK(pi::estimate(masks, pi::delphi(), macs).relu_dominance_threshold() == 0);
  CHECK(std::isinf(pi::estimate(masks, pi::cost_model{.seconds_per_mac = 1e-9}, macs).relu_dominance_threshold()));

  const auto text = pi::to_string(r);
  INFO(text);
  CHECK(text.find("network 'wan' (400 Mbit/s, 40.0 ms round trip)") != std::string::npos);
  CHECK(text.find("conv2") != std::string::npos);
  CHECK(text.find("rounds") != std::string::npos);
  CHECK(text.find("linear") != std::string::npos);
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  size_t width = 0;
  while (std::getline(lines, line)) {  // columns line up
    if (width == 0) width = line.size();
    CHECK(line.size() == width);
  }

  // A slot with nothing left costs no round trip.
  masks.harden(torch::zeros({masks.entries()}, torch::kBool));
  const auto none = pi::estimate(masks, model, macs, pi::wan());
  CHECK(none.slots[0].rounds == 0);
  CHECK(none.relu_seconds == 0);
  CHECK(none.rounds == 3 * model.rounds_per_linear_layer);
}
