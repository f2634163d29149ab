#pragma once
// Start-up settings that programs using linearize should apply first:
//  - intra-op threads = hardware cores (Debian's LibTorch starts with one thread);
//  - an allocator setting that keeps freed large blocks for reuse. With glibc's defaults every
//    large tensor is a fresh mmap whose pages fault in on first touch: measured here, a fresh
//    128x64x32x32 float tensor costs ~50 ms where a copy into an existing one costs ~0.6 ms.
//    Raising M_MMAP_THRESHOLD and M_TRIM_THRESHOLD keeps such blocks in the heap for reuse.
// LINEARIZE_ALLOCATOR=default in the environment skips the allocator setting, so benchmarks can
// measure both; LINEARIZE_THREADS=N overrides the thread count.
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <malloc.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>

namespace linearize::runtime {

struct settings {
  int threads = 0;               ///< intra-op threads in use
  bool reuse_memory = false;     ///< whether the large-block reuse setting is active
  [[nodiscard]] std::string allocator_name() const {
    return reuse_memory ? "glibc malloc, large blocks reused (mallopt)" : "glibc malloc, defaults";
  }
};

inline settings& current() {
  static settings s{};
  return s;
}

/// Makes large freed blocks stay in the heap (no mmap per tensor, no trimming back to the OS).
inline bool reuse_large_blocks() {
  // 1 GiB: larger than any single activation this library creates at the batch sizes it uses.
  const bool ok = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 1 &&
                  mallopt(M_TOP_PAD, 64 << 20) == 1;
  current().reuse_memory = ok;
  return ok;
}

/// Applies the start-up settings; returns what is in effect. Call once, first thing in main. A
/// malformed LINEARIZE_THREADS or LINEARIZE_ALLOCATOR is a linearize::error naming it.
inline settings configure() {
  int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (const char* env = std::getenv("LINEARIZE_THREADS")) {
    // Refused, not clamped: "0" or "four" would otherwise run on one thread without a word.
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(env, &end, 10);
    require(*env != '\0' && *end == '\0' && errno == 0 && n >= 1 && n <= 65536, "LINEARIZE_THREADS='", env,
            "': expected a whole number of intra-op threads >= 1 (unset: all cores)");
    threads = static_cast<int>(n);
  }
  const char* alloc = std::getenv("LINEARIZE_ALLOCATOR");
  require(alloc == nullptr || std::string(alloc) == "default", "LINEARIZE_ALLOCATOR='", alloc ? alloc : "",
          "': expected 'default' (glibc's allocator settings) or unset (large blocks reused)");
  torch::set_num_threads(threads);
  current().threads = threads;
  if (alloc == nullptr) reuse_large_blocks();
  return current();
}

}  // namespace linearize::runtime
