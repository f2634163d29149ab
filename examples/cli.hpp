#pragma once
// The command line of the example and benchmark programs (not part of the library), on CLI11.
// The usage text is generated from the options and each default is stated once, in the
// option's definition (--help shows it). Every program ends the same way:
//   --help                usage on stdout, exit status 0, nothing else done (no file written)
//   a bad command line    what is wrong on stderr, exit status 2
//   an error in the run   (linearize::error, LibTorch's) its message on stderr, exit status 1
// Programs that train can run data-parallel (add_parallel, run with parallel_options): with
// --nproc N the program starts N ranks of itself on this machine; under a launcher or
// scheduler that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT each process joins that run.
// Rank 0 writes the files and prints progress (writer()).
#include <linearize/data/registry.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/distributed/launch.hpp>
#include <linearize/distributed/process_group.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/policy/budget.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/runtime.hpp>
#include <linearize/train/baseline.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

namespace cli {

/// A program's command line: CLI::App with every option's default shown by --help.
struct app : CLI::App {
  app(std::string description, std::string name) : CLI::App(std::move(description), std::move(name)) {
    option_defaults()->always_capture_default();
  }
};

/// A number >= `min`: "--epochs: expected a number >= 1, got 0".
template <class T>
CLI::Validator at_least(T min) {
  return CLI::Validator(
      [min](std::string& text) {
        T value{};
        if (!CLI::detail::lexical_cast(text, value)) return fmt::format("expected a number, got '{}'", text);
        return value >= min ? std::string() : fmt::format("expected a number >= {}, got {}", min, text);
      },
      fmt::format(">={}", min));
}

/// A number > `low`: "--max-change: expected a number > 1, got 1".
inline CLI::Validator above(double low) {
  return CLI::Validator(
      [low](std::string& text) {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return fmt::format("expected a number, got '{}'", text);
        return value > low ? std::string() : fmt::format("expected a number > {}, got {}", low, text);
      },
      fmt::format(">{}", low));
}

/// A fraction strictly between 0 and 1.
inline CLI::Validator open_fraction() {
  return CLI::Validator(
      [](std::string& text) {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !(value > 0 && value < 1))
          return fmt::format("expected a fraction in (0, 1), got '{}'", text);
        return std::string();
      },
      "(0,1)");
}

/// "a,b,,c" -> {"a", "b", "c"}: the comma lists of the programs' options.
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

/// A ReLU budget as linearize::parse_budget reads it: 2880, 3% or 0.03.
inline CLI::Validator budget() {
  return CLI::Validator(
      [](std::string& text) {
        try {
          (void)linearize::parse_budget(text);
          return std::string();
        } catch (const linearize::error& e) {
          return std::string(e.what());
        }
      },
      "BUDGET");
}

/// One of `names` (e.g. a registry's); the message lists them.
inline CLI::Validator one_of(std::vector<std::string> names) { return CLI::IsMember(std::move(names)); }

/// `--threads N`: intra-op threads, at least 1; absent: all cores (see configure()).
inline CLI::Option* add_threads(CLI::App& app, int& threads) {
  return app.add_option("--threads", threads, "intra-op threads; all cores when not given")
      ->check(CLI::Validator(
          [](std::string& text) {
            int value = 0;
            if (CLI::detail::lexical_cast(text, value) && value >= 1) return std::string();
            return fmt::format("threads must be >= 1, got '{}' (leave --threads out for all cores)", text);
          },
          "N>=1"))
      ->default_str("");
}

/// `--seed N`: a whole number >= 0 (CLI11 would wrap -1 round to 2^64 - 1).
inline CLI::Option* add_seed(CLI::App& app, uint64_t& seed, const std::string& description) {
  return app.add_option("--seed", seed, description)
      ->check(CLI::Validator(
          [](std::string& text) {
            return text.find_first_not_of("0123456789") == std::string::npos && !text.empty()
                       ? std::string()
                       : fmt::format("expected a seed, a whole number >= 0; got '{}'", text);
          },
          "SEED"));
}

