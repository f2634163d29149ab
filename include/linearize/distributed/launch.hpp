#pragma once
// Starting N local ranks: what `--nproc N` does. The program starts N copies of itself
// (fork + exec of /proc/self/exe with the same arguments) with the launch environment set
// (env.hpp: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, a free MASTER_PORT) and waits
// for them. If one fails (an error, a crash, a kill) the others get `grace` to stop by
// themselves (they fail at their next collective, with their own message), then SIGTERM, then
// SIGKILL; the launcher then fails too. Each copy gets cores / N intra-op threads unless
// LINEARIZE_THREADS says otherwise, and dies with the launcher (PR_SET_PDEATHSIG).
// A copy sees LINEARIZE_LAUNCHED=1 and so does not launch again.
#include <linearize/support/error.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace linearize::distributed {

struct launch_options {
  /// How long the other ranks may take to stop by themselves after one failed.
  std::chrono::milliseconds grace = std::chrono::seconds(10);
  /// Where the launcher says what happened (stderr when null).
  std::FILE* log = nullptr;
};

/// Whether this process is one of the copies launch_local started.
[[nodiscard]] inline bool launched_locally() {
  const char* v = std::getenv("LINEARIZE_LAUNCHED");
  return v != nullptr && std::string(v) == "1";
}

namespace detail {

/// A port on 127.0.0.1 that nothing listens on right now (the kernel's choice).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  require(fd >= 0, "launch: cannot open a socket to find a free port: ", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int err = errno;
  ::close(fd);
  require(ok, "launch: cannot find a free port on 127.0.0.1: ", std::strerror(err));
  return ntohs(addr.sin_port);
}

inline std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "ended with status " + std::to_string(status);
}

}  // namespace detail

/// Starts `nproc` ranks of this program (argv as given: argv[0] .. argv[argc - 1]) on this
/// machine and waits for them; returns 0 when every rank succeeded, else 1 (after stopping the
/// others). `nproc` must be at least 1; a launch environment already set (a cluster launcher
/// started the ranks) is refused.
inline int launch_local(int nproc, int argc, char** argv, const launch_options& o = {}) {
  require(nproc >= 1, "launch: --nproc ", nproc, "; expected at least 1 (the number of ranks to start "
          "on this machine)");
  require(argc >= 1 && argv != nullptr, "launch: no program arguments");
  const char* outer = std::getenv("WORLD_SIZE");
  require(outer == nullptr, "launch: --nproc ", nproc, " given, but WORLD_SIZE='", outer,
          "' is set already (a launcher or scheduler started the ranks); drop --nproc, or unset "
          "WORLD_SIZE and RANK to start the ranks here");
  std::FILE* log = o.log ? o.log : stderr;

  const char* addr_env = std::getenv("MASTER_ADDR");
  const std::string addr = addr_env && *addr_env ? addr_env : "127.0.0.1";
  const char* port_env = std::getenv("MASTER_PORT");
  const std::string port = port_env && *port_env ? port_env : std::to_string(detail::free_port());
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc)));

  // Everything the children need is built before fork: only exec-safe calls happen after it.
  std::vector<std::string> base;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    const auto name = entry.substr(0, entry.find('='));
    if (name == "RANK" || name == "WORLD_SIZE" || name == "LOCAL_RANK" || name == "LOCAL_WORLD_SIZE" ||
        name == "MASTER_ADDR" || name == "MASTER_PORT" || name == "LINEARIZE_LAUNCHED")
      continue;
    base.push_back(entry);
  }
  if (std::getenv("LINEARIZE_THREADS") == nullptr) base.push_back("LINEARIZE_THREADS=" + threads);
  base.push_back("WORLD_SIZE=" + std::to_string(nproc));
  base.push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
  base.push_back("MASTER_ADDR=" + addr);
  base.push_back("MASTER_PORT=" + port);
  base.push_back("LINEARIZE_LAUNCHED=1");
  std::vector<std::vector<std::string>> envs(static_cast<size_t>(nproc), base);
  std::vector<std::vector<char*>> envps(static_cast<size_t>(nproc));
  for (int r = 0; r < nproc; ++r) {
    auto& e = envs[static_cast<size_t>(r)];
    e.push_back("RANK=" + std::to_string(r));
    e.push_back("LOCAL_RANK=" + std::to_string(r));
    for (auto& s : e) envps[static_cast<size_t>(r)].push_back(s.data());
    envps[static_cast<size_t>(r)].push_back(nullptr);
  }
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  const pid_t parent = ::getpid();

  std::map<pid_t, int> running;  // pid -> rank
  const auto stop_all = [&](int sig) {
    for (const auto& [pid, r] : running) ::kill(pid, sig);
  };
  for (int r = 0; r < nproc; ++r) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);  // the launcher died before prctl took effect
      ::execve("/proc/self/exe", args.data(), envps[static_cast<size_t>(r)].data());
      const char msg[] = "launch: exec of /proc/self/exe failed\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    if (pid < 0) {
      const int err = errno;
      stop_all(SIGKILL);
      while (::wait(nullptr) > 0) {}
      fail("launch: cannot start rank ", r, " of ", nproc, ": fork failed: ", std::strerror(err));
    }
    running[pid] = r;
  }

  using clock = std::chrono::steady_clock;
  bool failed = false;
  int signals_sent = 0;  // 0 none, 1 SIGTERM, 2 SIGKILL
  clock::time_point deadline{};
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, failed ? WNOHANG : 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;  // no children left that we know of
    }
    if (pid == 0) {  // stopping: nobody exited yet
      if (clock::now() >= deadline && signals_sent < 2) {
        stop_all(signals_sent == 0 ? SIGTERM : SIGKILL);
        ++signals_sent;
        deadline = clock::now() + std::chrono::seconds(5);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const int r = it->second;
    running.erase(it);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && !failed) {
      failed = true;
      deadline = clock::now() + o.grace;
      std::string others;
      for (const auto& [p, q] : running) others += (others.empty() ? "" : ", ") + std::to_string(q);
      std::fprintf(log, "launch: rank %d of %d (pid %d) %s%s\n", r, nproc, static_cast<int>(pid),
                   detail::describe_status(status).c_str(),
                   others.empty() ? "" : ("; stopping rank(s) " + others + " (they fail at their next "
                                          "collective, else are terminated after " +
                                          std::to_string(o.grace.count() / 1000) + " s)").c_str());
      std::fflush(log);
    } else if (!ok) {
      std::fprintf(log, "launch: rank %d of %d (pid %d) %s\n", r, nproc, static_cast<int>(pid),
                   detail::describe_status(status).c_str());
      std::fflush(log);
    }
  }
  return failed ? 1 : 0;
}

}  // namespace linearize::distributed
