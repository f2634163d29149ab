#pragma once
// A group of processes on torch's c10d: rendezvous through a TCPStore served by rank 0 at
// MASTER_ADDR:MASTER_PORT (env://, distributed/env.hpp), Gloo for CPU tensors and, where the
// LibTorch in use was built with NCCL and a GPU is present, NCCL for CUDA tensors (each tensor
// goes to the backend for its device, as torch.distributed's "cpu:gloo,cuda:nccl" does).
//
// Failures end in a linearize::error, never a hang: the rendezvous and every collective have a
// timeout (connect_options::timeout), and a rank that dies closes its connections, so the
// others' next collective fails at once with a message saying that another rank stopped.
//
// Build: Gloo's c10d classes are compiled only with USE_C10D_GLOO, NCCL's with USE_C10D_NCCL;
// linearize's CMake package defines each where the LibTorch has it (cmake/linearize_dependencies
// .cmake checks by compiling and linking). Without Gloo, connect() says so. The NCCL path has
// never run: no CUDA machine was available to the sessions that wrote it.
#include <linearize/distributed/env.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/support/error.hpp>

#include <fmt/format.h>
#include <torch/torch.h>

#if defined(USE_C10D_GLOO)
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace linearize::distributed {

struct connect_options {
  /// How long the rendezvous waits for every rank, and each collective for the others: a rank
  /// that stops answering makes the rest fail after this long. Long steps of large networks
  /// on slow ranks need minutes; torch's default is 30.
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
  /// Gloo's worker threads per process.
  int gloo_threads = 2;
};

/// Whether this LibTorch build can run a group here: Gloo (CPU) always where compiled in.
[[nodiscard]] constexpr bool has_gloo() {
#if defined(USE_C10D_GLOO)
  return true;
#else
  return false;
#endif
}
[[nodiscard]] constexpr bool has_nccl() {
#if defined(USE_C10D_NCCL)
  return true;
#else
  return false;
#endif
}

/// The device a rank trains on: its GPU (cuda:LOCAL_RANK) where CUDA is available, else the CPU.
[[nodiscard]] inline torch::Device local_device() {
  if (!torch::cuda::is_available()) return torch::kCPU;
  const auto env = read_launch_env();
  const int local = env ? env->local_rank : 0;
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  require(local < gpus, "distributed: LOCAL_RANK=", local, " but this machine has ", gpus,
          " GPU(s); expected at most one rank per GPU");
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(local)};
}

#if defined(USE_C10D_GLOO)
namespace detail {

inline std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

inline bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

/// c10d on Gloo (and NCCL for CUDA tensors where built in).
class c10d_communicator final : public communicator {
 public:
  c10d_communicator(const launch_env& env, const connect_options& o)
      : rank_(env.rank), size_(env.world_size), timeout_(o.timeout) {
    const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
    const auto is_timeout = [](const std::string& what) {
      return what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos;
    };
    // The store's connection (the other ranks to rank 0) or Gloo's (every rank to every other,
    // through the store) can wait in vain: either is the rendezvous timing out.
    const auto rendezvous_timed_out = [&](const std::string& what, const char* why) {
      fail("distributed: rank ", env.rank, " of ", env.world_size, " timed out after ", seconds(o.timeout),
           " s waiting for the rendezvous at ", where, " (", why, "); expected WORLD_SIZE=", env.world_size,
           " processes with the same MASTER_ADDR and MASTER_PORT: ", first_line(what));
    };
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<std::size_t>(env.world_size);
    so.waitWorkers = true;
    so.timeout = o.timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      if (env.rank == 0 && what.find("in use") != std::string::npos)
        fail("distributed: rank 0 cannot serve the rendezvous on MASTER_PORT=", env.master_port,
             " (MASTER_ADDR=", env.master_addr, "): the port is in use; expected a free port (set "
             "MASTER_PORT to another, or stop the program holding it)");
      if (is_timeout(what)) rendezvous_timed_out(what, env.rank == 0 ? "not every rank arrived" : "rank 0 did not answer");
      fail("distributed: rank ", env.rank, " of ", env.world_size, " could not join the rendezvous at ",
           where, ": ", first_line(what));
    }
    try {
      auto options = c10d::ProcessGroupGloo::Options::create(o.timeout);
      // One machine: loopback. Several: the interface GLOO_SOCKET_IFNAME names, else the one
      // this host's name resolves to (torch's rule).
      if (is_loopback(env.master_addr))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      options->threads = o.gloo_threads;
      gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(
          c10::make_intrusive<c10d::PrefixStore>("gloo", store_), rank_, size_, options);
#if defined(USE_C10D_NCCL)
      if (torch::cuda::is_available()) {
        // Without blocking waits a dead peer would leave NCCL's collectives waiting forever.
        ::setenv("NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
        auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
        nccl_options->timeout = o.timeout;
        nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(
            c10::make_intrusive<c10d::PrefixStore>("nccl", store_), rank_, size_, nccl_options);
      }
#endif
    } catch (const linearize::error&) {
      throw;
    } catch (const std::exception& e) {
      if (is_timeout(e.what())) rendezvous_timed_out(e.what(), "not every rank connected");
      fail("distributed: rank ", rank_, " of ", size_, " could not connect to the other ranks (",
           where, "): ", first_line(e.what()));
    }
  }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] std::string backend() const override { return nccl_ ? "gloo+nccl" : "gloo"; }

