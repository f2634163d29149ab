#pragma once
// Candidate blocks for coordinate descent: which active mask entries to linearize together.
//
// A block holds at least `drc` ReLUs: entries are taken in a random order until their ReLUs
// reach `drc` (or none are left). With element masks (one ReLU per entry) that is exactly `drc`
// entries; with channel or layer masks a block can exceed `drc` by less than one entry's ReLUs,
// since an entry is linearized whole.
//
// Two ways to draw:
//  - uniform: from all active entries (the paper's procedure);
//  - ranked: from a pool of the entries with the least estimated damage per ReLU (first_order.hpp).
//    Try k draws from the pool of the best drc * (1 + k * pool_growth) ReLUs: the first try is
//    the greedy block, later tries reach further down the ranking, so a search that keeps
//    failing gradually turns into uniform draws.
// Every draw is a pure function of its seed (std::mt19937_64, whose output the standard fixes,
// and an unbiased bounded integer of our own, not std::uniform_int_distribution, whose
// algorithm each standard library chooses), so a resumed search draws the same blocks.
#include <linearize/core/mask_set.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace linearize::select {

enum class proposal { uniform, first_order };

[[nodiscard]] constexpr std::string_view to_string(proposal p) {
  return p == proposal::uniform ? "uniform" : "first_order";
}
[[nodiscard]] inline proposal parse_proposal(std::string_view text) {
  for (auto p : {proposal::uniform, proposal::first_order})
    if (text == to_string(p)) return p;
  fail("unknown block proposal '", text, "'; expected uniform or first_order");
}

namespace detail {
/// A uniform integer in [0, n): rejection of the top partial range, so no value is favoured.
inline uint64_t below(std::mt19937_64& gen, uint64_t n) {
  const uint64_t limit = (UINT64_MAX / n) * n;
  uint64_t x = gen();
  while (x >= limit) x = gen();
  return x % n;
}
}  // namespace detail

/// Draws entries of `candidates` (int64 [A], flat entry indices) in a random order until their
/// ReLUs (`relus`, int64 [A], ReLUs per candidate) reach `drc`; returns them sorted.
[[nodiscard]] inline torch::Tensor draw_block(const torch::Tensor& candidates,
                                              const torch::Tensor& relus, int64_t drc,
                                              uint64_t seed) {
  require(drc > 0, "draw_block: drc ", drc, " must be positive");
  require(candidates.dim() == 1 && relus.dim() == 1 && candidates.numel() == relus.numel(),
          "draw_block: ", candidates.numel(), " candidates and ", relus.numel(),
          " ReLU counts; expected one count per candidate");
  const auto ids = candidates.to(torch::kCPU, torch::kLong).contiguous();
  const auto cost = relus.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = ids.numel();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::mt19937_64 gen(seed);
  const int64_t* id = ids.data_ptr<int64_t>();
  const int64_t* c = cost.data_ptr<int64_t>();
  std::vector<int64_t> block;
  int64_t taken = 0;
  // Partial Fisher-Yates: position i receives a uniform pick among the entries not yet taken.
  for (int64_t i = 0; i < n && taken < drc; ++i) {
    const auto j = i + static_cast<int64_t>(detail::below(gen, static_cast<uint64_t>(n - i)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
    const int64_t pick = order[static_cast<size_t>(i)];
    block.push_back(id[pick]);
    taken += c[pick];
  }
  std::sort(block.begin(), block.end());
  return torch::tensor(block, torch::kLong);
}

/// The first entries of `ranked` whose ReLUs reach `pool_relus` (all of them if they never do).
[[nodiscard]] inline int64_t pool_length(const torch::Tensor& ranked_relus, int64_t pool_relus) {
  const auto cum = ranked_relus.to(torch::kCPU, torch::kLong).cumsum(0);
  const int64_t below = cum.lt(pool_relus).sum().item<int64_t>();
  return std::min<int64_t>(below + 1, ranked_relus.numel());
}

/// Active entries ordered by estimated damage per ReLU, least first; ties in a random order
/// drawn from `seed` (many entries cost exactly 0, and index order would favour the first layers).
struct ranking {
  torch::Tensor entries;  ///< int64 [A]
  torch::Tensor relus;    ///< int64 [A], ReLUs per entry, in the same order
};

[[nodiscard]] inline ranking rank_entries(const torch::Tensor& active, const torch::Tensor& relus,
                                          const torch::Tensor& damage, uint64_t seed) {
  require(active.numel() == relus.numel(), "rank_entries: ", active.numel(), " entries and ",
          relus.numel(), " ReLU counts");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto shuffle = torch::randperm(active.numel(), gen, torch::kLong);
  const auto ids = active.to(torch::kCPU, torch::kLong).index_select(0, shuffle);
  const auto cost = relus.to(torch::kCPU, torch::kLong).index_select(0, shuffle);
  const auto per_relu = damage.to(torch::kCPU, torch::kDouble).index_select(0, ids) /
                        cost.to(torch::kDouble);
  const auto order = std::get<1>(per_relu.sort(/*stable=*/true, 0, /*descending=*/false));
  return {ids.index_select(0, order), cost.index_select(0, order)};
}

/// The block of try `k` drawn from a ranking (see the top of this file).
[[nodiscard]] inline torch::Tensor ranked_block(const ranking& r, int64_t drc, int64_t k,
                                                double pool_growth, uint64_t seed) {
  require(pool_growth >= 0 && std::isfinite(pool_growth), "ranked_block: pool_growth ",
          pool_growth, " must be finite and >= 0");
  const double relus = static_cast<double>(drc) * (1.0 + static_cast<double>(k) * pool_growth);
  const int64_t limit = relus >= 9e18 ? INT64_MAX : static_cast<int64_t>(std::ceil(relus));
  const int64_t len = pool_length(r.relus, limit);
  return draw_block(r.entries.slice(0, 0, len), r.relus.slice(0, 0, len), drc, seed);
}

/// Turns the entries of `block` (sorted flat indices) off (`on` false) or back on, in place on
/// the slots' hard masks.
inline void switch_block(const MaskSet& masks, const torch::Tensor& block, bool on) {
  torch::NoGradGuard no_grad;
  const auto ids = block.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* b = ids.data_ptr<int64_t>();
  const int64_t n = ids.numel();
  for (int64_t i = 0; i < n;) {
    const size_t slot = masks.locate(b[i]).slot;
    const int64_t first = masks.offset(slot), last = masks.offset(slot + 1);
    int64_t j = i;
    while (j < n && b[j] < last) ++j;
    auto& mask = masks[slot].mask();
    const auto local = (ids.slice(0, i, j) - first).to(mask.device());
    mask.view({-1}).index_fill_(0, local, on ? 1.0 : 0.0);
    i = j;
  }
}

}  // namespace linearize::select
