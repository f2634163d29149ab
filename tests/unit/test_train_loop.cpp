// The training loop: exact resume, NaN stop, hooks, learning, checkpoint errors.
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/train/checkpoint.hpp>
#include <linearize/train/trainer.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

using namespace linearize;
using linearize::testing::expect_error;
using linearize::testing::same_state;
using linearize::testing::temp_dir;
using linearize::testing::tiny_conv;

namespace {

// 40 samples, batches of 8: 5 steps per epoch.
train::options small_run() {
  return {.epochs = 2,
          .batch_size = 8,
          .augment = {.crop_padding = 1, .horizontal_flip = true},
          .optimizer = train::sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4},
          .schedule = train::cosine{},
          .seed = 11,
          .progress = {.mode = train::progress_mode::silent}};
}

// Counts steps into a named scalar: hook state that must survive a resume.
auto counting_hooks() {
  return train::hooks{.extra_loss = [](train::step_context& c) {
                        return 1e-3 * c.net.named_parameters()["relu.mask"].abs().sum();
                      },
                      .after_step = [](train::step_context& c) { c.values["steps_seen"] += 1; }};
}

}  // namespace

TEST_CASE("a resumed run ends with exactly the weights of an uninterrupted one", "[train]") {
  const auto data = testing::stripes(40, 5);
  auto teacher = tiny_conv(42, 4, 0.0);
  freeze(*teacher);

  auto opts = small_run();
  opts.teacher = teacher;
  opts.kd = {.temperature = 4, .weight = 0.5};
  opts.held_out = testing::stripes(12, 6);

  auto straight = tiny_conv(1);
  const auto whole = train::fit(straight, data, opts, counting_hooks());
  CHECK(whole.end == train::run_end::completed);
  CHECK(whole.global_step == 10);
  CHECK(whole.values.at("steps_seen") == 10);

  temp_dir dir("train_resume");
  opts.checkpoint = dir / "run.ckpt";
  opts.checkpoint_every = 3;
  opts.stop_after_steps = 7;  // "killed" after step 7; the last checkpoint is from step 6
  auto first = tiny_conv(1);
  const auto part = train::fit(first, data, opts, counting_hooks());
  CHECK(part.end == train::run_end::interrupted);
  CHECK(part.global_step == 7);
  CHECK(part.rows.size() == 1);
  CHECK(train::checkpoint::read(opts.checkpoint).state().global_step == 6);

  opts.stop_after_steps.reset();
  auto second = tiny_conv(77);  // different initial weights: everything must come from disk
  torch::manual_seed(12345);    // and a disturbed generator
  const auto rest = train::fit(second, data, opts, counting_hooks());
  CHECK(rest.end == train::run_end::completed);
  CHECK(rest.global_step == 10);
  CHECK(rest.values.at("steps_seen") == 10);
  CHECK(same_state(*second, *straight));
  REQUIRE(rest.rows.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(rest.rows[i].train_loss == whole.rows[i].train_loss);
    CHECK(rest.rows[i].train_top1 == whole.rows[i].train_top1);
    CHECK(rest.rows[i].lr == whole.rows[i].lr);
    REQUIRE(rest.rows[i].eval.has_value());
    CHECK(rest.rows[i].eval->loss == whole.rows[i].eval->loss);
    CHECK(rest.rows[i].values == whole.rows[i].values);
  }
  // A finished run resumed again does nothing.
  const auto again = train::fit(second, data, opts, counting_hooks());
  CHECK(again.global_step == 10);
  CHECK(same_state(*second, *straight));
}

