#pragma once
// Summing many tensors over the ranks in a few large flat allreduces instead of one per tensor:
// consecutive tensors of one dtype and device are copied into a flat bucket of up to
// `bucket_bytes`, the buckets are summed together (all started before any is waited for), and
// the sums are copied back. Per-call costs of a collective (latency, a rendezvous of the ranks)
// are then paid a few times per step, not once per parameter; 25 MiB is DDP's bucket size.
#include <linearize/distributed/group.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace linearize::distributed {

inline constexpr int64_t default_bucket_bytes = int64_t{25} << 20;

class flat_buckets {
 public:
  /// Plans buckets for tensors shaped like `like`, in that order (a tensor larger than
  /// `bucket_bytes` gets a bucket of its own).
  explicit flat_buckets(const std::vector<torch::Tensor>& like,
                        int64_t bucket_bytes = default_bucket_bytes) {
    require(bucket_bytes > 0, "flat_buckets: bucket size ", bucket_bytes, " bytes must be positive");
    for (size_t i = 0; i < like.size(); ++i) {
      const auto& t = like[i];
      require(t.defined(), "flat_buckets: tensor ", i, " is undefined");
      const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
      const bool fits = !plan_.empty() && plan_.back().dtype == t.scalar_type() &&
                        plan_.back().device == t.device() &&
                        plan_.back().bytes + bytes <= bucket_bytes;
      if (!fits) plan_.push_back({t.scalar_type(), t.device(), {}, 0, {}});
      auto& b = plan_.back();
      b.members.push_back({i, b.numel(), t.numel()});
      b.bytes += bytes;
    }
    for (auto& b : plan_)
      b.flat = torch::empty({b.numel()}, torch::TensorOptions().dtype(b.dtype).device(b.device));
    count_ = like.size();
  }

  [[nodiscard]] size_t buckets() const { return plan_.size(); }
  [[nodiscard]] int64_t bytes() const {
    int64_t n = 0;
    for (const auto& b : plan_) n += b.bytes;
    return n;
  }

  /// Sums `tensors` (shaped as planned, each multiplied by `scale` first) over `g`'s ranks, in
  /// place, and each of `extra` (small tensors: counts, a loss) in the same round of
  /// collectives (summed in place too: dense, contiguous).
  void sum(const group& g, const std::vector<torch::Tensor>& tensors,
           const std::vector<torch::Tensor>& extra = {}, double scale = 1.0) {
    require(tensors.size() == count_, "flat_buckets: ", tensors.size(), " tensors for a plan of ",
            count_);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> all;
    for (auto& b : plan_) {
      for (const auto& m : b.members) {
        const auto& t = tensors[m.index];
        require(t.numel() == m.numel && t.scalar_type() == b.dtype, "flat_buckets: tensor ", m.index,
                " does not match the plan (", t.numel(), " elements of ", t.scalar_type(), ")");
        b.flat.slice(0, m.offset, m.offset + m.numel).copy_(t.reshape({-1}));
      }
      if (scale != 1.0) b.flat.mul_(scale);
      all.push_back(b.flat);
    }
    for (auto& e : extra) all.push_back(e);
    g.sum(all);
    for (const auto& b : plan_)
      for (const auto& m : b.members) {
        auto t = tensors[m.index];
        t.copy_(b.flat.slice(0, m.offset, m.offset + m.numel).view(t.sizes()));
      }
  }

 private:
  struct member {
    size_t index;
    int64_t offset, numel;
  };
  struct bucket {
    torch::ScalarType dtype;
    torch::Device device;
    std::vector<member> members;
    int64_t bytes;
    torch::Tensor flat;
    [[nodiscard]] int64_t numel() const {
      return members.empty() ? 0 : members.back().offset + members.back().numel;
    }
  };
  std::vector<bucket> plan_;
  size_t count_ = 0;
};

}  // namespace linearize::distributed
