#pragma once
// Deterministic seeds derived from a run's seed: every random choice (batch order, crop offset,
// candidate block) is a pure function of (seed, what, where), so a resumed run makes the same
// choices as an uninterrupted one, whatever order threads run in.
#include <cstdint>
#include <initializer_list>

namespace linearize {

/// splitmix64's finalizer: a well-mixed 64-bit hash of one value.
[[nodiscard]] constexpr uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// A seed derived from a base seed and any number of coordinates (epoch, batch, sample, ...).
[[nodiscard]] constexpr uint64_t derive_seed(uint64_t base, std::initializer_list<uint64_t> parts) {
  uint64_t h = mix64(base);
  for (uint64_t p : parts) h = mix64(h ^ mix64(p + 0x632be59bd9b4e019ull));
  return h;
}

}  // namespace linearize
