#pragma once
// The training loop, for runs researchers leave going for hours: checkpoints every N steps and
// at each epoch end, exact resume, a NaN/inf loss stops the run with the last good checkpoint
// intact, and progress on stderr.
//
// Higher layers (relaxations, budget schedulers, the SNL mask search) plug in through a hooks
// object: any type with some of these members, callables or member functions (not templates):
//   before_forward(step_context&)          e.g. a relaxation sets each slot's gate
//   extra_loss(step_context&) -> Tensor    a scalar added to the loss (undefined: nothing)
//   after_step(step_context&)              e.g. a scheduler adjusts lambda every k steps
//   after_epoch(epoch_context&) -> epoch_action or void   epoch_action::stop ends the run
// `train::hooks{.extra_loss = ..., .after_epoch = ...}` builds one from lambdas; members left
// out cost nothing. They are resolved at compile time: no virtual calls, no std::function.
// State a hook must keep across a resume goes into the run's named scalars (context.values),
// which every checkpoint saves.
//
// Data-parallel: in a run of several processes (distributed/group.hpp) every rank calls fit()
// alike; each trains on its shard of every global batch and the ranks take identical steps
// (train/data_parallel.hpp). At each epoch end (and before a checkpoint) per-rank BatchNorm
// statistics are averaged over the ranks and the replicas are compared by checksum; rank 0
// writes the checkpoints and prints progress; every rank resumes from rank 0's checkpoint. The
// hooks run on every rank and see the same values (the global batch's loss). With one process
// none of this runs.
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/loader.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/distributed/replicas.hpp>
#include <linearize/io/json.hpp>
#include <linearize/models/batch_norm.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/seed.hpp>
#include <linearize/train/checkpoint.hpp>
#include <linearize/train/data_parallel.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/history.hpp>
#include <linearize/train/losses.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/progress.hpp>

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace linearize::train {

struct options {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  data::augmentation augment{};
  bool drop_last = false;
  optimizer_config optimizer = sgd{};
  lr_schedule schedule = constant{};
  /// A frozen teacher turns on knowledge distillation: loss = CE + kd.weight * KD(T).
  Network teacher = nullptr;
  distillation kd{};
  /// Evaluated every `eval_every` epochs (0: never) when given.
  std::optional<data::image_dataset> held_out{};
  int64_t eval_batch_size = 256;
  int64_t eval_every = 1;
  /// Checkpoint file; empty: no checkpoints. Written every `checkpoint_every` steps (0: only at
  /// epoch ends) and at each epoch end.
  std::filesystem::path checkpoint{};
  int64_t checkpoint_every = 0;
  /// Continue from the checkpoint when the file exists (false: start afresh, overwriting it).
  bool resume = true;
  /// Seeds batch order, augmentation and torch's default generator (dropout, ...).
  uint64_t seed = 0;
  /// Ends the run once this many optimizer steps have been taken in total, without any further
  /// checkpoint or epoch-end work: what a kill would leave behind (for tests and time limits).
  std::optional<int64_t> stop_after_steps{};
  /// Initial named scalars of a fresh run (a resumed run takes the checkpoint's).
  scalars values{};
  progress_options progress{};
  /// Data-parallel runs: normalize by the statistics of the whole global batch instead of each
  /// rank's shard (models/batch_norm.hpp; the network's BatchNorm layers must be
  /// models::BatchNorm2d). Changes nothing on one process.
  bool sync_batchnorm = false;
  /// Rescales the gradient to this global L2 norm when it is larger (0: never). In a network of
  /// AutoReP's polynomials one batch can blow the activations up (x^2 composed layer on layer);
  /// one SGD step on its gradient throws the weights out of range for good. Each rescaled step
  /// adds 1 to the scalar "clipped_steps".
  double max_grad_norm = 0;
};

/// What a step hook sees. `logits` is defined from extra_loss on, `loss` in after_step.
struct step_context {
  int64_t epoch = 0;            ///< 0-based
  int64_t step = 0;             ///< 0-based, within the epoch
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;      ///< optimizer steps taken before this one
  double lr = 0;
  torch::Tensor images;         ///< the batch, on the network's device
  torch::Tensor labels;
  torch::Tensor logits{};
  double loss = NAN;            ///< the step's total loss (after_step)
  scalars& values;
  NetworkImpl& net;
};

/// What an epoch hook sees, after the epoch's evaluation.
struct epoch_context {
  int64_t epoch = 0;            ///< 0-based
  int64_t epochs = 0;
  const epoch_record& record;   ///< the epoch's row (its `values` are filled in after the hook)
  scalars& values;
  NetworkImpl& net;
};

enum class epoch_action { proceed, stop };

/// The member type of a hook that was not given.
struct no_hook {};

/// Hooks from callables: `hooks{.extra_loss = [&](step_context& c) { ... }}`.
template <class BeforeForward = no_hook, class ExtraLoss = no_hook, class AfterStep = no_hook,
          class AfterEpoch = no_hook>
struct hooks {
  [[no_unique_address]] BeforeForward before_forward{};
  [[no_unique_address]] ExtraLoss extra_loss{};
  [[no_unique_address]] AfterStep after_step{};
  [[no_unique_address]] AfterEpoch after_epoch{};
};

/// A bound on the gradient's L2 norm is finite and >= 0 (0: no clipping); `who` is named in the
/// error (a finetune checks its own before it spends anything).
inline void validate_max_grad_norm(double bound, const char* who) {
  require(bound >= 0 && std::isfinite(bound), who, ": max_grad_norm ", bound,
          " must be finite and not negative (0: no clipping)");
}

namespace detail {

/// run_identity::settings of a run: what besides seed, batching and the optimizer's kind sets
/// its course. A resume under other values would silently continue another run.
[[nodiscard]] inline std::string course_settings(const options& o) {
  io::json j = io::json::object();
  j["optimizer"] = std::visit([](const auto& c) { return io::to_json_value(c); }, o.optimizer);
  j["lr_schedule"] = std::visit([](const auto& c) { return io::to_json_value(c); }, o.schedule);
  j["augment"] = io::to_json_value(o.augment);
  j["distillation"] = o.teacher ? io::to_json_value(o.kd) : io::json(nullptr);
  if (o.max_grad_norm > 0) j["max_grad_norm"] = o.max_grad_norm;  // absent: as before it existed
  return j.dump();
}

// A hook is "declared" when H has a member of that name that is not a no_hook; a declared hook
// must be callable with the context, else the build stops with a message saying so.
#define LINEARIZE_TRAIN_HOOK_TRAITS(name)                                                    \
  template <class H>                                                                         \
  constexpr bool declares_##name() {                                                         \
    using T = std::remove_cvref_t<H>;                                                        \
    if constexpr (requires { &T::name; })                                                    \
      return !std::is_same_v<decltype(&T::name), no_hook T::*>;                              \
    else                                                                                     \
      return false;                                                                          \
  }
LINEARIZE_TRAIN_HOOK_TRAITS(before_forward)
LINEARIZE_TRAIN_HOOK_TRAITS(extra_loss)
LINEARIZE_TRAIN_HOOK_TRAITS(after_step)
LINEARIZE_TRAIN_HOOK_TRAITS(after_epoch)
#undef LINEARIZE_TRAIN_HOOK_TRAITS

template <class H>
void before_forward(H& h, step_context& c) {
  if constexpr (declares_before_forward<H>()) {
    static_assert(requires { h.before_forward(c); },
                  "hooks: before_forward must be callable as before_forward(step_context&)");
    h.before_forward(c);
  }
}

template <class H>
torch::Tensor extra_loss(H& h, step_context& c) {
  if constexpr (declares_extra_loss<H>()) {
    static_assert(requires { { h.extra_loss(c) } -> std::convertible_to<torch::Tensor>; },
                  "hooks: extra_loss must be callable as extra_loss(step_context&) and return a "
                  "torch::Tensor (a scalar; undefined for nothing)");
    return h.extra_loss(c);
  } else {
    return {};
  }
}

template <class H>
void after_step(H& h, step_context& c) {
  if constexpr (declares_after_step<H>()) {
    static_assert(requires { h.after_step(c); },
                  "hooks: after_step must be callable as after_step(step_context&)");
    h.after_step(c);
  }
}

template <class H>
epoch_action after_epoch(H& h, epoch_context& c) {
  if constexpr (declares_after_epoch<H>()) {
    static_assert(requires { h.after_epoch(c); },
                  "hooks: after_epoch must be callable as after_epoch(epoch_context&)");
    using result = decltype(h.after_epoch(c));
    static_assert(std::is_void_v<result> || std::is_same_v<std::remove_cvref_t<result>, epoch_action>,
                  "hooks: after_epoch must return void or train::epoch_action");
    if constexpr (std::is_void_v<result>) {
      h.after_epoch(c);
      return epoch_action::proceed;
    } else {
      return h.after_epoch(c);
    }
  } else {
    return epoch_action::proceed;
  }
}

inline void validate(const options& o) {
  require(o.epochs >= 0, "train: epochs ", o.epochs, " must not be negative");
  require(o.batch_size > 0, "train: batch size ", o.batch_size, " must be positive");
  require(o.eval_batch_size > 0, "train: eval batch size ", o.eval_batch_size, " must be positive");
  require(o.eval_every >= 0, "train: eval_every ", o.eval_every, " must not be negative");
  require(o.checkpoint_every >= 0, "train: checkpoint_every ", o.checkpoint_every,
          " must not be negative");
  require(o.checkpoint_every == 0 || !o.checkpoint.empty(), "train: checkpoint_every ",
          o.checkpoint_every, " given without a checkpoint path; expected options::checkpoint");
  require(!o.stop_after_steps || *o.stop_after_steps >= 0, "train: stop_after_steps ",
          o.stop_after_steps.value_or(0), " must not be negative");
  validate_max_grad_norm(o.max_grad_norm, "train");
  train::validate(o.optimizer);
  train::validate(o.schedule, base_lr(o.optimizer));
  train::validate(o.kd);
}

/// Slots that learn their shape on the first forward have no mask yet; one forward pass in
/// eval mode without autograd (no BatchNorm update, no randomness) creates them, so the
/// optimizer sees the masks from the start.
inline void materialize_slots(NetworkImpl& net, const data::batch_loader& loader,
                              torch::Device device) {
  bool missing = false;
  for (const auto& [name, slot] : slots_of(net)) missing = missing || !slot->materialized();
  if (!missing) return;
  torch::NoGradGuard no_grad;
  mode_guard eval_mode(net, /*training=*/false);
  (void)net.forward(loader.make(0, 0).images.to(device));
}

inline std::string epoch_summary(const epoch_record& r, int64_t epochs) {
  auto out = fmt::format("epoch {}/{}  loss {:.4f}  acc {:.2f}%", r.epoch + 1, epochs, r.train_loss,
                         100 * r.train_top1);
  if (r.eval) {
    out += fmt::format("  held-out top1 {:.2f}%", 100 * r.eval->top1);
    if (r.eval->top5) out += fmt::format(" top5 {:.2f}%", 100 * *r.eval->top5);
    out += fmt::format(" loss {:.4f}", r.eval->loss);
  }
  out += fmt::format("  lr {:.6g}  {:.0f} img/s  {:.1f} s", r.lr, r.images_per_second, r.seconds);
  for (const auto& [name, v] : r.values) out += fmt::format("  {} {:.6g}", name, v);
  return out;
}

}  // namespace detail