  void sum(std::vector<torch::Tensor>& tensors) override {
    std::vector<std::vector<at::Tensor>> args(tensors.size());
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (size_t i = 0; i < tensors.size(); ++i) {
      args[i] = {tensors[i]};
      works.push_back(run("allreduce", [&] { return backend_for(tensors[i]).allreduce(args[i]); }));
    }
    for (auto& w : works) wait(w, "allreduce");
  }

  void broadcast(std::vector<torch::Tensor>& tensors, int root) override {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    std::vector<std::vector<at::Tensor>> args(tensors.size());
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (size_t i = 0; i < tensors.size(); ++i) {
      args[i] = {tensors[i]};
      works.push_back(run("broadcast", [&] { return backend_for(tensors[i]).broadcast(args[i], options); }));
    }
    for (auto& w : works) wait(w, "broadcast");
  }

  void barrier() override {
    auto w = run("barrier", [&] { return gloo_->barrier(); });
    wait(w, "barrier");
  }

 private:
  static double seconds(std::chrono::milliseconds t) { return static_cast<double>(t.count()) / 1000.0; }

  c10d::ProcessGroup& backend_for(const torch::Tensor& t) {
    if (t.is_cuda() && nccl_) return *nccl_;
    return *gloo_;
  }

  template <class F>
  c10::intrusive_ptr<c10d::Work> run(const char* what, F&& start) {
    try {
      return start();
    } catch (const std::exception& e) {
      failed(what, e);
    }
  }

  void wait(c10::intrusive_ptr<c10d::Work>& w, const char* what) {
    try {
      w->wait();
    } catch (const std::exception& e) {
      failed(what, e);
    }
  }

  [[noreturn]] void failed(const char* what, const std::exception& e) const {
    const std::string msg = first_line(e.what());
    const bool timed_out = msg.find("imed out") != std::string::npos || msg.find("imeout") != std::string::npos;
    fail("distributed: ", what, " failed on rank ", rank_, " of ", size_, " (", backend(), "): ",
         timed_out ? fmt::format("no answer within {:g} s: another rank is stuck, was stopped or is doing "
                                 "other work", seconds(timeout_))
                   : "another rank stopped (crashed, was killed or failed) or cannot be reached",
         " [", msg, "]");
  }

  int rank_, size_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> gloo_;
  c10::intrusive_ptr<c10d::ProcessGroup> nccl_;
};

}  // namespace detail
#endif

/// Joins the run `env` describes: a group of env.world_size processes (this one alone when 1).
[[nodiscard]] inline group connect(const launch_env& env, const connect_options& o = {}) {
  require(o.timeout.count() > 0, "distributed: timeout ", o.timeout.count(), " ms must be positive");
  require(o.gloo_threads >= 1, "distributed: gloo_threads ", o.gloo_threads, " must be >= 1");
  if (env.world_size == 1) return group{};
#if defined(USE_C10D_GLOO)
  return group(std::make_shared<detail::c10d_communicator>(env, o));
#else
  fail("distributed: WORLD_SIZE=", env.world_size, " asks for ", env.world_size, " processes, but "
       "linearize was built without c10d's Gloo (USE_C10D_GLOO): install libgloo-dev and "
       "reconfigure, or use a LibTorch built with distributed support");
#endif
}

/// Joins the run the environment describes (env.hpp) and makes it the world (group.hpp); one
/// process when RANK and WORLD_SIZE are not set. Returns the world.
inline group init_from_env(const connect_options& o = {}) {
  const auto env = read_launch_env();
  set_world(env ? connect(*env, o) : group{});
  return world();
}

}  // namespace linearize::distributed
