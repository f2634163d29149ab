#pragma once
// Sharding: which part of n items (the samples of a global batch, the samples of an evaluation
// set, the batches of a scoring round) a rank takes. Contiguous parts in rank order, their sizes
// differing by at most one, so that the parts laid end to end are the items in their order:
// what one process would have done, cut into pieces.
#include <linearize/support/error.hpp>

#include <cstdint>

namespace linearize::distributed {

struct shard {
  int64_t begin = 0, end = 0;
  [[nodiscard]] constexpr int64_t size() const { return end - begin; }
  [[nodiscard]] constexpr bool empty() const { return end == begin; }
};

/// Rank `rank`'s part of [0, n) among `ranks`: the first n % ranks ranks take one item more.
[[nodiscard]] inline shard shard_of(int64_t n, int rank, int ranks) {
  require(n >= 0 && ranks >= 1 && rank >= 0 && rank < ranks, "shard_of: ", n, " items, rank ", rank,
          " of ", ranks, "; expected n >= 0 and 0 <= rank < ranks");
  const int64_t base = n / ranks, extra = n % ranks, r = rank;
  const int64_t begin = r * base + (r < extra ? r : extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

}  // namespace linearize::distributed
