#pragma once
// A module tree with slots of three granularities in nested modules (a plain member, a
// Sequential, a ModuleList): 4 slots, 58 ReLUs, 39 mask entries. MaskSet's tests and the mask
// file's fuzz target read masks into it.
#include <linearize/core/granularity.hpp>
#include <linearize/core/relu_slot.hpp>

#include <torch/torch.h>

namespace linearize::testing {

struct MaskNetImpl : torch::nn::Module {
  MaskNetImpl() {
    stem = register_module("stem", ReluSlot(slot_options{.shape = {2, 3, 3}, .stage = "stem"}));
    body = register_module(
        "body", torch::nn::Sequential(
                    torch::nn::Identity(),
                    ReluSlot(slot_options{.grain = granularity::channel, .shape = {2, 3, 3},
                                          .stage = "body", .layer = 0}),
                    ReluSlot(slot_options{.shape = {2, 3, 3}, .stage = "body", .layer = 1})));
    heads = register_module("heads", torch::nn::ModuleList(
                                         ReluSlot(slot_options{.grain = granularity::layer,
                                                               .shape = {4}, .stage = "head"})));
  }
  ReluSlot stem{nullptr};
  torch::nn::Sequential body{nullptr};
  torch::nn::ModuleList heads{nullptr};
};
TORCH_MODULE(MaskNet);

}  // namespace linearize::testing
