#pragma once
// A run killed in the middle of its search, then resumed by a fresh process: the method's
// scheduler throws at its n-th step (or its finetune at its n-th call), and a second run() from
// the same work directory finishes.
// The tests compare the result with an uninterrupted run of the same seed.
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/finetune/distill.hpp>
#include <linearize/pipeline/run.hpp>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace linearize::testing {

/// `Sched` that throws at its kill_at-th after_step, counted in *calls across the copies a run
/// makes: a kill with the scheduler's state (weight, minima, ...) in flight.
template <class Sched>
struct killed_at_step : Sched {
  int* calls = nullptr;
  int kill_at = -1;
  void after_step(scalars& state, const search_progress& p) const {
    if ((*calls)++ == kill_at) throw std::runtime_error("killed mid-search");
    Sched::after_step(state, p);
  }
};

/// Calls of every throwing_finetune so far (across the copies a run makes); reset it to 0 before
/// a run that should be killed.
inline int finetune_calls = 0;

/// A finetune policy (distill, one epoch) that throws as its throw_on_call-th call (0-based)
/// starts: a kill between two finetunes, e.g. SENet's rounds or coordinate descent's iterations.
struct throwing_finetune {
  using role = roles::finetune;
  int64_t epochs = 1;
  int throw_on_call = -1;
  finetune::distill inner{.epochs = 1};
  [[nodiscard]] std::string name() const { return "throwing_distill"; }
  template <class Context>
  finetune_outcome run(Context& ctx, int64_t e, const std::string& phase) const {
    if (finetune_calls++ == throw_on_call) throw std::runtime_error("killed before " + phase);
    return inner.run(ctx, e, phase);
  }
};

struct killed_and_resumed {
  run_result whole, resumed;
  std::shared_ptr<TinyConvImpl> whole_net, resumed_net;
};

/// method(kill_at) builds the method (-1: never killed). Runs it whole, then killed at `kill_at`
/// and resumed, each from tiny_conv(`init_seed`) with checkpoints inside epochs (every 4 steps).
template <class MethodOf>
killed_and_resumed run_killed_and_resumed(const MethodOf& method, int kill_at, int& calls,
                                          const run_data& data, int64_t budget_count,
                                          const std::string& tag, uint64_t init_seed = 22) {
  temp_dir whole_dir(tag + "_whole"), killed_dir(tag + "_killed");
  auto opts = quick_options();
  opts.checkpoint_every = 4;
  opts.work_dir = whole_dir.path;
  killed_and_resumed out;
  out.whole_net = tiny_conv(init_seed, 4, 0.0);
  calls = 0;
  out.whole = run(method(-1), out.whole_net, out.whole_net->copy(), data, budget(budget_count), opts);

  opts.work_dir = killed_dir.path;
  auto killed = tiny_conv(init_seed, 4, 0.0);
  calls = 0;
  CHECK_THROWS_WITH(run(method(kill_at), killed, killed->copy(), data, budget(budget_count), opts),
                    "killed mid-search");
  REQUIRE(std::filesystem::exists(killed_dir / "stage0_search.ckpt"));
  out.resumed_net = tiny_conv(init_seed, 4, 0.0);  // a fresh process starts from the same network
  out.resumed = run(method(-1), out.resumed_net, out.resumed_net->copy(), data, budget(budget_count), opts);
  CHECK(torch::equal(out.whole.mask, out.resumed.mask));
  CHECK(same_state(*out.whole_net, *out.resumed_net));
  CHECK(out.resumed.relu_count == out.whole.relu_count);
  return out;
}

}  // namespace linearize::testing
