#pragma once
// One checksum for the files linearize writes (mask files, baseline records): FNV-1a, 64 bit.
// It detects truncation and bit rot, not tampering.
#include <cstdint>
#include <string_view>

namespace linearize {

[[nodiscard]] constexpr uint64_t fnv1a(std::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

}  // namespace linearize
