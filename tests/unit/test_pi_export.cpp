// Export for private inference: the traced graph computes what the network computes (the
// shipped models and a user's network; element, channel and layer masks; identity and polynomial
// replacements), BatchNorm is folded, identity slots vanish, the ONNX file evaluates exactly the
// kept ReLUs (counted from the file), the manifest reads back to the same graph, and what cannot
// be expressed is refused by name. "[onnx_cases]" writes the cases tests/onnx/check_onnxruntime.js
// runs under ONNX Runtime (ctest onnxruntime_matches_cpp).
#include "test_support.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/core/replace_linearized.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/fashion_mnist.hpp>
#include <linearize/io/onnx_export.hpp>
#include <linearize/io/onnx_relu_count.hpp>
#include <linearize/io/pi_export.hpp>
#include <linearize/io/pi_fold.hpp>
#include <linearize/io/pi_graph.hpp>
#include <linearize/io/pi_manifest.hpp>
#include <linearize/io/pi_trace.hpp>
#include <linearize/models/layers.hpp>
#include <linearize/models/mobilenet_v1.hpp>
#include <linearize/models/resnet18_in.hpp>
#include <linearize/models/wide_resnet.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace linearize;
using linearize::testing::expect_error;
using linearize::testing::temp_dir;

namespace {

/// BatchNorm statistics and affine parameters away from (0, 1): folding them must matter.
void randomize_batchnorm(torch::nn::Module& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& m : net.named_modules()) {
    const auto randomize = [&](auto* bn) {
      const auto c = bn->running_mean.numel();
      bn->running_mean.copy_(torch::randn({c}, gen) * 0.5);
      bn->running_var.copy_(torch::rand({c}, gen) * 1.5 + 0.5);
      bn->weight.copy_(torch::rand({c}, gen) + 0.5);
      bn->bias.copy_(torch::randn({c}, gen) * 0.2);
    };
    if (auto* bn = m.value()->as<torch::nn::BatchNorm2dImpl>()) randomize(bn);
    if (auto* bn = m.value()->as<torch::nn::BatchNorm1dImpl>()) randomize(bn);
  }
}

/// Hardens every slot to a seeded random binary mask keeping about `keep` of the entries.
void random_mask(torch::nn::Module& net, double keep, uint64_t seed) {
  const MaskSet masks(net);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  masks.harden(torch::rand({masks.entries()}, gen).lt(keep));
}

/// AutoReP's polynomial on every slot, with seeded coefficients away from the identity.
void random_polynomials(torch::nn::Module& net, uint64_t seed) {
  replace_linearized(net, polynomial_replacement{});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const MaskSet masks(net);
  for (const auto& slot : masks.slots()) {
    auto poly = slot->replacement_as<PolynomialImpl>();
    REQUIRE(poly != nullptr);
    const auto c = poly->channels();
    poly->set_coefficients(torch::randn({c}, gen) * 0.1, torch::randn({c}, gen) * 0.2 + 1,
                           torch::randn({c}, gen) * 0.1);
  }
}

std::shared_ptr<models::ResNet18InImpl> resnet(granularity grain = granularity::element) {
  auto net = models::resnet18_in({.classes = 10, .channels = 1, .size = 28, .width = 4, .grain = grain});
  randomize_batchnorm(*net, 7);
  return net;
}

int count(const io::pi_graph& g, io::pi_op op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.op == op;
  return n;
}