/// runtime::configure() with `threads` intra-op threads (0: all cores, or LINEARIZE_THREADS).
inline linearize::runtime::settings configure(int threads) {
  if (threads > 0) ::setenv("LINEARIZE_THREADS", std::to_string(threads).c_str(), 1);
  return linearize::runtime::configure();
}

/// The baseline every method starts from (train::baseline_spec): --data, --data-dir, --model,
/// --width; datasets and models are the registries' (data/registry.hpp, models/registry.hpp).
inline void add_baseline_spec(CLI::App& app, linearize::train::baseline_spec& spec) {
  std::vector<std::string> datasets(linearize::data::known_datasets.begin(),
                                    linearize::data::known_datasets.end());
  app.add_option("--data", spec.data, "dataset")->check(one_of(datasets));
  app.add_option("--data-dir", spec.data_dir,
                 "where the dataset's files are (fashion-mnist: Debian's path when not given)")
      ->default_str("");
  app.add_option("--model", spec.model, "network")->check(one_of(linearize::models::model_names()));
  std::string knobs;
  for (const auto& name : linearize::models::model_names()) {
    const auto& m = linearize::models::model_info_of(name);
    knobs += fmt::format("{}{}: {}, default {}", knobs.empty() ? "" : "; ", name, m.width_knob,
                         m.baseline_width.value_or(m.default_width));
  }
  app.add_option("--width", spec.width, "the model's width knob (" + knobs + ")")->check(above(0));
}

/// How a program runs data-parallel (distributed/): --nproc and the group's settings.
struct parallel_options {
  int nproc = 1;
  double timeout_s = 1800;
  double stop_grace_s = 10;
  bool sync_batchnorm = false;
};

/// --nproc, --dist-timeout, --stop-grace and --sync-batchnorm.
inline void add_parallel(CLI::App& app, parallel_options& p) {
  app.add_option("--nproc", p.nproc,
                 "data-parallel: start this many ranks of the program on this machine (each gets "
                 "cores / N threads); leave it out under a launcher that sets RANK and WORLD_SIZE")
      ->check(at_least(1));
  app.add_option("--dist-timeout", p.timeout_s,
                 "data-parallel: seconds a rank waits for the others (rendezvous, each collective) "
                 "before it fails")
      ->check(above(0));
  app.add_option("--stop-grace", p.stop_grace_s,
                 "data-parallel: seconds --nproc gives the other ranks to stop by themselves after one failed")
      ->check(at_least(0.0));
  app.add_flag("--sync-batchnorm", p.sync_batchnorm,
               "data-parallel: BatchNorm statistics over the whole global batch instead of each rank's shard");
}

/// Whether this process writes the run's files (rank 0, or the only process).
inline bool writer() { return linearize::distributed::world().writer(); }

namespace detail {
template <class F>
int guarded(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {  // linearize::error, and LibTorch's own
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
}  // namespace detail

/// Parses the command line, then runs `body()` (returning the exit status).
template <class Body>
int run(CLI::App& app, int argc, char** argv, Body&& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; anything else is a bad command line
  }
  return detail::guarded(body);
}

/// Parses the command line, then either starts `p.nproc` ranks of this program and waits for
/// them (the launching process with --nproc N > 1), or joins the run the environment describes
/// (one process when there is none) and runs `body()` in it.
template <class Body>
int run(CLI::App& app, const parallel_options& p, int argc, char** argv, Body&& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  namespace dist = linearize::distributed;
  return detail::guarded([&] {
    if (p.nproc > 1 && !dist::launched_locally()) {
      const auto grace = std::chrono::milliseconds(static_cast<int64_t>(p.stop_grace_s * 1000));
      return dist::launch_local(p.nproc, argc, argv, {.grace = grace});
    }
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(p.timeout_s * 1000));
    dist::init_from_env({.timeout = timeout});
    // Rank 0 speaks for the run; the others' reports would repeat it (errors still show).
    if (dist::process_rank() != 0) std::freopen("/dev/null", "w", stdout);
    return body();
  });
}

}  // namespace cli
