#pragma once
// Where a module lives: the device of its first parameter (or buffer). The trainer moves each
// batch there, so nothing in the training loop assumes the CPU.
#include <torch/torch.h>

namespace linearize::train {

/// The device of the module's first parameter, else its first buffer, else the CPU.
[[nodiscard]] inline torch::Device device_of(const torch::nn::Module& module) {
  for (const auto& p : module.parameters(true))
    if (p.defined()) return p.device();
  for (const auto& b : module.buffers(true))
    if (b.defined()) return b.device();
  return torch::kCPU;
}

}  // namespace linearize::train