/// A user's network from the same layers: conv with bias + BN, max and average pooling, a
/// channel-mask slot, a linear layer over the last dimension of a 3-d activation (LibTorch runs
/// it as matmul + an in-place bias), flatten, a fully connected layer with BatchNorm1d and a slot
/// on it, and a second head on the spatial mean, added to the first.
class UserNetImpl : public NetworkImpl {
 public:
  UserNetImpl() {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 6, 3).padding(1)));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(6));
    relu1 = register_module("relu1", ReluSlot(slot_options{.shape = {6, 28, 28}}));
    conv2 = register_module("conv2", models::conv(6, 8, 3));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(8));
    relu2 = register_module("relu2", ReluSlot(slot_options{.grain = granularity::channel, .shape = {8, 14, 14}}));
    fc1 = register_module("fc1", torch::nn::Linear(8 * 7 * 7, 16));
    bn3 = register_module("bn3", torch::nn::BatchNorm1d(16));
    relu3 = register_module("relu3", ReluSlot(slot_options{.shape = {16}}));
    fc2 = register_module("fc2", torch::nn::Linear(16, 10));
    mix = register_module("mix", torch::nn::Linear(7, 7));
    head = register_module("head", torch::nn::Linear(8, 10));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::max_pool2d(relu1(bn1(conv1(x))), 2);
    const auto y = relu2(bn2(conv2(x)));
    x = mix(torch::avg_pool2d(y, 2)).flatten(1);
    return fc2(relu3(bn3(fc1(x)))) + head(y.mean({2, 3}));
  }
  [[nodiscard]] std::shared_ptr<NetworkImpl> copy() const override {
    auto out = std::make_shared<UserNetImpl>();
    copy_state(*this, *out);
    return out;
  }
  [[nodiscard]] std::string describe() const override { return "user_net"; }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::BatchNorm1d bn3{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, mix{nullptr}, head{nullptr};
  ReluSlot relu1{nullptr}, relu2{nullptr}, relu3{nullptr};
};

/// A small network whose forward pass does `step` between a conv and its slot.
template <class Step>
struct OddNetImpl : torch::nn::Module {
  explicit OddNetImpl(Step s) : step(std::move(s)) {
    conv = register_module("conv", models::conv(1, 4, 3));
    relu = register_module("relu", ReluSlot(slot_options{.shape = {4, 8, 8}}));
  }
  torch::Tensor forward(torch::Tensor x) { return relu(step(conv(x))).flatten(1); }
  Step step;
  torch::nn::Conv2d conv{nullptr};
  ReluSlot relu{nullptr};
};

/// ReLU evaluations counted back from a written ONNX file.
int64_t onnx_relus(const io::pi_graph& g, const temp_dir& dir, const std::string& name) {
  const auto path = dir / (name + ".onnx");
  io::write_onnx(g, path);
  return io::count_onnx_relus(path).total();
}

}  // namespace

TEST_CASE("the PI graph of ResNet18 reproduces it: element mask, BatchNorm folded", "[pi_export]") {
  auto net = resnet();
  random_mask(*net, 0.3, 1);
  const MaskSet masks(*net);
  const auto r = io::pi_graph_of(*net, {1, 28, 28});
  CHECK(r.max_difference < 1e-4);
  CHECK(r.relus == masks.relu_count());
  CHECK(r.mask_relus == masks.relu_count());
  CHECK(r.polynomials == 0);
  // Every BatchNorm follows a convolution in ResNet18: stem, 2 per block, 3 shortcuts.
  CHECK(r.folded.batchnorms_folded == 1 + 8 * 2 + 3);
  CHECK(count(r.graph, io::pi_op::affine) == 0);
  CHECK(count(r.graph, io::pi_op::conv) == 1 + 8 * 2 + 3);
  CHECK(count(r.graph, io::pi_op::slot) == 16);
  CHECK(count(r.graph, io::pi_op::add) == 8);

  temp_dir dir("pi_resnet");
  CHECK(onnx_relus(r.graph, dir, "resnet") == masks.relu_count());
}

TEST_CASE("the PI graph keeps what the mask says: whole slots vanish or become plain ReLUs", "[pi_export]") {
  auto net = resnet();
  const MaskSet masks(*net);
  auto flat = torch::zeros({masks.entries()}, torch::kBool);
  // slot 0 fully kept, slot 1 fully linearized, slot 2 one position, the rest linearized
  flat.slice(0, masks.offset(0), masks.offset(1)).fill_(true);
  flat[masks.offset(2) + 5] = true;
  masks.harden(flat);
  const auto r = io::pi_graph_of(*net, {1, 28, 28});
  CHECK(r.relus == masks.relu_count());
  CHECK(r.folded.slots_removed == static_cast<int>(masks.size()) - 2);
  REQUIRE(count(r.graph, io::pi_op::slot) == 2);
  std::vector<int64_t> kept;
  for (const auto& n : r.graph.nodes)
    if (n.op == io::pi_op::slot) kept.push_back(n.relu_positions.numel());
  CHECK(kept == std::vector<int64_t>{masks[0].total_relus(), 1});

  temp_dir dir("pi_whole");
  CHECK(onnx_relus(r.graph, dir, "whole") == masks.relu_count());
  // the fully kept slot is one plain Relu over the whole activation
  const auto tally = io::count_onnx_relus(dir / "whole.onnx");
  REQUIRE(tally.nodes.size() == 2);
  CHECK(tally.nodes[0].per_sample == masks[0].total_relus());
}

