#pragma once
// batch_loader: cuts an in-memory image_dataset into shuffled, augmented, normalized batches.
// Batch `index` of epoch `epoch` is a pure function of (seed, epoch, index): the order is a
// permutation seeded by (seed, epoch) and the augmentation of each batch is seeded by
// (seed, epoch, index). A run resumed at any step therefore sees exactly the batches an
// uninterrupted run would. The next batch is prepared on a background thread while the
// current one trains, so a training step does not wait on data. That thread lives as long as
// the loader: a fresh thread per batch (std::async) pays LibTorch's per-thread start-up on its
// first ATen op (lazy_init_num_threads re-creates the global pthreadpool): measured on a
// 2-core machine, 30-40 ms a batch where making the batch takes ~1 ms (benchmarks/data_bench).
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/distributed/shard.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/seed.hpp>

#include <torch/torch.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

namespace linearize::data {

struct loader_options {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  augmentation augment{};
  uint64_t seed = 0;
  bool prefetch = true;  ///< prepare the next batch on a background thread
  /// Data-parallel training: this loader gives shard `shard_index` of `shard_count` of every
  /// batch (distributed/shard.hpp), the samples and augmentation the whole batch has there.
  /// batch_size stays the global batch's size.
  int shard_index = 0;
  int shard_count = 1;
};

struct batch {
  torch::Tensor images;  ///< float [B, C, H, W], normalized
  torch::Tensor labels;  ///< int64 [B]
  int64_t index = 0;     ///< position in the epoch
};

namespace detail {

/// One long-lived thread running batch-making tasks in order.
class batch_worker {
 public:
  batch_worker() = default;
  batch_worker(const batch_worker&) = delete;
  batch_worker& operator=(const batch_worker&) = delete;
  ~batch_worker() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    ready_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  void submit(std::packaged_task<batch()> task) {
    {
      std::lock_guard lock(mutex_);
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      std::packaged_task<batch()> task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping, nothing left
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();  // an exception goes to the task's future
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<batch()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace detail

class batch_loader {
 public:
  batch_loader(image_dataset data, loader_options options)
      : data_(std::move(data)), options_(options) {
    data_.validate();
    require(options_.batch_size > 0, "batch size ", options_.batch_size, " must be positive");
    require(data_.size() > 0, "dataset '", data_.name, "' is empty");
    require(!options_.drop_last || data_.size() >= options_.batch_size, "dataset '", data_.name,
            "' has ", data_.size(), " samples, fewer than one batch of ", options_.batch_size,
            " with drop_last");
    require(options_.shard_count >= 1 && options_.shard_index >= 0 &&
                options_.shard_index < options_.shard_count,
            "loader: shard ", options_.shard_index, " of ", options_.shard_count,
            "; expected 0 <= shard_index < shard_count");
  }
  batch_loader(const batch_loader&) = delete;
  batch_loader& operator=(const batch_loader&) = delete;
  ~batch_loader() {
    if (pending_.valid()) pending_.wait();
  }

  [[nodiscard]] const image_dataset& dataset() const { return data_; }
  [[nodiscard]] const loader_options& options() const { return options_; }
  [[nodiscard]] int64_t batches_per_epoch() const {
    const int64_t n = data_.size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }

  /// Samples in batch `index` of an epoch (all shards together).
  [[nodiscard]] int64_t batch_samples(int64_t index) const {
    const int64_t begin = index * options_.batch_size;
    return std::min(data_.size(), begin + options_.batch_size) - begin;
  }

  /// Batch `index` of epoch `epoch` (this loader's shard of it), computed on the calling thread.
  [[nodiscard]] batch make(int64_t epoch, int64_t index) const {
    require(index >= 0 && index < batches_per_epoch(), "batch index ", index,
            " out of range [0, ", batches_per_epoch(), ")");
    const int64_t begin = index * options_.batch_size;
    const auto part = distributed::shard_of(batch_samples(index), options_.shard_index, options_.shard_count);
    const auto ids = order(epoch).slice(0, begin + part.begin, begin + part.end);
    const auto seed = derive_seed(options_.seed, {static_cast<uint64_t>(epoch),
                                                  static_cast<uint64_t>(index), 0xa06u});
    return {make_batch(data_.images.index_select(0, ids), data_.mean, data_.stdev,
                       options_.augment, seed, part.begin),
            data_.labels.index_select(0, ids), index};
  }

  /// Starts epoch `epoch` at batch `first` (a resumed run starts mid-epoch).
  void start_epoch(int64_t epoch, int64_t first = 0) {
    require(first >= 0 && first <= batches_per_epoch(), "first batch ", first,
            " out of range [0, ", batches_per_epoch(), "]");
    if (pending_.valid()) pending_.wait();
    pending_ = {};
    epoch_ = epoch;
    next_ = first;
    order_cache_.reset();
    if (options_.prefetch && next_ < batches_per_epoch()) launch(next_);
  }

  /// The next batch of the current epoch, or nothing at its end.
  std::optional<batch> next() {
    if (next_ >= batches_per_epoch()) return std::nullopt;
    batch b;
    if (pending_.valid()) {
      const auto t0 = std::chrono::steady_clock::now();
      b = pending_.get();
      wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } else {
      b = make(epoch_, next_);
    }
    ++next_;
    if (options_.prefetch && next_ < batches_per_epoch()) launch(next_);
    return b;
  }

  /// Seconds next() spent waiting for a prefetched batch: how long training waited on data.
  [[nodiscard]] double wait_seconds() const { return wait_seconds_; }

 private:
  // The sample order of an epoch (cached: computed once per epoch, shared by its batches).
  [[nodiscard]] torch::Tensor order(int64_t epoch) const {
    if (order_cache_ && order_epoch_ == epoch) return *order_cache_;
    torch::Tensor ids;
    if (options_.shuffle) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(
          derive_seed(options_.seed, {static_cast<uint64_t>(epoch), 0x0dde5u}));
      ids = torch::randperm(data_.size(), gen, torch::kLong);
    } else {
      ids = torch::arange(data_.size(), torch::kLong);
    }
    order_cache_ = ids;
    order_epoch_ = epoch;
    return ids;
  }

  void launch(int64_t index) {
    (void)order(epoch_);  // compute the order here, not concurrently on two threads
    std::packaged_task<batch()> task([this, epoch = epoch_, index] { return make(epoch, index); });
    pending_ = task.get_future();
    worker_.submit(std::move(task));
  }

  image_dataset data_;
  loader_options options_;
  int64_t epoch_ = 0, next_ = 0;
  std::future<batch> pending_;
  mutable std::optional<torch::Tensor> order_cache_;
  mutable int64_t order_epoch_ = -1;
  double wait_seconds_ = 0;
  detail::batch_worker worker_;  // last: stopped before the members its tasks read
};

}  // namespace linearize::data
