// Weights and masks to and from Python: files that torch.load reads and torch.save writes,
// imported by name with named errors; a round trip through Debian's python3-torch, replacement
// coefficients included.
#include "test_support.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/core/replace_linearized.hpp>
#include <linearize/io/torch_export.hpp>
#include <linearize/models/resnet18_in.hpp>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;
using linearize::testing::temp_dir;

namespace {

std::shared_ptr<models::ResNet18InImpl> small_resnet(bool stem_relu = false, int64_t width = 8) {
  return models::resnet18_in({.channels = 1, .size = 28, .width = width, .stem_relu = stem_relu});
}

/// Moves BN statistics and masks away from their initial values, so that a copy is visible.
void perturb(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net.parameters()) p.add_(torch::randn_like(p) * 0.1);
  for (auto& b : net.buffers())
    if (b.is_floating_point()) b.add_(torch::rand_like(b));
}

bool same_state(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto sa = io::state_dict(a), sb = io::state_dict(b);
  if (sa.size() != sb.size()) return false;
  for (const auto& item : sa)
    if (!sb.contains(item.key()) || !torch::equal(item.value(), sb.at(item.key()))) return false;
  return true;
}

std::string python() {
  const std::string configured = LINEARIZE_TEST_PYTHON;
  return configured.empty() ? "/usr/bin/python3" : configured;  // Debian's, with python3-torch
}

bool python_has_torch() {
  static const bool available =  // asked once: starting Python with torch takes seconds
      std::system((python() + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
  if (available) return true;
  WARN(python() << " cannot import torch (install python3-torch): Python round trip skipped");
  return false;
}

/// Runs `script` (written to dir) with `args`; REQUIREs success and shows its output otherwise.
void run_python(const temp_dir& dir, const std::string& script, const std::vector<std::string>& args) {
  const auto file = dir / "script.py", log = dir / "python.log";
  std::ofstream(file) << script;
  std::string command = python() + " " + file.string();
  for (const auto& a : args) command += " " + a;
  const int status = std::system((command + " >" + log.string() + " 2>&1").c_str());
  INFO("python output:\n" << read_file(log));
  REQUIRE(status == 0);
}

}  // namespace

TEST_CASE("export then import restores every parameter, buffer and mask", "[io]") {
  temp_dir dir("io_roundtrip");
  auto net = small_resnet();
  perturb(*net);
  MaskSet(*net)[4].harden(torch::rand({16, 14, 14}).gt(0.5));  // layer2.0.relu1
  io::export_state(net, dir / "net.pt");

  auto fresh = small_resnet();
  CHECK_FALSE(same_state(*net, *fresh));
  MaskSet(*fresh)[4].harden(torch::ones({16, 14, 14}));
  const auto report = io::import_state(fresh, dir / "net.pt");
  CHECK(report.missing.empty());
  CHECK(report.unexpected.empty());
  CHECK(report.loaded.size() == io::state_dict(*net).size());
  CHECK(same_state(*net, *fresh));
  CHECK(MaskSet(*fresh).relu_count() == MaskSet(*net).relu_count());
  net->eval();
  fresh->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 1, 28, 28});
  CHECK(close(fresh->forward(x), net->forward(x)));

  const auto tensors = io::read_tensors(dir / "net.pt");
  CHECK(tensors.contains("layer2.0.shortcut.0.weight"));
  CHECK(tensors.contains("layer1.0.relu1.mask"));
  CHECK(tensors.at("bn1.num_batches_tracked").scalar_type() == torch::kLong);
}

