#pragma once
// Model selection on held-out data, the one way every run here does it: while a run trains,
// keep the weights of the epoch with the best held-out top-1; when it ends, put them back. The
// weights go to a file as soon as an epoch is a new best (a resumed run still returns the best
// epoch), or, for runs that keep no files, to a copy in memory. The best accuracy and epoch are
// named scalars of the run ("best_held_out", "best_epoch", 0-based), saved by every checkpoint.
// In a data-parallel run rank 0 writes the file and every rank restores from it.
#include <linearize/core/network.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/io/torch_export.hpp>
#include <linearize/train/history.hpp>
#include <linearize/train/trainer.hpp>

#include <filesystem>
#include <optional>
#include <system_error>

namespace linearize::train {

struct best_epoch {
  double held_out_top1 = 0;
  int64_t epoch = 0;  ///< 0-based
};

class keep_best_held_out {
 public:
  static constexpr const char* accuracy_key = "best_held_out";
  static constexpr const char* epoch_key = "best_epoch";

  /// `file`: where the best weights go (empty: kept in memory).
  explicit keep_best_held_out(std::filesystem::path file = {}) : file_(std::move(file)) {}

  /// Call from an after_epoch hook: remembers the weights when the epoch's held-out top-1 is a
  /// new best (epochs without a held-out evaluation are passed over).
  void after_epoch(epoch_context& c) {
    if (!c.record.eval) return;
    auto& best = c.values.try_emplace(accuracy_key, -1.0).first->second;
    if (c.record.eval->top1 <= best) return;
    if (file_.empty())
      copy_ = c.net.copy();
    else if (distributed::world().writer())
      io::export_state(c.net, file_);
    best = c.record.eval->top1;
    c.values[epoch_key] = static_cast<double>(c.epoch);
  }

  /// Puts the best epoch's weights into `net` after the run `h`; nullopt when no epoch was
  /// evaluated (the network then stays as the last epoch left it).
  std::optional<best_epoch> restore(NetworkImpl& net, const history& h) const {
    const auto acc = h.values.find(accuracy_key);
    const auto epoch = h.values.find(epoch_key);
    if (acc == h.values.end() || epoch == h.values.end() || acc->second < 0) return std::nullopt;
    if (copy_) {
      copy_state(*copy_, net);
    } else if (!file_.empty()) {
      distributed::world().barrier();  // rank 0 has written the file
      if (!std::filesystem::exists(file_)) return std::nullopt;
      io::import_state(net, file_);
    } else {
      return std::nullopt;
    }
    return best_epoch{acc->second, static_cast<int64_t>(epoch->second)};
  }

  /// Removes the file of the best weights (once the run's result is safe elsewhere).
  void discard() const {
    std::error_code ec;
    if (!file_.empty() && distributed::world().writer()) std::filesystem::remove(file_, ec);
  }

 private:
  std::filesystem::path file_;
  Network copy_;
};

}  // namespace linearize::train