TEST_CASE("a fully linear network exports without a single ReLU", "[pi_export]") {
  auto net = resnet();
  const MaskSet masks(*net);
  masks.harden(torch::zeros({masks.entries()}, torch::kBool));
  const auto r = io::pi_graph_of(*net, {1, 28, 28});
  CHECK(r.relus == 0);
  CHECK(count(r.graph, io::pi_op::slot) == 0);
  temp_dir dir("pi_linear");
  CHECK(onnx_relus(r.graph, dir, "linear") == 0);
}

TEST_CASE("channel and layer masks export at element positions", "[pi_export]") {
  for (const auto grain : {granularity::channel, granularity::layer}) {
    INFO("granularity " << to_string(grain));
    auto net = resnet(grain);
    random_mask(*net, 0.5, 3);
    const MaskSet masks(*net);
    const auto r = io::pi_graph_of(*net, {1, 28, 28});
    CHECK(r.max_difference < 1e-4);
    CHECK(r.relus == masks.relu_count());
    temp_dir dir("pi_grain");
    CHECK(onnx_relus(r.graph, dir, "grain") == masks.relu_count());
  }
}

TEST_CASE("polynomial positions evaluate their polynomial, and only they", "[pi_export]") {
  auto net = resnet();
  random_polynomials(*net, 5);
  random_mask(*net, 0.2, 4);
  const MaskSet masks(*net);
  const auto r = io::pi_graph_of(*net, {1, 28, 28});
  CHECK(r.max_difference < 1e-4);
  CHECK(r.relus == masks.relu_count());
  CHECK(r.polynomials == masks.polynomial_count());
  CHECK(r.polynomials + r.relus == masks.total_relus());
  temp_dir dir("pi_poly");
  CHECK(onnx_relus(r.graph, dir, "poly") == masks.relu_count());

  // A fully linearized polynomial slot is the polynomial over the whole activation, no ReLU.
  masks.harden(torch::zeros({masks.entries()}, torch::kBool));
  const auto all = io::pi_graph_of(*net, {1, 28, 28});
  CHECK(all.relus == 0);
  CHECK(all.polynomials == masks.total_relus());
  CHECK(onnx_relus(all.graph, dir, "all_poly") == 0);
}

TEST_CASE("WideResNet and MobileNetV1 export: unfoldable BatchNorm, depthwise convolutions", "[pi_export]") {
  auto wrn = models::wide_resnet({.depth = 10, .widen = 1, .classes = 10, .channels = 1, .size = 16});
  randomize_batchnorm(*wrn, 11);
  random_mask(*wrn, 0.4, 12);
  const auto w = io::pi_graph_of(*wrn, {1, 16, 16});
  CHECK(w.max_difference < 1e-4);
  CHECK(w.relus == MaskSet(*wrn).relu_count());
  // pre-activation: the BatchNorms before relu1 read a block's input and stay affine nodes
  CHECK(count(w.graph, io::pi_op::affine) > 0);
  CHECK(w.folded.batchnorms_folded > 0);

  auto mobile = models::mobilenet_v1({.classes = 10, .channels = 1, .size = 16, .multiplier = 0.25});
  randomize_batchnorm(*mobile, 13);
  random_mask(*mobile, 0.4, 14);
  const auto m = io::pi_graph_of(*mobile, {1, 16, 16});
  CHECK(m.max_difference < 1e-4);
  CHECK(m.relus == MaskSet(*mobile).relu_count());
  bool depthwise = false;
  for (const auto& n : m.graph.nodes) depthwise |= n.op == io::pi_op::conv && n.groups > 1;
  CHECK(depthwise);
  temp_dir dir("pi_zoo");
  CHECK(onnx_relus(w.graph, dir, "wrn") == w.relus);
  CHECK(onnx_relus(m.graph, dir, "mobilenet") == m.relus);
}

