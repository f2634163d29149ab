// The catalogue of bad inputs at the library's entry points: each case hands one bad value to
// one entry point and expects a linearize::error whose message names that value and what was
// expected. (The programs' command lines have their own catalogue in tests/CMakeLists.txt.)
// Every case is cheap: nothing here trains for more than a few steps of a tiny network.
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/linearize.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/select/stage_criticality.hpp>

#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <thread>

namespace {

namespace lz = linearize;
using lz::testing::expect_error;
using lz::testing::stripes;
using lz::testing::tiny_conv;

lz::run_data tiny_data() {
  return {.train = stripes(192, 1), .held_out = stripes(48, 2), .test = stripes(96, 3)};
}

lz::train::options tiny_training() {
  lz::train::options o;
  o.epochs = 1;
  o.batch_size = 16;
  o.progress.mode = lz::train::progress_mode::silent;
  return o;
}

/// Sets an environment variable for one scope, restoring what was there.
struct scoped_env {
  std::string name;
  std::optional<std::string> before;
  scoped_env(std::string n, const char* value) : name(std::move(n)) {
    if (const char* old = std::getenv(name.c_str())) before = old;
    ::setenv(name.c_str(), value, 1);
  }
  ~scoped_env() {
    if (before)
      ::setenv(name.c_str(), before->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

/// ResNet18-shaped stages: four of two slots each.
std::vector<lz::relu_tally> four_stages() {
  std::vector<lz::relu_tally> slots;
  for (const char* stage : {"layer1", "layer2", "layer3", "layer4"})
    for (int i = 0; i < 2; ++i) slots.push_back({.name = std::string(stage) + "." + std::to_string(i), .stage = stage, .total = 100, .active = 100});
  return slots;
}
const std::vector<std::string> four_ranking{"layer1", "layer2", "layer3", "layer4"};

}  // namespace

TEST_CASE("Bad budgets are refused, naming the text or count", "[bad_input]") {
  expect_error([] { (void)lz::parse_budget("abc"); }, "budget 'abc' not understood; expected a count");
  expect_error([] { (void)lz::parse_budget("0"); }, "budget '0' not understood");
  expect_error([] { (void)lz::parse_budget("-5"); }, "budget '-5' not understood");
  expect_error([] { (void)lz::parse_budget("150%"); }, "budget '150%' is above 100% of the ReLUs");
  expect_error([] { (void)lz::parse_budget("2.5"); }, "budget '2.5' not understood");
  // from_chars reads these as numbers; each used to be cast to int64 (undefined) or truncated.
  expect_error([] { (void)lz::parse_budget("inf"); }, "budget 'inf' not understood");
  expect_error([] { (void)lz::parse_budget("1e30"); }, "budget '1e30' is not a whole count of ReLUs");
  expect_error([] { (void)lz::parse_budget("1e-3"); }, "budget '1e-3' is not a whole count of ReLUs");
  expect_error([] { (void)lz::budget(0).resolve(100); }, "budget of 0 ReLUs out of range: expected 1 to 100");
  expect_error([] { (void)lz::budget(101).resolve(100); }, "budget of 101 ReLUs out of range: expected 1 to 100");
  expect_error([] { (void)lz::budget::fraction(1.5).resolve(100); }, "budget fraction 1.5 out of range");
}

TEST_CASE("Bad start-up settings in the environment are refused, not clamped", "[bad_input]") {
  {
    scoped_env env("LINEARIZE_THREADS", "0");
    expect_error([] { (void)lz::runtime::configure(); }, "LINEARIZE_THREADS='0': expected a whole number");
  }
  {
    scoped_env env("LINEARIZE_THREADS", "four");
    expect_error([] { (void)lz::runtime::configure(); }, "LINEARIZE_THREADS='four'");
  }
  {
    scoped_env env("LINEARIZE_ALLOCATOR", "fast");
    expect_error([] { (void)lz::runtime::configure(); }, "LINEARIZE_ALLOCATOR='fast': expected 'default'");
  }
}

TEST_CASE("Bad training options are refused before the first step", "[bad_input]") {
  const auto data = stripes(32, 1);
  const auto fit_with = [&](auto change) {
    auto o = tiny_training();
    change(o);
    (void)lz::train::fit(tiny_conv(1), data, o);
  };
  expect_error([&] { fit_with([](auto& o) { o.epochs = -1; }); }, "train: epochs -1 must not be negative");
  expect_error([&] { fit_with([](auto& o) { o.batch_size = 0; }); }, "train: batch size 0 must be positive");
  expect_error([&] { fit_with([](auto& o) { o.checkpoint_every = 5; }); },
               "checkpoint_every 5 given without a checkpoint path");
  expect_error([&] { fit_with([](auto& o) { o.optimizer = lz::train::sgd{.lr = 0}; }); },
               "sgd: learning rate 0 must be positive");
  expect_error([&] { fit_with([](auto& o) { o.optimizer = lz::train::sgd{.momentum = 1}; }); },
               "sgd: momentum 1 must lie in [0, 1)");
  expect_error([&] { (void)lz::train::evaluate(*tiny_conv(1), data, 0); }, "evaluate: batch size 0 must be positive");
}

TEST_CASE("Bad data sets and splits are refused, naming the value", "[bad_input]") {
  auto data = stripes(32, 1);
  expect_error([&] { (void)data.take(-1); }, "dataset 'stripes': cannot take -1 samples");
  expect_error([&] { (void)data.take(data.size() + 1); },
               "cannot take " + std::to_string(data.size() + 1) + " samples; expected 0 to " +
                   std::to_string(data.size()));
  expect_error([&] { (void)lz::data::split(data, 1.5, 0); }, "held-out fraction 1.5 must lie in (0, 1)");
  auto bad_label = data;
  bad_label.labels = bad_label.labels.clone();
  bad_label.labels[0] = 7;
  expect_error([&] { bad_label.validate(); }, "dataset 'stripes': label 7 out of range [0, 3)");
  auto bad_std = data;
  bad_std.stdev = {0.0};
  expect_error([&] { bad_std.validate(); }, "dataset 'stripes': std 0 must be positive");
}

TEST_CASE("Bad model names and widths are refused", "[bad_input]") {
  expect_error([] { (void)lz::models::make_model("resnet50"); }, "unknown model 'resnet50'");
  expect_error([] { (void)lz::models::make_model("resnet18_in", {.width = 0.0}); }, "width = 0");
}

TEST_CASE("run() refuses bad networks, data and budgets before training", "[bad_input]") {
  const auto method = lz::pipeline(lz::select::top_k{}, lz::finetune::distill{.epochs = 0});
  const auto options = lz::testing::quick_options();
  auto net = tiny_conv(3, 4, 0.0);
  expect_error([&] { (void)lz::run(method, nullptr, nullptr, tiny_data(), lz::budget(10), options); },
               "run: the network is null");
  expect_error([&] { (void)lz::run(method, net, net, tiny_data(), lz::budget(10), options); },
               "the teacher is the network being linearized");
  auto empty = tiny_data();
  empty.train = empty.train.take(0);
  expect_error([&] { (void)lz::run(method, net, nullptr, empty, lz::budget(10), options); },
               "training set (0 samples)");
  expect_error([&] { (void)lz::run(method, net, nullptr, tiny_data(), lz::budget(1000), options); },
               "budget of 1000 ReLUs out of range: expected 1 to 144");
  auto two_budgets = options;
  two_budgets.stage_budgets = {lz::budget(100)};
  expect_error([&] { (void)lz::run(method, net, nullptr, tiny_data(), lz::budget(10), two_budgets); },
               "1 stage budgets for a method of 1 stage(s)");
  auto no_augment = options;
  no_augment.augment.reset();
  expect_error([&] { (void)lz::run(method, net, nullptr, tiny_data(), lz::budget(10), no_augment); },
               "run: no augmentation chosen");
  auto zero_eval = options;
  zero_eval.eval_batch_size = 0;
  expect_error([&] { (void)lz::run(method, net, nullptr, tiny_data(), lz::budget(10), zero_eval); },
               "evaluate: batch size 0 must be positive");
}

TEST_CASE("Bad policy settings are refused, naming the setting", "[bad_input]") {
  lz::train::scalars state;
  expect_error([] { (void)lz::schedule::fixed_step{.drc = 0}.step_size(); }, "fixed_step: drc 0 must be positive");
  expect_error([&] { lz::schedule::lasso_growth{.factor = 1}.start(state); }, "factor 1 > 1");
  expect_error([&] { lz::schedule::budget_tracking{.overtime = -1}.start(state); }, "overtime -1 >= 0");
  expect_error([&] { lz::schedule::budget_tracking{.plan_fraction = 1.5}.start(state); }, "plan_fraction 1.5 in (0, 1]");
  expect_error([&] { lz::schedule::budget_tracking{.search_to = 0.5}.start(state); }, "search_to 0.5 >= 1");
  expect_error([] { (void)lz::relax::l1_mix{.step_scale = 0}.from_binary(torch::ones({2})); },
               "l1_mix: step_scale 0 must be positive");
  expect_error([] { lz::select::coordinate_block{.tries = 0}.validate(); }, "coordinate_block: tries 0 must be positive");
  expect_error([] { lz::select::coordinate_block{.adt = NAN}.validate(); }, "coordinate_block: adt nan");

  auto net = tiny_conv(4, 4, 0.0);
  const auto distill_t0 = lz::pipeline(lz::select::top_k{}, lz::finetune::distill{.epochs = 1, .temperature = 0});
  expect_error([&] {
    (void)lz::run(distill_t0, net, net->copy(), tiny_data(), lz::budget(100), lz::testing::quick_options());
  }, "distill: temperature 0 > 0");
  const auto distill_clip = lz::pipeline(lz::select::top_k{}, lz::finetune::distill{.epochs = 1, .max_grad_norm = NAN});
  expect_error([&] {
    const auto fresh = tiny_conv(4, 4, 0.0);  // `net` is within the budget now: no finetune would run
    (void)lz::run(distill_clip, fresh, fresh->copy(), tiny_data(), lz::budget(100), lz::testing::quick_options());
  }, "distill: max_grad_norm nan must be finite and not negative (0: no clipping)");
  const auto keep_none = lz::pipeline(lz::select::stage_criticality{.ranking = {""}, .keep_stages = 0},
                                      lz::schedule::stagewise{}, lz::finetune::distill{.epochs = 0});
  expect_error([&] {
    (void)lz::run(keep_none, tiny_conv(4, 4, 0.0), nullptr, tiny_data(), lz::budget(100), lz::testing::quick_options());
  }, "keep_stages = 0 would let every stage be culled");
  // A budget DeepReDuce's steps cannot reach fails before the baseline is even evaluated: with
  // an evaluation batch of 0 the evaluation would fail first, with another message.
  auto no_eval = lz::testing::quick_options();
  no_eval.eval_batch_size = 0;
  const auto deepreduce = lz::pipeline(lz::select::stage_criticality{}, lz::schedule::stagewise{},
                                       lz::finetune::distill{.epochs = 0});
  expect_error([&] {
    (void)lz::run(deepreduce, tiny_conv(4, 4, 0.0), nullptr, tiny_data(), lz::budget(100), no_eval);
  }, "stage_criticality: budget of 100 ReLUs is below 144, the fewest that culling and thinning reach");
}

TEST_CASE("The DeepReDuce planner refuses bad budgets and rankings", "[bad_input]") {
  const auto slots = four_stages();
  expect_error([&] { (void)lz::select::plan_deepreduce(slots, four_ranking, 0); },
               "DeepReDuce plan: budget of 0 ReLUs; expected a positive count");
  expect_error([&] { (void)lz::select::plan_deepreduce(slots, {"layer1", "layer2", "layer3", "layer9"}, 100); },
               "ranking names stage 'layer9', which the network does not have");
  expect_error([&] { (void)lz::select::plan_deepreduce(slots, {"layer1", "layer1", "layer3", "layer4"}, 100); },
               "ranking names stage 'layer1' more than once");
  // Two stages kept, thinned: 200 ReLUs at the least; 10 is out of reach without reshaping.
  expect_error([&] { (void)lz::select::plan_deepreduce(slots, four_ranking, 10); },
               "budget of 10 ReLUs is below 200, the fewest that culling and thinning reach");
}

TEST_CASE("Bad files are refused, naming the file and what is wrong", "[bad_input]") {
  lz::testing::temp_dir dir("bad_files");
  auto net = tiny_conv(5);
  const lz::MaskSet masks(*net);
  expect_error([&] { masks.load(dir / "missing.mask"); }, "missing.mask");
  {
    std::ofstream(dir / "notes.ckpt") << "not a checkpoint\n";
  }
  expect_error([&] { (void)lz::train::checkpoint::read(dir / "notes.ckpt"); }, "is not a linearize checkpoint");
  // A real checkpoint cut short.
  auto o = tiny_training();
  o.checkpoint = dir / "run.ckpt";
  (void)lz::train::fit(tiny_conv(5), stripes(32, 1), o);
  const auto whole = lz::read_file(dir / "run.ckpt");
  {
    std::ofstream(dir / "cut.ckpt", std::ios::binary) << whole.substr(0, whole.size() / 2);
  }
  expect_error([&] { (void)lz::train::checkpoint::read(dir / "cut.ckpt"); }, "is truncated or corrupt");
  {
    std::ofstream(dir / "broken.json") << "{\"a\": ";
  }
  expect_error([&] { (void)lz::io::read_json_file(dir / "broken.json"); }, "broken.json' is not valid JSON");
  // A file where a directory should be: the write fails with the reason, nothing is left.
  {
    std::ofstream(dir / "plain") << "x";
  }
  expect_error([&] { lz::write_atomically(dir / "plain" / "out.txt", [](std::ostream& s) { s << "y"; }); },
               "cannot create directory");
  // The same checkpoint resumed with another seed: the message names the setting and both values.
  auto other = o;
  other.seed = 9;
  other.epochs = 2;
  expect_error([&] { (void)lz::train::fit(tiny_conv(5), stripes(32, 1), other); },
               "seed: 0 in the checkpoint, 9 in this run");
}

// ---- a work directory reused with other settings; a checkpoint write that fails; wall time
// across resumes ------------------------------------------------------------------------------

TEST_CASE("A work directory of a run with other settings is refused, naming the setting", "[bad_input][resume]") {
  lz::testing::temp_dir dir("other_settings");
  auto options = lz::testing::quick_options();
  options.work_dir = dir.path;
  const auto method = [](int64_t search_epochs, int64_t finetune_epochs) {
    return lz::pipeline(lz::relax::l1_mix{}, lz::schedule::budget_tracking{.epochs = search_epochs, .check_every = 2},
                        lz::select::top_k{}, lz::finetune::distill{.epochs = finetune_epochs});
  };
  auto net = tiny_conv(6, 4, 0.0);
  const auto first = lz::run(method(10, 0), net, net->copy(), tiny_data(), lz::budget(60), options);
  REQUIRE(std::filesystem::exists(dir / "run.json"));
  const auto again = [&](const auto& m, const lz::budget& b, const lz::run_options& o) {
    auto fresh = tiny_conv(6, 4, 0.0);
    return lz::run(m, fresh, fresh->copy(), tiny_data(), b, o);
  };
  // Each of these would otherwise have resumed the first run's finished checkpoints.
  expect_error([&] { (void)again(method(11, 0), lz::budget(60), options); },
               "stages[0].scheduler.epochs: 10 there, 11 here");
  expect_error([&] { (void)again(method(10, 1), lz::budget(60), options); },
               "stages[0].finetune.epochs: 0 there, 1 here");
  expect_error([&] { (void)again(method(10, 0), lz::budget(50), options); }, "budget: 60 there, 50 here");
  auto other_seed = options;
  other_seed.seed = 5;
  expect_error([&] { (void)again(method(10, 0), lz::budget(60), other_seed); }, "options.seed: 0 there, 5 here");
  const auto other_relax = lz::pipeline(lz::relax::l1_mix{.threshold = 0.02},
                                        lz::schedule::budget_tracking{.epochs = 10, .check_every = 2},
                                        lz::select::top_k{}, lz::finetune::distill{.epochs = 0});
  expect_error([&] { (void)again(other_relax, lz::budget(60), options); },
               "stages[0].relaxation.threshold: 0.01 there, 0.02 here");
  // The same settings resume: the finished run comes back from its checkpoints.
  CHECK(torch::equal(again(method(10, 0), lz::budget(60), options).mask, first.mask));
  // run_finetune() keeps its own record (<phase>.json) beside run.json, with the same rule.
  const auto top_up = [&](int64_t epochs) {
    return lz::run_finetune(lz::finetune::distill{.epochs = epochs}, net, net->copy(), tiny_data(), options, "top-up");
  };
  const auto once = top_up(1);
  CHECK(std::filesystem::exists(dir / "top-up.json"));
  expect_error([&] { (void)top_up(2); }, "finetune.epochs: 1 there, 2 here");
  CHECK(top_up(1).test_accuracy == once.test_accuracy);  // resumed from its finished checkpoint
}

namespace {
/// Makes writes into `dir` fail from now until it dies, and says how: a directory without write
/// permission where that stops this process (not root), else a file-size limit (RLIMIT_FSIZE)
/// below the checkpoint's size, so that writing it fails as on a full disk (EFBIG). Either way
/// the writer's own code path meets a failing system call; nothing is mocked.
struct unwritable {
  std::filesystem::path dir;
  bool by_permission = false;
  rlimit saved{};
  void (*old_handler)(int) = nullptr;
  explicit unwritable(std::filesystem::path d) : dir(std::move(d)) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    std::ofstream probe(dir / "probe");
    by_permission = !probe;
    if (by_permission) return;
    probe.close();
    std::filesystem::remove(dir / "probe");
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    ::getrlimit(RLIMIT_FSIZE, &saved);
    old_handler = std::signal(SIGXFSZ, SIG_IGN);  // else the process is killed instead of EFBIG
    rlimit small = saved;
    small.rlim_cur = 512;
    ::setrlimit(RLIMIT_FSIZE, &small);
  }
  ~unwritable() {
    if (by_permission) {
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    } else {
      ::setrlimit(RLIMIT_FSIZE, &saved);
      std::signal(SIGXFSZ, old_handler);
    }
  }
  [[nodiscard]] std::string how() const {
    return by_permission ? "directory made read-only" : "file size limited to 512 bytes (running as root: "
                                                        "a read-only directory does not stop root)";
  }
};
}  // namespace

TEST_CASE("A checkpoint that cannot be written mid-run: a clear error, the previous one intact", "[bad_input][resume]") {
  lz::testing::temp_dir dir("unwritable");
  const auto work = dir / "work";
  std::filesystem::create_directories(work);
  auto o = tiny_training();
  o.epochs = 3;
  o.checkpoint = work / "run.ckpt";
  std::string before;  // the first epoch's checkpoint, as it was when writes began to fail
  std::optional<unwritable> failing;
  const auto fail_from_epoch_2 = lz::train::hooks{.after_epoch = [&](lz::train::epoch_context& c) {
    if (c.epoch != 1) return;
    before = lz::read_file(o.checkpoint);
    failing.emplace(work);  // the epoch's own checkpoint, written next, is the first to fail
  }};
  std::string message;
  try {
    (void)lz::train::fit(tiny_conv(7), stripes(32, 1), o, fail_from_epoch_2);
  } catch (const lz::error& e) {
    message = e.what();
  }
  REQUIRE(failing.has_value());
  const std::string how = failing->how();
  failing.reset();
  INFO("writes failed by: " << how << "; message: " << message);
  CHECK(message.find("cannot write '" + o.checkpoint.string() + "'") != std::string::npos);
  CHECK(message.find("the previous file is as it was") != std::string::npos);
  CHECK(lz::read_file(o.checkpoint) == before);  // byte for byte
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(work)) left.push_back(entry.path().filename());
  CHECK(left == std::vector<std::string>{"run.ckpt"});  // no temporary left behind
  // And the run goes on from it once the directory is writable again.
  const auto resumed = lz::train::fit(tiny_conv(8), stripes(32, 1), o);
  CHECK(resumed.rows.size() == 3);
  CHECK(resumed.resumed_seconds > 0);
}

TEST_CASE("After a resume the wall time counts the earlier processes too", "[resume]") {
  lz::testing::temp_dir dir("wall_time");
  auto o = tiny_training();
  o.epochs = 2;
  o.checkpoint = dir / "run.ckpt";
  o.checkpoint_every = 1;
  o.stop_after_steps = 3;  // "killed" after step 3 of 4; the last checkpoint is from step 2
  const auto slow = lz::train::hooks{.after_step = [](lz::train::step_context&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }};
  const auto first = lz::train::fit(tiny_conv(9), stripes(32, 1), o, slow);
  REQUIRE(first.end == lz::train::run_end::interrupted);
  CHECK(first.resumed_seconds == 0);
  CHECK(first.seconds >= 3 * 0.04);
  o.stop_after_steps.reset();
  const auto second = lz::train::fit(tiny_conv(9), stripes(32, 1), o, slow);
  REQUIRE(second.end == lz::train::run_end::completed);
  // Two steps were checkpointed by the first process (>= 80 ms); the third was lost with it.
  CHECK(second.resumed_seconds >= 2 * 0.04);
  CHECK(second.resumed_seconds <= first.seconds);
  CHECK(second.seconds >= second.resumed_seconds + 2 * 0.04);  // this process redid 2 steps

  // run(): a second call finds every phase finished; its result files report the first's time.
  lz::testing::temp_dir work("wall_time_run");
  auto options = lz::testing::quick_options();
  options.work_dir = work.path;
  const auto method = lz::pipeline(lz::relax::l1_mix{}, lz::schedule::budget_tracking{.epochs = 10, .check_every = 2},
                                   lz::select::top_k{}, lz::finetune::distill{.epochs = 1});
  auto a = tiny_conv(10, 4, 0.0);
  const auto whole = lz::run(method, a, a->copy(), tiny_data(), lz::budget(60), options);
  CHECK(whole.resumed_seconds == 0);
  double trained = 0;  // the epochs' own time, a part of what the first call took
  for (const auto& h : whole.history) trained += h.seconds;
  auto b = tiny_conv(10, 4, 0.0);
  const auto again = lz::run(method, b, b->copy(), tiny_data(), lz::budget(60), options);
  CHECK(again.resumed_seconds >= trained);
  CHECK(again.resumed_seconds <= whole.seconds);
  CHECK(lz::result_row(again, "snl", lz::pi::delphi()).wall_time_s >= again.resumed_seconds);
}
