#pragma once
// Keeping the replicas of a data-parallel run identical. Every rank holds the whole network and
// applies the same update, so its weights and masks stay those of every other rank as long as
//  - they start equal (broadcast_state: rank 0's state to all, as DDP does at construction),
//  - every rank steps with the same gradient (sum_gradients: the ranks' weighted gradients
//    summed in buckets; masks are parameters, so their gradients travel with the weights'),
//  - BatchNorm's running statistics, which each rank updates from its own shard, are averaged
//    (models/batch_norm.hpp: average_batchnorm_statistics).
// check_replicas verifies it cheaply: one 64-bit checksum per rank over every parameter and
// buffer, gathered and compared; a difference is a linearize::error naming the ranks.
#include <linearize/distributed/buckets.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace linearize::distributed {

/// Overwrites every parameter and buffer with rank 0's.
inline void broadcast_state(const group& g, torch::nn::Module& module) {
  if (g.alone()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> all;
  for (const auto& p : module.parameters(true)) all.push_back(p);
  for (const auto& b : module.buffers(true))
    if (b.defined()) all.push_back(b);
  g.broadcast(all, 0);
}

/// The gradients of `params` (undefined ones count as zeros and become defined), multiplied by
/// `weight`, summed over the ranks in `buckets` (planned over `params`), together with `extra`.
inline void sum_gradients(const group& g, flat_buckets& buckets, const std::vector<torch::Tensor>& params,
                          const std::vector<torch::Tensor>& extra, double weight) {
  std::vector<torch::Tensor> grads;
  grads.reserve(params.size());
  for (const auto& p : params) {
    auto grad = p.grad();
    if (!grad.defined()) {  // every rank must hand the same buckets over
      p.mutable_grad() = torch::zeros_like(p);
      grad = p.grad();
    }
    grads.push_back(grad);
  }
  buckets.sum(g, grads, extra, weight);
}

/// A 64-bit checksum of every parameter and buffer of `module` (FNV-1a over 64-bit words).
[[nodiscard]] inline uint64_t state_checksum(const torch::nn::Module& module) {
  uint64_t h = 1469598103934665603ull;
  const auto add = [&](const torch::Tensor& t) {
    if (!t.defined()) return;
    const auto c = t.detach().to(torch::kCPU).contiguous();
    const auto bytes = static_cast<size_t>(c.numel()) * c.element_size();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 1099511628211ull;
    }
    for (; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto& p : module.parameters(true)) add(p);
  for (const auto& b : module.buffers(true)) add(b);
  return h;
}

/// Fails when some rank's parameters or buffers differ from rank 0's, naming `when` (e.g.
/// "epoch 3") and the ranks.
inline void check_replicas(const group& g, const torch::nn::Module& module, const std::string& when) {
  if (g.alone()) return;
  const uint64_t mine = state_checksum(module);
  int64_t word;
  std::memcpy(&word, &mine, sizeof word);
  const auto all = g.gather(torch::tensor(word, torch::kLong));
  const auto* sums = all.data_ptr<int64_t>();
  std::string differing;
  for (int r = 1; r < g.size(); ++r)
    if (sums[r] != sums[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  require(differing.empty(), "distributed: the replicas diverged by ", when, ": rank(s) ", differing,
          " hold parameters or buffers that differ from rank 0's (state checksums differ); "
          "expected identical replicas (the same gradients and optimizer steps on every rank). "
          "Something changed the network on some ranks only");
}

}  // namespace linearize::distributed