TEST_CASE("a user's network from the same layers exports", "[pi_export]") {
  auto net = std::make_shared<UserNetImpl>();
  randomize_batchnorm(*net, 21);
  random_mask(*net, 0.5, 22);
  const auto r = io::pi_graph_of(*net, {1, 28, 28});
  CHECK(r.max_difference < 1e-4);
  CHECK(r.relus == MaskSet(*net).relu_count());
  CHECK(count(r.graph, io::pi_op::max_pool) == 1);
  CHECK(count(r.graph, io::pi_op::avg_pool) == 1);
  CHECK(count(r.graph, io::pi_op::affine) == 0);  // BatchNorm1d folded into fc1
  CHECK(count(r.graph, io::pi_op::gemm) == 4);    // fc1, fc2, mix (matmul + bias), head
  CHECK(count(r.graph, io::pi_op::global_avg_pool) == 1);
  CHECK(count(r.graph, io::pi_op::add) == 1);
  temp_dir dir("pi_user");
  CHECK(onnx_relus(r.graph, dir, "user") == r.relus);
}

TEST_CASE("the manifest reads back to the graph it was written from", "[pi_export]") {
  auto net = resnet();
  random_polynomials(*net, 31);
  random_mask(*net, 0.3, 32);
  temp_dir dir("pi_manifest");
  const auto done = io::export_for_pi(*net, {1, 28, 28}, dir.path);
  CHECK(done.onnx_relus == MaskSet(*net).relu_count());
  CHECK(std::filesystem::exists(dir / "model.onnx"));
  const auto back = io::read_pi_manifest(dir.path);
  CHECK(back.relu_count() == done.relus);
  CHECK(back.polynomial_count() == done.polynomials);
  CHECK(back.nodes.size() == done.graph.nodes.size());
  const auto x = torch::randn({3, 1, 28, 28});
  CHECK(torch::equal(io::evaluate(back, x), io::evaluate(done.graph, x)));

  // A corrupted data file is refused by its checksum.
  {
    std::fstream f(dir / "weights.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  expect_error([&] { (void)io::read_pi_manifest(dir.path); }, "checksum");
}

TEST_CASE("what a PI graph cannot express is refused by name", "[pi_export]") {
  {
    OddNetImpl net([](const torch::Tensor& x) { return torch::relu(x); });
    expect_error([&] { (void)io::pi_graph_of(net, {1, 8, 8}); }, "ReLU outside a linearize::ReluSlot");
  }
  {
    OddNetImpl net([](const torch::Tensor& x) { return torch::sigmoid(x); });
    expect_error([&] { (void)io::pi_graph_of(net, {1, 8, 8}); }, "operator aten::sigmoid (after 'conv')");
  }
  {
    OddNetImpl net([](const torch::Tensor& x) { return x.clone().mul_(2); });
    expect_error([&] { (void)io::pi_graph_of(net, {1, 8, 8}); }, "works in place");
  }
  {
    OddNetImpl net([](const torch::Tensor& x) { return x + torch::ones_like(x); });
    expect_error([&] { (void)io::pi_graph_of(net, {1, 8, 8}); }, "aten::ones_like");
  }
  {
    OddNetImpl net([](const torch::Tensor& x) { return x; });
    net.relu->set_gate(torch::full({4, 8, 8}, 0.5));
    expect_error([&] { (void)io::pi_graph_of(net, {1, 8, 8}); }, "slot 'relu' has a soft gate");
  }
  {
    auto net = models::resnet18_in({.channels = 1, .size = 28, .width = 4});
    auto unstable = models::BatchNorm2d(torch::nn::BatchNorm2dOptions(4).track_running_stats(false));
    net->bn1 = net->replace_module("bn1", unstable);
    expect_error([&] { (void)io::pi_graph_of(*net, {1, 28, 28}); }, "module 'bn1' (aten::batch_norm)");
  }
}

TEST_CASE("a replacement the export cannot express is refused, naming the slot", "[pi_export]") {
  struct ShiftImpl : torch::nn::Cloneable<ShiftImpl> {
    void reset() override {}
    torch::Tensor forward(const torch::Tensor& x) { return x + 1; }
    [[nodiscard]] replacement_cost cost() const { return replacement_cost::linear; }
  };
  struct shift_replacement {
    [[nodiscard]] std::shared_ptr<ShiftImpl> make(const replacement_site&) const {
      return std::make_shared<ShiftImpl>();
    }
  };
  auto net = resnet();
  replace_linearized(*net, shift_replacement{});
  random_mask(*net, 0.5, 41);
  expect_error([&] { (void)io::pi_graph_of(*net, {1, 28, 28}); }, "slot 'layer1.0.relu1' replaces");
}

TEST_CASE("the ONNX checker accepts the export and the metadata holds the counts", "[pi_export]") {
  auto net = resnet();
  random_mask(*net, 0.1, 51);
  const auto r = io::pi_graph_of(*net, {1, 28, 28});
  const auto model = io::to_onnx(r.graph);
  CHECK(model.opset_import(0).version() == io::onnx_opset);
  std::string relus;
  for (const auto& p : model.metadata_props())
    if (p.key() == "relu_count") relus = p.value();
  CHECK(relus == std::to_string(MaskSet(*net).relu_count()));
  CHECK(io::count_onnx_relus(model).total() == MaskSet(*net).relu_count());
}

// ---- cases for ONNX Runtime (tests/onnx/check_onnxruntime.js) ---------------------------------

#ifndef LINEARIZE_ONNX_CASES_DIR
#define LINEARIZE_ONNX_CASES_DIR "onnx_cases"
#endif

namespace {

void write_floats(const std::filesystem::path& path, const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kFloat).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  REQUIRE(out.good());
}

/// Exports `net`, runs it on `images`, and writes what the Node runner compares.
template <class Net>
nlohmann::json write_case(const std::filesystem::path& root, const std::string& name, Net& net,
                          const std::vector<int64_t>& sample, const torch::Tensor& images) {
  const auto dir = root / name;
  std::filesystem::create_directories(dir);
  const auto done = io::export_for_pi(net, sample, dir);
  REQUIRE(done.onnx_relus == done.relus);
  net.eval();
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = net.forward(images);
  }
  // The runner's tolerance is absolute: logits that blew up (random polynomials compound over
  // 16 slots) would make float rounding look like a mismatch, so such a case is refused here.
  const double largest = logits.abs().max().item<double>();
  INFO(name << ": largest |logit| " << largest);
  REQUIRE(largest < 1e3);
  write_floats(dir / "input.bin", images);
  write_floats(dir / "expected.bin", logits);
  const nlohmann::json c{{"name", name},
                         {"model", "model.onnx"},
                         {"input", "input.bin"},
                         {"input_shape", images.sizes().vec()},
                         {"expected", "expected.bin"},
                         {"expected_shape", logits.sizes().vec()},
                         {"tolerance", 1e-4},
                         {"relus", done.relus},
                         {"mask_relus", done.mask_relus}};
  std::ofstream(dir / "case.json") << c.dump(1) << '\n';
  return c;
}

}  // namespace