TEST_CASE("Adam with a hard mask resumes exactly too", "[train]") {
  const auto data = testing::stripes(40, 7);
  auto opts = small_run();
  opts.optimizer = train::mask_search_adam;
  opts.schedule = train::multistep{.milestones = {1}, .gamma = 0.5};
  auto straight = tiny_conv(2);
  auto mask = torch::ones({4, 6, 6});
  mask[0].zero_();
  straight->relu->harden(mask);
  train::fit(straight, data, opts);

  temp_dir dir("train_resume_adam");
  opts.checkpoint = dir / "run.ckpt";
  opts.checkpoint_every = 2;
  opts.stop_after_steps = 5;  // interrupted at an epoch boundary, before the epoch end
  auto first = tiny_conv(2);
  first->relu->harden(mask);
  CHECK(train::fit(first, data, opts).end == train::run_end::interrupted);
  opts.stop_after_steps.reset();
  auto second = tiny_conv(3);  // soft here: the checkpoint makes it hard
  train::fit(second, data, opts);
  CHECK(second->relu->is_hard());
  CHECK_FALSE(second->relu->mask().requires_grad());
  CHECK(same_state(*second, *straight));
}

TEST_CASE("a NaN loss stops the run and leaves the last checkpoint intact", "[train]") {
  const auto data = testing::stripes(40, 5);
  temp_dir dir("train_nan");
  auto opts = small_run();
  opts.checkpoint = dir / "run.ckpt";
  opts.checkpoint_every = 1;
  auto net = tiny_conv(1);
  std::shared_ptr<NetworkImpl> before_bad_step;
  const auto poison = train::hooks{
      .extra_loss = [](train::step_context& c) {
        return c.global_step == 6 ? torch::tensor(NAN) : torch::Tensor();
      },
      .after_step = [&](train::step_context& c) {
        if (c.global_step == 5) before_bad_step = c.net.copy();  // what checkpoint 6 holds
      }};
  expect_error([&] { train::fit(net, data, opts, poison); },
               "loss is nan at epoch 1, step 1 (0-based; global step 6)");
  const auto saved = train::checkpoint::read(opts.checkpoint);
  CHECK(saved.state().global_step == 6);
  CHECK(saved.state().epoch == 1);
  CHECK(saved.state().step == 1);
  auto restored = tiny_conv(9);
  saved.restore_network(*restored);
  REQUIRE(before_bad_step);
  CHECK(same_state(*restored, *before_bad_step));
  // The bad step's forward moved BatchNorm's statistics, but no weight was updated.
  for (const auto& p : net->named_parameters())
    CHECK(torch::equal(p.value(), before_bad_step->named_parameters()[p.key()]));
  for (const auto& p : net->parameters()) CHECK(torch::isfinite(p).all().item<bool>());

  auto inf = tiny_conv(1);
  opts.checkpoint.clear();
  opts.checkpoint_every = 0;
  expect_error([&] {
    train::fit(inf, data, opts, train::hooks{.extra_loss = [](train::step_context&) {
                 return torch::tensor(INFINITY);
               }});
  }, "loss is inf at epoch 0, step 0");
}

namespace {
// Hooks as a user type with member functions.
struct budget_stop {
  int before = 0, extra = 0, after = 0, epochs = 0;
  void before_forward(train::step_context& c) {
    ++before;
    CHECK_FALSE(c.logits.defined());
  }
  torch::Tensor extra_loss(train::step_context& c) {
    ++extra;
    CHECK(c.logits.defined());
    return {};
  }
  void after_step(train::step_context& c) {
    ++after;
    CHECK(std::isfinite(c.loss));
  }
  train::epoch_action after_epoch(train::epoch_context& c) {
    ++epochs;
    c.values["best"] = static_cast<double>(c.epoch * 10);
    return c.epoch == 1 ? train::epoch_action::stop : train::epoch_action::proceed;
  }
};
}  // namespace