/// Trains `net` on `train_data` as `opts` says, calling `hook`'s members (see the top of this
/// header). With a checkpoint path whose file exists (and `resume`), continues that run.
/// A non-finite loss throws linearize::error naming the epoch, step and value; the checkpoint
/// on disk is then the last one written before it.
template <class Hooks = hooks<>>
history fit(NetworkImpl& net, const data::image_dataset& train_data, const options& opts,
            Hooks&& hook = Hooks{}) {
  using clock = std::chrono::steady_clock;
  detail::validate(opts);
  require(!opts.teacher || opts.teacher.get() != &net,
          "train: the teacher is the network being trained; give a frozen copy (net->copy())");

  const auto group = distributed::world();
  const bool parallel = !group.alone();
  data::batch_loader loader(train_data, data::loader_options{
                                            .batch_size = opts.batch_size,
                                            .shuffle = true,
                                            .drop_last = opts.drop_last,
                                            .augment = opts.augment,
                                            .seed = derive_seed(opts.seed, {0x10ade7u}),
                                            .shard_index = group.rank(),
                                            .shard_count = group.size(),
                                        });
  if (parallel) detail::require_shards(loader, group.size());
  const int64_t steps = loader.batches_per_epoch();
  const auto device = device_of(net);
  detail::materialize_slots(net, loader, device);
  const run_identity identity{opts.seed, opts.batch_size, steps, opts.drop_last,
                              optimizer_name(opts.optimizer), detail::course_settings(opts)};
  const bool checkpoints = !opts.checkpoint.empty();

  const auto started = clock::now();
  run_state state;
  state.values = opts.values;
  std::optional<checkpoint> saved;
  if (checkpoints && opts.resume && std::filesystem::exists(opts.checkpoint)) {
    saved.emplace(checkpoint::read(opts.checkpoint, device));
    saved->check_identity(identity);
    saved->restore_network(net);
    state = saved->state();
  } else {
    torch::manual_seed(derive_seed(opts.seed, {0x7a11u}));
  }
  // Built after the network is restored: hard masks (no gradient) are left out.
  auto optimizer = make_optimizer(opts.optimizer, net.parameters(true));
  if (saved) {
    saved->restore_optimizer(*optimizer, identity.optimizer);
    saved->restore_rng();
    saved.reset();
  }
  std::optional<detail::data_parallel> replicas;
  if (parallel) {
    distributed::broadcast_state(group, net);  // identical replicas from the start
    replicas.emplace(group, detail::optimized_parameters(*optimizer));
  }
  // Clipped after the ranks' gradients are summed, so every rank rescales alike.
  const auto clip_gradients = [&, params = detail::optimized_parameters(*optimizer)] {
    if (opts.max_grad_norm > 0 &&
        torch::nn::utils::clip_grad_norm_(params, opts.max_grad_norm) > opts.max_grad_norm)
      state.values["clipped_steps"] += 1;
  };
  const models::synchronize_batchnorm synchronized(net, opts.sync_batchnorm);
  // Per-rank BatchNorm statistics differ between ranks; their mean is what every rank keeps.
  const auto gather_buffers = [&] {
    if (parallel && !opts.sync_batchnorm) models::average_batchnorm_statistics(group, net, 1.0 / group.size());
  };

  // Earlier processes' time on this run travels in the checkpoint (run_state::elapsed_seconds).
  const double resumed_seconds = state.elapsed_seconds;
  const auto elapsed = [&] {
    return resumed_seconds + std::chrono::duration<double>(clock::now() - started).count();
  };
  history result;
  const auto finish = [&](run_end end) {
    result.seconds = elapsed();
    result.resumed_seconds = resumed_seconds;
    result.rows = state.rows;
    result.values = state.values;
    result.end = end;
    result.global_step = state.global_step;
    return result;
  };
  if (state.stopped) return finish(run_end::stopped);
  if (state.epoch >= opts.epochs) return finish(run_end::completed);
  if (opts.stop_after_steps && state.global_step >= *opts.stop_after_steps)
    return finish(run_end::interrupted);

  NetworkImpl* teacher = opts.teacher.get();
  std::optional<torch::Device> teacher_device;
  if (teacher) {
    teacher->eval();
    teacher_device = device_of(*teacher);
  }
  const auto save = [&] {  // rank 0 writes; every rank holds the same state
    if (!checkpoints) return;
    state.elapsed_seconds = elapsed();
    if (group.writer()) save_checkpoint(opts.checkpoint, net, *optimizer, identity, state);
  };

  progress_meter meter(opts.progress);
  if (state.epoch > 0 || state.step > 0)
    meter.note("resuming " + net.describe() + " from '" + opts.checkpoint.string() + "' at epoch " +
               std::to_string(state.epoch + 1) + ", step " + std::to_string(state.step + 1));
  meter.start(opts.epochs, steps, state.epoch, state.step);
  detail::mode_guard train_mode(net, /*training=*/true);

  for (int64_t epoch = state.epoch; epoch < opts.epochs; ++epoch) {
    loader.start_epoch(epoch, state.step);
    const auto epoch_start =
        clock::now() - std::chrono::duration_cast<clock::duration>(
                           std::chrono::duration<double>(state.partial_seconds));
    while (auto batch = loader.next()) {
      const int64_t step = batch->index;
      const double lr = lr_at(opts.schedule, base_lr(opts.optimizer),
                              run_position{epoch, step, steps, opts.epochs});
      set_lr(*optimizer, lr);
      step_context ctx{.epoch = epoch,
                       .step = step,
                       .steps_per_epoch = steps,
                       .global_step = state.global_step,
                       .lr = lr,
                       .images = batch->images.to(device),
                       .labels = batch->labels.to(device),
                       .values = state.values,
                       .net = net};

      detail::before_forward(hook, ctx);
      ctx.logits = net.forward(ctx.images);
      auto loss = cross_entropy(ctx.logits, ctx.labels);
      if (teacher && opts.kd.weight > 0) {
        torch::Tensor target;
        {
          torch::NoGradGuard no_grad;
          target = teacher->forward(ctx.images.to(*teacher_device)).to(device);
        }
        loss = loss + opts.kd.weight * kd_loss(ctx.logits, target, opts.kd.temperature);
      }
      if (const auto extra = detail::extra_loss(hook, ctx); extra.defined()) {
        require(extra.numel() == 1, "train: extra_loss returned a tensor of shape ", extra.sizes(),
                "; expected a scalar");
        loss = loss + extra.reshape({});
      }
      const auto non_finite = [&](double value, const std::string& where) {
        fail("train: loss is ", value, " at epoch ", epoch, ", step ", step, " (0-based; global step ",
             state.global_step, ") of ", net.describe(), where, "; stopped before the update",
             checkpoints ? "; the last checkpoint '" + opts.checkpoint.string() + "' is intact" : "");
      };
      double value = 0;
      if (!parallel) {
        value = loss.item<double>();
        if (!std::isfinite(value)) non_finite(value, "");
        optimizer->zero_grad();
        loss.backward();
        clip_gradients();
        optimizer->step();
        state.partial.add(ctx.logits.detach(), ctx.labels, value, /*top5=*/false);
      } else {
        const double own = loss.item<double>();
        const int64_t samples = ctx.labels.size(0);
        const double share = static_cast<double>(samples) / static_cast<double>(loader.batch_samples(step));
        optimizer->zero_grad();
        (loss * share).backward();
        int64_t correct = 0;
        {
          torch::NoGradGuard no_grad;
          correct = ctx.logits.argmax(1).eq(ctx.labels).sum().item<int64_t>();
        }
        const auto totals = replicas->reduce(share * own, correct, samples, !std::isfinite(own));
        value = totals.loss;
        if (!totals.nonfinite_ranks.empty()) non_finite(NAN, " on rank(s) " + totals.nonfinite_ranks);
        clip_gradients();
        optimizer->step();
        state.partial.loss_sum += value * static_cast<double>(totals.samples);
        state.partial.correct1 += totals.correct;
        state.partial.samples += totals.samples;
      }
      ctx.loss = value;
      detail::after_step(hook, ctx);

      state.partial_lr = lr;
      state.partial_seconds = std::chrono::duration<double>(clock::now() - epoch_start).count();
      ++state.global_step;
      state.step = step + 1;
      const auto seen = static_cast<double>(state.partial.samples);
      meter.step(epoch, step, state.partial.loss_sum / seen,
                 static_cast<double>(state.partial.correct1) / seen,
                 seen / std::max(state.partial_seconds, 1e-9));

      if (opts.stop_after_steps && state.global_step >= *opts.stop_after_steps)
        return finish(run_end::interrupted);
      if (opts.checkpoint_every > 0 && state.global_step % opts.checkpoint_every == 0 &&
          state.step < steps) {
        gather_buffers();
        save();
      }
    }
    gather_buffers();
    if (parallel) distributed::check_replicas(group, net, "the end of epoch " + std::to_string(epoch + 1));

    epoch_record record;
    record.epoch = epoch;
    const auto seen = static_cast<double>(std::max<int64_t>(state.partial.samples, 1));
    record.train_loss = state.partial.loss_sum / seen;
    record.train_top1 = static_cast<double>(state.partial.correct1) / seen;
    record.lr = state.partial_lr;
    record.seconds = state.partial_seconds;
    record.images_per_second =
        static_cast<double>(state.partial.samples) / std::max(state.partial_seconds, 1e-9);
    if (opts.held_out && opts.eval_every > 0 && (epoch + 1) % opts.eval_every == 0)
      record.eval = evaluate(net, *opts.held_out, opts.eval_batch_size);
    epoch_context ectx{.epoch = epoch,
                       .epochs = opts.epochs,
                       .record = record,
                       .values = state.values,
                       .net = net};
    const auto action = detail::after_epoch(hook, ectx);
    record.values = state.values;
    state.rows.push_back(record);
    state.epoch = epoch + 1;
    state.step = 0;
    state.partial = {};
    state.partial_seconds = 0;
    state.stopped = action == epoch_action::stop;
    save();
    meter.epoch_end(detail::epoch_summary(record, opts.epochs));
    if (state.stopped) return finish(run_end::stopped);
  }
  return finish(run_end::completed);
}

template <class Hooks = hooks<>>
history fit(const Network& net, const data::image_dataset& train_data, const options& opts,
            Hooks&& hook = Hooks{}) {
  require(net != nullptr, "train: the network is null");
  return fit(*net, train_data, opts, std::forward<Hooks>(hook));
}

}  // namespace linearize::train