TEST_CASE("write the ONNX Runtime cases: ResNet18 at width 4 on Fashion-MNIST test images", "[onnx_cases]") {
  const std::filesystem::path root = LINEARIZE_ONNX_CASES_DIR;
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  const auto test = data::load_fashion_mnist("", data::part::test);
  const auto images = data::make_batch(test.images.slice(0, 0, 8), test.mean, test.stdev, {}, 0);
  nlohmann::json cases = nlohmann::json::array();
  // The convolutions' initial weights come from LibTorch's global generator. A seed of its own
  // keeps the cases' files the same whatever the runner seeds (one unseeded run's polynomial
  // network reached logits of 1.3e15).
  torch::manual_seed(60);

  auto element = resnet();
  random_mask(*element, 0.3, 61);
  cases.push_back(write_case(root, "resnet18_element_mask", *element, {1, 28, 28}, images));

  auto channel = resnet(granularity::channel);
  random_mask(*channel, 0.5, 62);
  cases.push_back(write_case(root, "resnet18_channel_mask", *channel, {1, 28, 28}, images));

  auto poly = resnet();
  random_polynomials(*poly, 63);
  random_mask(*poly, 0.2, 64);
  cases.push_back(write_case(root, "resnet18_polynomial", *poly, {1, 28, 28}, images));

  auto linear = resnet();
  MaskSet(*linear).harden(torch::zeros({MaskSet(*linear).entries()}, torch::kBool));
  cases.push_back(write_case(root, "resnet18_fully_linear", *linear, {1, 28, 28}, images));

  auto user = std::make_shared<UserNetImpl>();
  randomize_batchnorm(*user, 65);
  random_mask(*user, 0.5, 66);
  cases.push_back(write_case(root, "user_network", *user, {1, 28, 28}, images));

  std::ofstream(root / "cases.json") << cases.dump(1) << '\n';
  CHECK(cases.size() == 5);
  CHECK(cases[3]["relus"] == 0);
}