TEST_CASE("import names a missing or extra tensor, a shape mismatch and a corrupt file", "[io]") {
  temp_dir dir("io_errors");
  io::export_state(small_resnet(true), dir / "stem.pt");
  io::export_state(small_resnet(false), dir / "plain.pt");
  io::export_state(small_resnet(false, 4), dir / "narrow.pt");

  auto net = small_resnet();
  const auto before = io::state_dict(*net);
  expect_error([&] { io::import_state(net, dir / "stem.pt"); },
               "has 1 name(s) the network does not: relu.mask");
  expect_error([&] { io::import_state(small_resnet(true), dir / "plain.pt"); },
               "lacks 1 name(s) of the network: relu.mask");
  expect_error([&] { io::import_state(net, dir / "narrow.pt"); },
               "'conv1.weight' has shape [4, 1, 3, 3] in the file, [8, 1, 3, 3] in the network");
  {
    // nothing changed by the failed imports
    const auto after = io::state_dict(*net);
    for (const auto& item : before) CHECK(torch::equal(item.value(), after.at(item.key())));
  }

  const auto lenient = io::import_state(net, dir / "stem.pt", {.strict = false});
  CHECK(lenient.unexpected == std::vector<std::string>{"relu.mask"});
  CHECK(lenient.missing.empty());
  const auto partial = io::import_state(small_resnet(true), dir / "plain.pt", {.strict = false});
  CHECK(partial.missing == std::vector<std::string>{"relu.mask"});

  // a hard slot refuses a soft mask
  auto hard = small_resnet();
  MaskSet(*hard)[0].harden(torch::ones({8, 28, 28}));
  {
    auto tensors = io::state_dict(*small_resnet());
    tensors.insert_or_assign("layer1.0.relu1.mask", torch::full({8, 28, 28}, 0.5));
    io::write_tensors(dir / "soft.pt", tensors);
  }
  expect_error([&] { io::import_state(hard, dir / "soft.pt"); },
               "'layer1.0.relu1.mask' belongs to a hard (binary) slot");

  {
    std::ofstream(dir / "garbage.pt") << "this is not a pickle";
  }
  expect_error([&] { io::import_state(net, dir / "garbage.pt"); }, "garbage.pt' is not a file");
  {
    const std::string whole = read_file(dir / "plain.pt");
    std::ofstream(dir / "torn.pt", std::ios::binary) << whole.substr(0, whole.size() / 2);
  }
  expect_error([&] { io::import_state(net, dir / "torn.pt"); }, "torn.pt' is not a file");
  expect_error([&] { io::import_state(net, dir / "absent.pt"); }, "absent.pt");
  {
    const auto pickled = torch::pickle_save(c10::IValue(torch::ones({2})));
    std::ofstream(dir / "tensor.pt", std::ios::binary).write(pickled.data(), static_cast<std::streamsize>(pickled.size()));
  }
  expect_error([&] { io::import_state(net, dir / "tensor.pt"); }, "expected a dict of name -> tensor");
}

TEST_CASE("Python's torch reads our export and we read what it saves", "[io]") {
  if (!python_has_torch()) return;
  temp_dir dir("io_python");
  auto net = small_resnet(false, 16);
  perturb(*net);
  io::export_state(net, dir / "from_cpp.pt");
  {
    std::ofstream manifest(dir / "manifest.txt");
    for (const auto& item : io::state_dict(*net)) {
      manifest << item.key() << ' ';
      for (int64_t d = 0; d < item.value().dim(); ++d) manifest << (d ? "x" : "") << item.value().size(d);
      manifest << ' ' << item.value().to(torch::kDouble).sum().item<double>() << '\n';
    }
  }
  run_python(dir, R"(import collections, sys, torch
src, manifest, out_dict, out_ordered, out_bn = sys.argv[1:6]
sd = torch.load(src)
assert type(sd) is dict, type(sd)
rows = [line.split(' ') for line in open(manifest).read().splitlines()]
assert list(sd.keys()) == [r[0] for r in rows], 'names or order differ'
for name, shape, total in rows:
    got = 'x'.join(str(d) for d in sd[name].shape)
    assert got == shape, (name, got, shape)
    assert abs(sd[name].double().sum().item() - float(total)) <= 1e-3 * (1 + abs(float(total))), name
assert sd['bn1.num_batches_tracked'].dtype == torch.int64
sd['linear.bias'] = sd['linear.bias'] + 1.0
sd['layer1.0.relu1.mask'].zero_()
torch.save(sd, out_dict)
torch.save(collections.OrderedDict(sd), out_ordered)
bn = torch.nn.BatchNorm2d(16)
bn.running_mean.fill_(0.25)
torch.save(dict(bn.state_dict()), out_bn)
torch.save(bn.state_dict(), out_bn + '.ordered')
print('python ok')
)",
             {(dir / "from_cpp.pt").string(), (dir / "manifest.txt").string(), (dir / "dict.pt").string(),
              (dir / "ordered.pt").string(), (dir / "bn.pt").string()});

  expect_error([&] { (void)io::read_tensors(dir / "ordered.pt"); },
               "holds a Python OrderedDict (a state_dict() saved as is), which LibTorch's unpickler "
               "cannot read; save a plain dict in Python: torch.save(dict(model.state_dict()), path)");
  expect_error([&] { (void)io::read_tensors(dir / "bn.pt.ordered"); }, "holds a Python OrderedDict");
  auto back = small_resnet(false, 16);
  io::import_state(back, dir / "dict.pt");
  const auto ours = io::state_dict(*net), theirs = io::state_dict(*back);
  CHECK(torch::allclose(theirs.at("linear.bias"), ours.at("linear.bias") + 1));
  CHECK(theirs.at("layer1.0.relu1.mask").eq(0).all().item<bool>());
  CHECK(MaskSet(*back).relu_count() == MaskSet(*net).relu_count() - 16 * 28 * 28);
  for (const auto& item : ours)
    if (item.key() != "linear.bias" && item.key() != "layer1.0.relu1.mask")
      CHECK(torch::equal(item.value(), theirs.at(item.key())));

  // A PyTorch module's own state_dict() (as a plain dict): BatchNorm's buffers match LibTorch's,
  // num_batches_tracked included.
  auto bn = torch::nn::BatchNorm2d(16);
  io::import_state(*bn, dir / "bn.pt");
  CHECK(bn->running_mean.eq(0.25).all().item<bool>());
}