TEST_CASE("hooks run once per step and per epoch; an epoch hook can stop the run", "[train]") {
  const auto data = testing::stripes(40, 5);
  auto opts = small_run();
  opts.epochs = 4;
  budget_stop hook;
  auto net = tiny_conv(1);
  const auto h = train::fit(net, data, opts, hook);
  CHECK(h.end == train::run_end::stopped);
  CHECK(hook.before == 10);
  CHECK(hook.extra == 10);
  CHECK(hook.after == 10);
  CHECK(hook.epochs == 2);
  REQUIRE(h.rows.size() == 2);
  CHECK(h.rows[0].values.at("best") == 0);
  CHECK(h.rows[1].values.at("best") == 10);

  // Lambdas; a void epoch hook never stops; only the given hooks run.
  int steps = 0, epochs = 0;
  auto net2 = tiny_conv(1);
  opts.epochs = 3;
  const auto h2 = train::fit(net2, data, opts,
                             train::hooks{.after_step = [&](train::step_context&) { ++steps; },
                                          .after_epoch = [&](train::epoch_context& c) {
                                            ++epochs;
                                            CHECK(c.record.epoch == c.epoch);
                                          }});
  CHECK(h2.end == train::run_end::completed);
  CHECK(steps == 15);
  CHECK(epochs == 3);
  CHECK(h2.rows.size() == 3);
}

TEST_CASE("training reduces the loss on an easy problem", "[train]") {
  const auto data = testing::stripes(96, 21);
  auto opts = small_run();
  opts.epochs = 4;
  opts.batch_size = 16;
  opts.augment = {};
  opts.held_out = testing::stripes(60, 22);
  auto net = tiny_conv(4, 4, 0.0);
  const auto before = train::evaluate(net, *opts.held_out);
  const auto h = train::fit(net, data, opts);
  REQUIRE(h.rows.size() == 4);
  CHECK(h.rows.back().train_loss < 0.7 * h.rows.front().train_loss);
  CHECK(h.rows.back().eval->loss < before.loss);
  CHECK(h.rows.back().eval->top1 > 0.8);
  CHECK(h.rows.back().lr < h.rows.front().lr);  // cosine over the run
  CHECK(h.rows.back().images_per_second > 0);
}

TEST_CASE("missing, corrupt, truncated and foreign checkpoints are refused by name", "[train]") {
  const auto data = testing::stripes(40, 5);
  temp_dir dir("train_bad_ckpt");
  expect_error([&] { (void)train::checkpoint::read(dir / "none.ckpt"); }, "does not exist");

  auto opts = small_run();
  opts.epochs = 1;
  opts.checkpoint = dir / "good.ckpt";
  auto net = tiny_conv(1);
  train::fit(net, data, opts);
  const std::string good = read_file(opts.checkpoint);
  const auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };

  expect_error([&] { (void)train::checkpoint::read(write("text.ckpt", "hello\nworld\n")); },
               "is not a linearize checkpoint");
  // Format 1 (run state as words) is not read; the message says what to do.
  expect_error([&] { (void)train::checkpoint::read(write("v1.ckpt", "linearize-checkpoint 1\npayload 1 0\nx")); },
               "v1.ckpt' has format 1, written by an earlier linearize; this one reads format 2 "
               "(linearize-checkpoint 2). Delete it to start the run afresh");
  expect_error([&] { (void)train::checkpoint::read(write("cut.ckpt", good.substr(0, good.size() - 100))); },
               "truncated");
  auto flipped = good;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x5a);
  expect_error([&] { (void)train::checkpoint::read(write("flip.ckpt", flipped)); },
               "checksum mismatch");

  auto wide = tiny_conv(1, 6);
  expect_error([&] { train::load_network(opts.checkpoint, *wide); },
               "is for another architecture (tiny_conv(width=4, classes=3)): it has 'parameter "
               "conv.weight [4, 1, 3, 3]' where this network (tiny_conv(width=6, classes=3)) has "
               "'parameter conv.weight [6, 1, 3, 3]'");
  // Resuming with another seed or optimizer would not continue the same run.
  auto other = small_run();
  other.epochs = 2;
  other.checkpoint = opts.checkpoint;
  other.seed = 12;
  expect_error([&] { train::fit(tiny_conv(1), data, other); }, "was written by another run");
  other.seed = opts.seed;
  other.optimizer = train::adam{};
  expect_error([&] { train::fit(tiny_conv(1), data, other); },
               "optimizer: \"sgd\" in the checkpoint, \"adam\" in this run");
  // ... nor with another learning rate, schedule, augmentation or teacher: each is named.
  other.optimizer = train::sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
  expect_error([&] { train::fit(tiny_conv(1), data, other); },
               "optimizer.lr: 0.05 in the checkpoint, 0.1 in this run");
  other.optimizer = small_run().optimizer;
  other.schedule = train::multistep{.milestones = {1}};
  expect_error([&] { train::fit(tiny_conv(1), data, other); },
               "lr_schedule: {\"kind\":\"cosine\",\"epochs\":0,\"total_steps\":0,\"min_lr\":0.0} in the "
               "checkpoint, {\"kind\":\"multistep\",\"milestones\":[1],\"gamma\":0.1} in this run");
  other.schedule = small_run().schedule;
  other.augment = {};
  expect_error([&] { train::fit(tiny_conv(1), data, other); },
               "augment.crop_padding: 1 in the checkpoint, 0 in this run; augment.horizontal_flip: true in "
               "the checkpoint, false in this run");
  other.augment = small_run().augment;
  other.teacher = tiny_conv(2);
  expect_error([&] { train::fit(tiny_conv(1), data, other); },
               "distillation: null in the checkpoint, {\"temperature\":4.0,\"weight\":1.0} in this run");
  auto no_path = small_run();
  no_path.checkpoint_every = 2;
  expect_error([&] { train::fit(tiny_conv(1), data, no_path); }, "without a checkpoint path");
  // resume = false starts afresh over it.
  other.resume = false;
  CHECK(train::fit(tiny_conv(1), data, other).global_step == 10);
}

