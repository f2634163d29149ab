// The model zoo: exact ReLU counts (the numbers the literature quotes), stages and layer indices
// of every slot, PyTorch-compatible parameter names, deep copies, granularity, bad options.
#include "test_support.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/models/mobilenet_v1.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/models/resnet18_in.hpp>
#include <linearize/models/wide_resnet.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;

namespace {

int64_t relus(const torch::nn::Module& net) { return MaskSet(net).total_relus(); }

std::map<std::string, int64_t> stage_totals(const torch::nn::Module& net) {
  std::map<std::string, int64_t> out;
  for (const auto& row : MaskSet(net).per_stage()) out[row.stage] = row.total;
  return out;
}

/// Every slot has a stage and a layer index, and the indices of a stage are 0, 1, 2, ...
void check_slot_positions(const torch::nn::Module& net) {
  std::map<std::string, std::vector<int>> layers;
  const MaskSet masks(net);
  for (size_t i = 0; i < masks.size(); ++i) {
    INFO("slot " << masks.name(i));
    CHECK_FALSE(masks[i].options.stage.empty());
    CHECK(masks[i].options.layer >= 0);
    layers[masks[i].options.stage].push_back(masks[i].options.layer);
  }
  for (const auto& [stage, indices] : layers) {
    INFO("stage " << stage);
    for (size_t i = 0; i < indices.size(); ++i) CHECK(indices[i] == static_cast<int>(i));
  }
}

std::set<std::string> parameter_and_buffer_names(const torch::nn::Module& net) {
  std::set<std::string> names;
  for (const auto& p : net.named_parameters()) names.insert(p.key());
  for (const auto& b : net.named_buffers()) names.insert(b.key());
  return names;
}

/// Independent count for the CIFAR MobileNetV1: stem + (depthwise + pointwise) per block, each
/// at the block's output resolution.
int64_t mobilenet_formula(int64_t size, double alpha) {
  const auto c = [&](int64_t n) { return static_cast<int64_t>(static_cast<double>(n) * alpha); };
  const std::vector<std::pair<int64_t, int64_t>> config{
      {64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2}, {512, 1},
      {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
  int64_t in = c(32), total = c(32) * size * size;
  for (const auto& [out, stride] : config) {
    size = (size + stride - 1) / stride;
    total += (in + c(out)) * size * size;
    in = c(out);
  }
  return total;
}

}  // namespace

TEST_CASE("ResNet18-IN has the ReLU counts of the literature", "[models]") {
  CHECK(relus(*models::resnet18_in()) == 491'520);
  CHECK(relus(*models::resnet18_in({.stem_relu = true})) == 557'056);
  CHECK(relus(*models::resnet18_in({.classes = 200, .size = 64})) == 1'966'080);
  // Fashion-MNIST at width 16: 16*784*4 + 32*196*4 + 64*49*4 + 128*16*4.
  const auto fmnist = models::resnet18_in({.channels = 1, .size = 28, .width = 16});
  CHECK(relus(*fmnist) == 96'000);
  CHECK(MaskSet(*fmnist).size() == 16);
}

TEST_CASE("ResNet18-IN stages hold the counts DeepReDuce culls by", "[models]") {
  const auto net = models::resnet18_in({.stem_relu = true});
  const auto stages = stage_totals(*net);
  CHECK(stages.size() == 5);
  CHECK(stages.at("stem") == 65'536);
  CHECK(stages.at("layer1") == 262'144);
  CHECK(stages.at("layer2") == 131'072);
  CHECK(stages.at("layer3") == 65'536);
  CHECK(stages.at("layer4") == 32'768);
  check_slot_positions(*net);
  const MaskSet masks(*net);
  CHECK(masks.name(0) == "relu");
  CHECK(masks.name(1) == "layer1.0.relu1");
  CHECK(masks.name(2) == "layer1.0.relu2");
  CHECK(masks[4].options.stage == "layer1");
  CHECK(masks[4].options.layer == 3);  // layer1.1.relu2
}

TEST_CASE("ResNet18-IN runs on CIFAR, TinyImageNet-size and Fashion-MNIST inputs", "[models]") {
  torch::NoGradGuard no_grad;
  auto cifar = models::resnet18_in({.classes = 100});
  cifar->eval();
  CHECK(cifar->forward(torch::randn({2, 3, 32, 32})).sizes() == std::vector<int64_t>{2, 100});
  auto tiny = models::resnet18_in({.classes = 200, .size = 64, .width = 16});
  CHECK(tiny->forward(torch::randn({2, 3, 64, 64})).sizes() == std::vector<int64_t>{2, 200});
  auto fmnist = models::resnet18_in({.channels = 1, .size = 28, .width = 16, .stem_relu = true});
  CHECK(fmnist->forward(torch::randn({2, 1, 28, 28})).sizes() == std::vector<int64_t>{2, 10});
  CHECK(fmnist->describe() == "resnet18_in(classes=10, channels=1, size=28, width=16, stem_relu=true)");
  CHECK(models::resnet18_in({.channels = 1, .size = 28, .width = 16})->describe() ==
        "resnet18_in(classes=10, channels=1, size=28, width=16)");
  expect_error([&] { fmnist->forward(torch::randn({2, 3, 28, 28})); },
               "expected [batch, 1, 28, 28]");
}

TEST_CASE("ResNet18-IN parameter names are those of the PyTorch code", "[models]") {
  const auto names = parameter_and_buffer_names(*models::resnet18_in({.width = 16}));
  for (const char* name :
       {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.bn1.running_mean",
        "layer1.0.conv2.weight", "layer1.1.bn2.weight", "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.weight", "layer2.0.shortcut.1.running_var", "layer4.1.conv2.weight",
        "linear.weight", "linear.bias", "layer1.0.relu1.mask", "layer1.0.relu2.mask",
        "layer4.1.relu2.mask"}) {
    INFO(name);
    CHECK(names.count(name) == 1);
  }
  CHECK(names.count("layer1.0.shortcut.0.weight") == 0);  // identity shortcut: no parameters
  CHECK(names.count("layer2.1.shortcut.0.weight") == 0);
  CHECK(names.count("conv1.bias") == 0);
  CHECK(names.count("relu.mask") == 0);  // no stem ReLU by default
  // 20 conv + 1 linear weights, 20 BNs x 5 tensors, the linear bias, 16 masks.
  CHECK(names.size() == 21 + 20 * 5 + 1 + 16);
}

TEST_CASE("WideResNet-22-8 has 1,359,872 ReLUs", "[models]") {
  const auto net = models::wide_resnet();
  CHECK(relus(*net) == 1'359'872);
  const auto stages = stage_totals(*net);
  CHECK(stages.at("block1") == 16 * 1024 + 5 * 131'072);
  CHECK(stages.at("block2") == 128 * 1024 + 5 * 65'536);
  CHECK(stages.at("block3") == 256 * 256 + 5 * 32'768);
  check_slot_positions(*net);
  CHECK(MaskSet(*net).size() == 18);
  CHECK(net->describe() == "wide_resnet(depth=22, widen=8, classes=10, channels=3, size=32)");

  const auto names = parameter_and_buffer_names(*net);
  for (const char* name : {"conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.conv1.weight",
                           "block1.layer.0.convShortcut.weight", "block2.layer.0.convShortcut.weight",
                           "block3.layer.2.relu2.mask", "bn1.running_mean", "fc.weight"}) {
    INFO(name);
    CHECK(names.count(name) == 1);
  }
  CHECK(names.count("block1.layer.1.convShortcut.weight") == 0);
}

TEST_CASE("WideResNet depth and widen factor are options", "[models]") {
  torch::NoGradGuard no_grad;
  // WRN-16-1: 2 blocks per group, widths 16, 32, 64.
  auto small = models::wide_resnet({.depth = 16, .widen = 1, .classes = 5});
  // group1 keeps its shape (no shortcut conv); group2/3 start with relu1 on the previous width.
  CHECK(relus(*small) == 4 * 16 * 1024 + (16 * 1024 + 3 * 32 * 256) + (32 * 256 + 3 * 64 * 64));
  small->eval();
  CHECK(small->forward(torch::randn({2, 3, 32, 32})).sizes() == std::vector<int64_t>{2, 5});
  expect_error([] { (void)models::wide_resnet({.depth = 21}); }, "depth = 21");
  expect_error([] { (void)models::wide_resnet({.widen = 0}); }, "widen = 0");
}

TEST_CASE("MobileNetV1 counts agree with an independent formula", "[models]") {
  torch::NoGradGuard no_grad;
  auto net = models::mobilenet_v1();
  const int64_t count = relus(*net);
  CHECK(count == mobilenet_formula(32, 1.0));
  CHECK(count == 411'648);
  CHECK(MaskSet(*net).size() == 27);
  check_slot_positions(*net);
  const auto stages = stage_totals(*net);
  CHECK(stages.size() == 6);
  CHECK(stages.at("stem") == 32 * 1024);
  CHECK(stages.at("stage5") == 512 * 4 + 3 * 1024 * 4);  // blocks 11 and 12 at 2x2

  auto half = models::mobilenet_v1({.classes = 100, .multiplier = 0.5});
  CHECK(relus(*half) == mobilenet_formula(32, 0.5));
  half->eval();
  CHECK(half->forward(torch::randn({2, 3, 32, 32})).sizes() == std::vector<int64_t>{2, 100});
  CHECK(half->describe() == "mobilenet_v1(classes=100, channels=3, size=32, multiplier=0.5)");

  const auto names = parameter_and_buffer_names(*net);
  for (const char* name : {"conv1.weight", "bn1.running_var", "relu.mask", "layers.0.conv1.weight",
                           "layers.0.bn2.weight", "layers.12.relu2.mask", "linear.weight"}) {
    INFO(name);
    CHECK(names.count(name) == 1);
  }
  CHECK(net->named_parameters()["layers.1.conv1.weight"].sizes() == std::vector<int64_t>{64, 1, 3, 3});
  expect_error([] { (void)models::mobilenet_v1({.multiplier = 0}); }, "multiplier = 0");
  expect_error([] { (void)models::mobilenet_v1({.multiplier = 0.01}); }, "multiplier = 0.01");
  expect_error([] { (void)models::mobilenet_v1({.size = 8}); }, "input size 8");
}

TEST_CASE("copy() gives an independent network with identical outputs", "[models]") {
  torch::NoGradGuard no_grad;
  struct case_ {
    Network net;
    int64_t channels, size;
  };
  std::vector<case_> cases{{models::resnet18_in({.channels = 1, .size = 28, .width = 8}), 1, 28},
                           {models::wide_resnet({.depth = 10, .widen = 1}), 3, 32},
                           {models::mobilenet_v1({.multiplier = 0.25}), 3, 32}};
  for (auto& [net, channels, size] : cases) {
    INFO(net->describe());
    const auto x = torch::randn({2, channels, size, size});
    net->train();
    net->forward(x);  // moves the BN statistics away from their initial values
    MaskSet(*net)[1].harden(MaskSet(*net)[1].mask().detach().zero_());
    net->eval();
    auto twin = net->copy();
    CHECK_FALSE(twin->is_training());
    CHECK(twin->describe() == net->describe());
    CHECK(close(twin->forward(x), net->forward(x)));
    CHECK(MaskSet(*twin).relu_count() == MaskSet(*net).relu_count());
    CHECK(MaskSet(*twin)[1].is_hard());
    const auto before = twin->forward(x);
    for (auto& p : net->parameters()) p.mul_(0.5);
    CHECK(close(twin->forward(x), before));
    CHECK_FALSE(close(net->forward(x), before));
  }
}

TEST_CASE("granularity changes mask shapes, not counts", "[models]") {
  for (auto grain : {granularity::element, granularity::channel, granularity::layer}) {
    INFO(to_string(grain));
    const auto net = models::resnet18_in({.width = 16, .grain = grain});
    const MaskSet masks(*net);
    CHECK(masks.total_relus() == 491'520 / 4);
    const auto shape = masks[0].mask().sizes().vec();
    if (grain == granularity::element) CHECK(shape == std::vector<int64_t>{16, 32, 32});
    if (grain == granularity::channel) CHECK(shape == std::vector<int64_t>{16});
    if (grain == granularity::layer) CHECK(shape == std::vector<int64_t>{1});
    CHECK(relus(*models::wide_resnet({.widen = 1, .grain = grain})) ==
          relus(*models::wide_resnet({.widen = 1})));
    CHECK(relus(*models::mobilenet_v1({.grain = grain})) == 411'648);
  }
  CHECK(models::resnet18_in({.grain = granularity::channel})->describe() ==
        "resnet18_in(classes=10, channels=3, size=32, width=64, grain=channel)");
}

TEST_CASE("bad model options are named in the error", "[models]") {
  expect_error([] { (void)models::resnet18_in({.classes = 0}); }, "classes = 0");
  expect_error([] { (void)models::resnet18_in({.width = 0}); }, "width = 0");
  expect_error([] { (void)models::resnet18_in({.channels = -1}); }, "channels = -1");
  expect_error([] { (void)models::resnet18_in({.size = 4}); },
               "input size 4 is too small for the network's total stride 8");
  expect_error([] { (void)models::wide_resnet({.classes = 0}); }, "classes = 0");
  expect_error([] { (void)models::wide_resnet({.size = 2}); }, "input size 2");
  expect_error([] { (void)models::mobilenet_v1({.classes = 0}); }, "classes = 0");
}

TEST_CASE("models by name", "[models]") {
  const auto names = models::model_names();
  for (const char* shipped : {"mobilenet_v1", "resnet18_in", "wide_resnet_22_8"})
    CHECK(std::find(names.begin(), names.end(), shipped) != names.end());
  CHECK(std::is_sorted(names.begin(), names.end()));
  const auto resnet = models::make_model("resnet18_in", {.classes = 10, .channels = 1, .size = 28, .width = 16});
  CHECK(resnet->describe() == "resnet18_in(classes=10, channels=1, size=28, width=16)");
  CHECK(relus(*resnet) == 96'000);
  CHECK(relus(*models::make_model("resnet18_in", {.stem_relu = true})) == 557'056);
  CHECK(relus(*models::make_model("wide_resnet_22_8")) == 1'359'872);
  CHECK(models::make_model("wide_resnet_22_8", {.width = 2})->describe() ==
        "wide_resnet(depth=22, widen=2, classes=10, channels=3, size=32)");
  CHECK(relus(*models::make_model("mobilenet_v1", {.grain = granularity::layer})) == 411'648);
  CHECK(models::model_info_of("resnet18_in").baseline_width == 16);
  CHECK(models::model_info_of("mobilenet_v1").width_knob == "width multiplier");
  expect_error([] { (void)models::make_model("resnet18_in", {.width = 1.5}); }, "width = 1.5");
  expect_error([] { (void)models::make_model("mobilenet_v1", {.width = -1}); },
               "mobilenet_v1: width = -1; expected a positive width multiplier");
  expect_error([] { (void)models::make_model("mobilenet_v1", {.stem_relu = true}); },
               "stem_relu is not an option of 'mobilenet_v1'");
}

namespace {

// A model of the test's own, registered the way a user's header registers one: the library's
// files know nothing of it.
struct probe_options {
  int64_t classes = 10, channels = 3, size = 8, width = 3;
};

class ProbeNetImpl : public NetworkFromOptions<ProbeNetImpl> {
 public:
  explicit ProbeNetImpl(probe_options o) : options(o) {
    conv = register_module("conv", models::conv(o.channels, o.width, 3));
    relu = register_module("relu", models::slot(granularity::element, o.width, o.size, "stage1", 0));
    fc = register_module("fc", torch::nn::Linear(o.width, o.classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    return fc(torch::adaptive_avg_pool2d(relu(conv(x)), {1, 1}).flatten(1));
  }
  [[nodiscard]] std::string describe() const override {
    return "probe_net(width=" + std::to_string(options.width) + ")";
  }
  const probe_options options;
  torch::nn::Conv2d conv{nullptr};
  ReluSlot relu{nullptr};
  torch::nn::Linear fc{nullptr};
};

Network make_probe(const models::model_spec& s) {
  return std::make_shared<ProbeNetImpl>(probe_options{
      s.classes, s.channels, s.size, models::whole_width("probe_net", *s.width)});
}

const models::registration probe_registration{
    {.name = "probe_net", .make = make_probe, .width_knob = "channels of the conv", .default_width = 3}};

}  // namespace

TEST_CASE("a model defined outside the library registers itself and is made by name", "[models]") {
  const auto names = models::model_names();
  CHECK(std::find(names.begin(), names.end(), "probe_net") != names.end());
  const auto net = models::make_model("probe_net", {.classes = 4, .channels = 1, .size = 6});
  CHECK(net->describe() == "probe_net(width=3)");  // the registered default width
  CHECK(relus(*net) == 3 * 6 * 6);
  CHECK(net->forward(torch::randn({2, 1, 6, 6})).sizes() == torch::IntArrayRef({2, 4}));
  CHECK(relus(*models::make_model("probe_net", {.channels = 1, .size = 6, .width = 5})) == 5 * 6 * 6);
  // It copies like a shipped model (NetworkFromOptions).
  CHECK(net->copy()->describe() == "probe_net(width=3)");

  // An unknown name lists every registered model, the user's included.
  try {
    (void)models::make_model("resnet50");
    FAIL("expected an error");
  } catch (const linearize::error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.starts_with("unknown model 'resnet50'; expected one of: "));
    for (const auto& name : names) CHECK(message.find(name) != std::string::npos);
    CHECK(message.find("probe_net") != std::string::npos);
  }

  // Two models of one name: making it says so instead of picking one.
  models::model_registry local;
  local.add({.name = "twin", .make = make_probe});
  local.add({.name = "twin", .make = make_probe});
  expect_error([&] { (void)local.at("twin"); }, "model 'twin' is registered by two different headers");
  expect_error([] { (void)models::model_registry{}.at("x"); }, "none registered");
}