TEST_CASE("a PyTorch ResNet18-IN loads our weights by name and computes the same outputs", "[io]") {
  if (!python_has_torch()) return;
  temp_dir dir("io_pytorch_resnet");
  auto net = small_resnet(false, 16);
  perturb(*net);
  {
    torch::NoGradGuard no_grad;
    const MaskSet masks(*net);
    for (const auto& slot : masks.slots()) slot->mask().fill_(1);  // every ReLU on
  }
  net->eval();
  const auto x = torch::randn({2, 1, 28, 28});
  const auto y = [&] {
    torch::NoGradGuard no_grad;
    return net->forward(x);
  }();
  io::export_state(net, dir / "weights.pt");
  c10::Dict<std::string, at::Tensor> io_pair;
  io_pair.insert("x", x);
  io_pair.insert("y", y);
  io::write_tensors(dir / "io.pt", io_pair);

  // The SNL topology written plainly in PyTorch: loading must be strict once the masks are
  // set aside, i.e. every other name and shape is the one PyTorch code uses.
  run_python(dir, R"(import sys, torch, torch.nn as nn, torch.nn.functional as F
class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.shortcut = nn.Sequential()
        if stride != 1 or i != o:
            self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))
class ResNet18IN(nn.Module):
    def __init__(self, channels, w, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        widths = [(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]
        i = w
        for n, (o, s) in enumerate(widths, 1):
            setattr(self, 'layer%d' % n, nn.Sequential(Block(i, o, s), Block(o, o, 1)))
            i = o
        self.linear = nn.Linear(8 * w, classes)
    def forward(self, x):
        x = self.bn1(self.conv1(x))
        for n in range(1, 5):
            x = getattr(self, 'layer%d' % n)(x)
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))
sd = torch.load(sys.argv[1])
masks = [k for k in sd if k.endswith('.mask')]
assert len(masks) == 16, masks
model = ResNet18IN(1, 16, 10)
model.load_state_dict({k: v for k, v in sd.items() if not k.endswith('.mask')}, strict=True)
model.eval()
io = torch.load(sys.argv[2])
with torch.no_grad():
    y = model(io['x'])
err = (y - io['y']).abs().max().item()
assert err < 1e-4, err
print('max difference', err)
)",
             {(dir / "weights.pt").string(), (dir / "io.pt").string()});
}

TEST_CASE("polynomial replacements: coefficients export, import and round-trip through Python", "[io][replacement]") {
  temp_dir dir("io_polynomial");
  auto net = small_resnet(false, 8);
  replace_linearized(net, polynomial_replacement{});
  perturb(*net);  // moves the coefficients away from the identity too
  const auto c2 = net->named_parameters()["layer1.0.relu1.replacement.c2"].detach().clone();
  io::export_state(net, dir / "net.pt");
  const auto tensors = io::read_tensors(dir / "net.pt");
  for (const auto* name : {"layer1.0.relu1.replacement.c2", "layer1.0.relu1.replacement.c1",
                           "layer4.1.relu2.replacement.c0"})
    CHECK(tensors.contains(name));
  CHECK(torch::equal(tensors.at("layer1.0.relu1.replacement.c2"), c2));

  auto fresh = small_resnet(false, 8);
  replace_linearized(fresh, polynomial_replacement{});
  io::import_state(fresh, dir / "net.pt");
  CHECK(same_state(*net, *fresh));
  // A network without replacements is told which names it lacks.
  expect_error([&] { io::import_state(small_resnet(false, 8), dir / "net.pt"); }, "replacement.c");

  if (!python_has_torch()) return;
  run_python(dir, R"(import sys, torch
sd = torch.load(sys.argv[1])
names = [k for k in sd if '.replacement.' in k]
assert len(names) == 3 * 16, len(names)
assert sd['layer1.0.relu1.replacement.c2'].shape == (8,), sd['layer1.0.relu1.replacement.c2'].shape
sd['layer1.0.relu1.replacement.c2'] = sd['layer1.0.relu1.replacement.c2'] * 2 + 1
torch.save(sd, sys.argv[2])
print('python ok')
)",
             {(dir / "net.pt").string(), (dir / "back.pt").string()});
  io::import_state(fresh, dir / "back.pt");
  CHECK(torch::allclose(fresh->named_parameters()["layer1.0.relu1.replacement.c2"], c2 * 2 + 1));
  CHECK(torch::equal(fresh->named_parameters()["layer4.1.relu2.replacement.c0"],
                     net->named_parameters()["layer4.1.relu2.replacement.c0"]));
}
