// Quick-start demo (for now): builds a small convolutional network whose every ReLU is a
// linearize::ReluSlot and prints the ReLUs each layer holds: the quantity private inference pays for.
#include <linearize/linearize.hpp>

#include <cstdio>

namespace {

struct SmallNetImpl : torch::nn::Module {
  SmallNetImpl() {
    using linearize::slot_options;
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 3).padding(1)));
    relu1 = register_module("relu1", linearize::ReluSlot(slot_options{.shape = {16, 28, 28}, .stage = "stage1"}));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).stride(2).padding(1)));
    relu2 = register_module("relu2", linearize::ReluSlot(slot_options{.shape = {32, 14, 14}, .stage = "stage2"}));
    fc = register_module("fc", torch::nn::Linear(32 * 14 * 14, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = relu2(conv2(relu1(conv1(x))));
    return fc(x.flatten(1));
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  linearize::ReluSlot relu1{nullptr}, relu2{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(SmallNet);

}  // namespace

int main() {
  const auto rt = linearize::runtime::configure();
  std::printf("linearize: %d threads, %s\n", rt.threads, rt.allocator_name().c_str());
  SmallNet net;
  const linearize::MaskSet masks(*net);
  std::printf("%-10s %-8s %10s %10s\n", "slot", "stage", "ReLUs", "active");
  for (const auto& row : masks.per_slot())
    std::printf("%-10s %-8s %10lld %10lld\n", row.name.c_str(), row.stage.c_str(),
                static_cast<long long>(row.total), static_cast<long long>(row.active));
  // Linearize the second layer's odd channels: half of its ReLUs go.
  auto keep = torch::arange(32) % 2 == 0;
  auto& relu2 = masks[1];
  relu2.harden(keep.view({32, 1, 1}).expand({32, 14, 14}));
  std::printf("after linearizing half of relu2's channels: %lld of %lld ReLUs remain\n",
              static_cast<long long>(masks.relu_count()), static_cast<long long>(masks.total_relus()));
  auto logits = net(torch::randn({2, 1, 28, 28}));
  std::printf("forward ok: logits %lld x %lld\n", static_cast<long long>(logits.size(0)),
              static_cast<long long>(logits.size(1)));
  return 0;
}
