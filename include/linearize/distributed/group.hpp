#pragma once
// The processes of a data-parallel run, as the rest of the library sees them. Training,
// evaluation, candidate scoring and the BatchNorm layers call through `group`: a handle that is
// this process alone by default, where every collective is a no-op and costs nothing. A
// `communicator` does the work for a group of several processes (distributed/process_group.hpp
// puts one on torch's c10d, Gloo or NCCL); this header knows no backend, so everything above it
// builds without c10d's headers.
//
// The run's group is process-wide, as torch.distributed's default group is: programs set it
// once (distributed::init_from_env, or cli.hpp's --nproc) and every rank then calls the
// library's functions in the same order (SPMD). Inside `on_this_rank` a rank works alone (a
// stage of DeepReDuce's criticality measured by one rank while the others measure theirs).
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace linearize::distributed {

/// What a backend does for a group of several processes. Every call is a collective: all ranks
/// make it, in the same order, with tensors of the same shapes and dtypes.
class communicator {
 public:
  virtual ~communicator() = default;
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  [[nodiscard]] virtual std::string backend() const = 0;
  /// Sums each tensor (dense, contiguous) over the ranks, in place. All are started before any
  /// is waited for, so a list of buckets travels concurrently.
  virtual void sum(std::vector<torch::Tensor>& tensors) = 0;
  /// Overwrites each tensor with rank `root`'s.
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root) = 0;
  virtual void barrier() = 0;
};

/// What the collectives of a group have cost this process so far.
struct traffic {
  int64_t collectives = 0;  ///< calls of sum / broadcast / barrier
  int64_t bytes = 0;        ///< payload handed to them (each rank's own tensors)
  double seconds = 0;       ///< wall time inside them, waiting for the other ranks included
};

class group {
 public:
  /// This process alone.
  group() = default;
  explicit group(std::shared_ptr<communicator> c)
      : comm_(std::move(c)), traffic_(std::make_shared<distributed::traffic>()) {
    require(comm_ != nullptr, "distributed::group: null communicator");
    rank_ = comm_->rank();
    size_ = comm_->size();
    require(size_ >= 1 && rank_ >= 0 && rank_ < size_, "distributed::group: rank ", rank_,
            " of ", size_, "; expected 0 <= rank < size");
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// Whether there is no other rank (every collective then returns at once).
  [[nodiscard]] bool alone() const { return size_ == 1; }
  /// Rank 0 writes the files of the run (checkpoints, results); the others read them.
  [[nodiscard]] bool writer() const { return rank_ == 0; }
  [[nodiscard]] std::string backend() const { return comm_ ? comm_->backend() : "none"; }
  [[nodiscard]] distributed::traffic traffic() const { return traffic_ ? *traffic_ : distributed::traffic{}; }

  /// Sums each tensor over the ranks, in place (a non-contiguous one through a copy).
  void sum(std::vector<torch::Tensor>& tensors) const {
    if (alone() || tensors.empty()) return;
    timed([&] {
      std::vector<torch::Tensor> dense;
      dense.reserve(tensors.size());
      for (const auto& t : tensors) {
        require(t.defined(), "distributed::group::sum: undefined tensor");
        dense.push_back(t.is_contiguous() ? t : t.contiguous());
      }
      comm_->sum(dense);
      for (size_t i = 0; i < tensors.size(); ++i)
        if (!dense[i].is_same(tensors[i])) tensors[i].copy_(dense[i]);
    }, tensors);
  }
  void sum(torch::Tensor& tensor) const {
    std::vector<torch::Tensor> one{tensor};
    sum(one);
  }

  /// Every rank's `t` (same shape and dtype on every rank), stacked in rank order: [size, ...].
  [[nodiscard]] torch::Tensor gather(const torch::Tensor& t) const {
    if (alone()) return t.unsqueeze(0).clone();
    std::vector<int64_t> shape{size_};
    for (const auto s : t.sizes()) shape.push_back(s);
    auto all = torch::zeros(shape, t.options());
    all.select(0, rank_).copy_(t);
    sum(all);
    return all;
  }

  /// Every rank's text, in rank order (e.g. serialized history rows).
  [[nodiscard]] std::vector<std::string> gather_text(const std::string& text) const {
    if (alone()) return {text};
    const auto lengths = gather(torch::tensor(static_cast<int64_t>(text.size()), torch::kLong));
    const auto* n = lengths.data_ptr<int64_t>();
    int64_t total = 0, offset = 0;
    for (int r = 0; r < size_; ++r) {
      if (r < rank_) offset += n[r];
      total += n[r];
    }
    auto bytes = torch::zeros({total}, torch::kByte);
    if (!text.empty())
      std::memcpy(bytes.data_ptr<uint8_t>() + offset, text.data(), text.size());
    sum(bytes);
    std::vector<std::string> out;
    const auto* p = reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>());
    for (int r = 0; r < size_; ++r) {
      out.emplace_back(p, static_cast<size_t>(n[r]));
      p += n[r];
    }
    return out;
  }

  /// Overwrites each tensor with rank `root`'s (through a contiguous copy where needed).
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0) const {
    if (alone() || tensors.empty()) return;
    require(root >= 0 && root < size_, "distributed::group::broadcast: root ", root,
            " is not a rank of this group of ", size_);
    timed([&] {
      std::vector<torch::Tensor> dense;
      for (const auto& t : tensors) dense.push_back(t.is_contiguous() ? t : t.contiguous());
      comm_->broadcast(dense, root);
      for (size_t i = 0; i < tensors.size(); ++i)
        if (!dense[i].is_same(tensors[i])) tensors[i].copy_(dense[i]);
    }, tensors);
  }

  /// Returns once every rank has called it.
  void barrier() const {
    if (alone()) return;
    timed([&] { comm_->barrier(); }, {});
  }

 private:
  template <class F>
  void timed(F&& f, const std::vector<torch::Tensor>& payload) const {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    traffic_->seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++traffic_->collectives;
    for (const auto& t : payload) traffic_->bytes += static_cast<int64_t>(t.numel() * t.element_size());
  }

  std::shared_ptr<communicator> comm_;
  std::shared_ptr<distributed::traffic> traffic_;
  int rank_ = 0, size_ = 1;
};

namespace detail {
struct world_state {
  group world{};
  int local_depth = 0;  ///< nesting of on_this_rank scopes
};
inline world_state& state() {
  static world_state s;
  return s;
}
}  // namespace detail

/// The group of the run this process belongs to: this process alone unless a program joined a
/// group (set_world), and alone inside on_this_rank.
[[nodiscard]] inline group world() {
  const auto& s = detail::state();
  return s.local_depth > 0 ? group{} : s.world;
}

/// This process's rank in the run, also inside on_this_rank: progress lines go by it (rank 0
/// prints), where files and collectives go by world().
[[nodiscard]] inline int process_rank() { return detail::state().world.rank(); }

/// Makes `g` the run's group (distributed::init_from_env does this).
inline void set_world(group g) { detail::state().world = std::move(g); }

/// While it lives, world() is this process alone: work one rank does by itself (its own
/// files, no collectives). Every rank's collectives resume when it ends.
class on_this_rank {
 public:
  on_this_rank() { ++detail::state().local_depth; }
  on_this_rank(const on_this_rank&) = delete;
  on_this_rank& operator=(const on_this_rank&) = delete;
  ~on_this_rank() { --detail::state().local_depth; }
};

}  // namespace linearize::distributed
