#pragma once
// How the processes of a run find each other: the environment torch's launchers (torchrun,
// torch.distributed.launch) and cluster schedulers set, "env://" in torch's words:
//   RANK         this process's rank, 0 .. WORLD_SIZE - 1
//   WORLD_SIZE   how many processes the run has
//   LOCAL_RANK   its rank on this machine (which GPU it takes); RANK when absent
//   MASTER_ADDR  host of rank 0, which serves the rendezvous (a TCPStore)
//   MASTER_PORT  its port
// Neither RANK nor WORLD_SIZE: one process. Anything else incomplete or malformed is a
// linearize::error naming the variable, its value and what was expected.
#include <linearize/support/error.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

namespace linearize::distributed {

struct launch_env {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr{};
  int master_port = 0;
};

/// Reads a variable: nullptr when it is not set (std::getenv's contract).
using env_lookup = std::function<const char*(const char*)>;

namespace detail {
inline std::optional<long long> whole_number(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return std::nullopt;
  return v;
}

inline int env_int(const env_lookup& get, const char* name, long long low, long long high,
                   const char* expected) {
  const char* text = get(name);
  const auto v = whole_number(text);
  require(v && *v >= low && *v <= high, "distributed: ", name, "='", text ? text : "", "'; expected ",
          expected);
  return static_cast<int>(*v);
}
}  // namespace detail

/// The launch environment, or nothing when this process runs alone (neither RANK nor
/// WORLD_SIZE set). `get` reads a variable (std::getenv by default; tests pass their own).
[[nodiscard]] inline std::optional<launch_env> read_launch_env(
    const env_lookup& get = [](const char* name) -> const char* { return std::getenv(name); }) {
  const char* rank = get("RANK");
  const char* size = get("WORLD_SIZE");
  if (rank == nullptr && size == nullptr) return std::nullopt;
  require(size != nullptr, "distributed: RANK='", rank, "' is set but WORLD_SIZE is not; expected "
          "both (as torch's launchers set them), or neither for one process");
  require(rank != nullptr, "distributed: WORLD_SIZE='", size, "' is set but RANK is not; expected "
          "both (as torch's launchers set them), or neither for one process");
  launch_env env;
  env.world_size = detail::env_int(get, "WORLD_SIZE", 1, 1 << 20, "a whole number >= 1 (the processes of the run)");
  env.rank = detail::env_int(get, "RANK", 0, env.world_size - 1,
                             ("a whole number in [0, " + std::to_string(env.world_size) + ") (WORLD_SIZE=" +
                              std::to_string(env.world_size) + ")").c_str());
  env.local_rank = get("LOCAL_RANK") == nullptr
                       ? env.rank
                       : detail::env_int(get, "LOCAL_RANK", 0, 1 << 20, "a whole number >= 0 (the rank on this machine)");
  if (env.world_size == 1) return env;
  const char* addr = get("MASTER_ADDR");
  require(addr != nullptr && *addr != '\0', "distributed: MASTER_ADDR='", addr ? addr : "",
          "'; expected the host of rank 0 (e.g. 127.0.0.1 for one machine) for a run of WORLD_SIZE=",
          env.world_size);
  env.master_addr = addr;
  require(get("MASTER_PORT") != nullptr, "distributed: MASTER_PORT is not set; expected the port rank 0 "
          "serves the rendezvous on (1..65535) for a run of WORLD_SIZE=", env.world_size);
  env.master_port = detail::env_int(get, "MASTER_PORT", 1, 65535, "a port number in [1, 65535]");
  return env;
}

}  // namespace linearize::distributed