TEST_CASE("max_grad_norm rescales large gradients only, counts them, and a resume must match it",
          "[train]") {
  const auto data = testing::stripes(40, 9);
  train::options opts{.epochs = 1,
                      .batch_size = 8,
                      .optimizer = train::sgd{.lr = 0.1, .momentum = 0, .weight_decay = 0},
                      .seed = 3,
                      .progress = {.mode = train::progress_mode::silent}};
  const auto step_norm = [&](double max_norm) {
    auto net = tiny_conv(5, 4, 0.0);
    const auto before = net->copy();
    auto o = opts;
    o.max_grad_norm = max_norm;
    o.stop_after_steps = 1;
    train::fit(net, data, o);
    double sq = 0;
    const auto old = before->named_parameters(true);
    for (const auto& p : net->named_parameters(true)) sq += (p.value() - old[p.key()]).pow(2).sum().item<double>();
    return std::sqrt(sq);
  };
  // One SGD step moves the weights by lr x the gradient's norm: clipped to 1e-3, exactly 1e-4.
  const double free_step = step_norm(0);
  CHECK(free_step > 1e-3);
  CHECK(step_norm(1e-3) == Approx(1e-4).epsilon(1e-4));
  CHECK(step_norm(1e6) == Approx(free_step).epsilon(1e-9));

  auto clipped = opts;
  clipped.max_grad_norm = 1e-3;
  CHECK(train::fit(tiny_conv(5, 4, 0.0), data, clipped).values.at("clipped_steps") == 5);
  auto loose = opts;
  loose.max_grad_norm = 1e6;
  auto a = tiny_conv(5, 4, 0.0), b = tiny_conv(5, 4, 0.0);
  CHECK(train::fit(a, data, loose).values.count("clipped_steps") == 0);
  train::fit(b, data, opts);
  CHECK(same_state(*a, *b));  // a bound above every step changes nothing

  temp_dir dir("train_clip");
  clipped.checkpoint = dir / "run.ckpt";
  clipped.stop_after_steps = 2;
  clipped.checkpoint_every = 1;
  train::fit(tiny_conv(5, 4, 0.0), data, clipped);
  auto other = clipped;
  other.stop_after_steps.reset();
  other.max_grad_norm = 0;
  expect_error([&] { train::fit(tiny_conv(5, 4, 0.0), data, other); },
               "max_grad_norm: 0.001 in the checkpoint, absent in this run");
  other.max_grad_norm = -1;
  expect_error([&] { train::fit(tiny_conv(5, 4, 0.0), data, other); },
               "train: max_grad_norm -1 must be finite and not negative");
}
