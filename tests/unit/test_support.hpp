#pragma once
// Small helpers shared by the unit tests.
#include <catch2/catch.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace linearize::testing {

/// Runs f and checks that it throws linearize::error whose message contains `needle`.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const linearize::error& e) {
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
    return;
  }
  FAIL("expected linearize::error containing '" << needle << "'");
}

inline bool close(const torch::Tensor& a, const torch::Tensor& b, double rtol = 1e-5,
                  double atol = 1e-6) {
  return a.sizes() == b.sizes() && torch::allclose(a.to(torch::kCPU).to(torch::kDouble),
                                                   b.to(torch::kCPU).to(torch::kDouble), rtol, atol);
}

/// A fresh empty directory under the system temp dir, removed when the object dies.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("linearize_test_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

/// CUDA tests run where a CUDA LibTorch and a GPU are present; elsewhere they say so and skip.
inline bool cuda_or_skip() {
  if (torch::cuda::is_available()) return true;
  WARN("CUDA not available (CPU-only LibTorch or no GPU): CUDA checks skipped");
  return false;
}

}  // namespace linearize::testing
