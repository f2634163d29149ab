#pragma once
// Checkpoint and resume. A checkpoint holds everything a run's future depends on, so that a run
// resumed from it ends with exactly the weights an uninterrupted run with the same seed ends
// with: parameters, buffers and each slot's hard/soft state; the optimizer's state; the run's
// position (epoch, step: the LR schedule is a function of it and the batch loader's batches
// are a function of (seed, epoch, step)); the random generators' states; the history so far,
// the running totals of the unfinished epoch, and the hooks' named scalars.
//
// File layout: a text header line, a line with the payload's length and FNV-1a checksum, then
// the payload, a torch::serialize archive (the run state and identity in it are JSON text). The
// header catches a file that is not a checkpoint, the length a truncated one, the checksum a
// corrupt one; all are written atomically.
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/io/json.hpp>
#include <linearize/io/json_difference.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/checksum.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/history.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace linearize::train {

/// Where a run stands and what it has accumulated.
struct run_state {
  int64_t epoch = 0;        ///< the epoch in progress (0-based); == epochs when done
  int64_t step = 0;         ///< the next step within that epoch
  int64_t global_step = 0;  ///< optimizer steps taken so far
  bool stopped = false;     ///< an epoch hook stopped the run
  detail::tally partial{};  ///< running totals of the unfinished epoch
  double partial_seconds = 0;
  double partial_lr = 0;
  scalars values{};
  std::vector<epoch_record> rows{};
  /// Seconds the run has taken up to this checkpoint, over every process that worked on it
  /// (kept beside the JSON state, so checkpoints without it still read: 0).
  double elapsed_seconds = 0;
};

/// What must match for a resume to continue the same run.
struct run_identity {
  uint64_t seed = 0;
  int64_t batch_size = 0;
  int64_t steps_per_epoch = 0;
  bool drop_last = false;
  std::string optimizer{};
  /// The rest that sets a run's course, as a JSON object: the optimizer's settings, the
  /// learning-rate schedule, augmentation, distillation (train::fit fills it). Stored beside the
  /// identity, so that checkpoints written before it existed still resume.
  std::string settings{};
};

namespace detail {

// Format 2: run state and identity as JSON (format 1 wrote them as words of hexadecimal floats).
inline constexpr const char* checkpoint_magic = "linearize-checkpoint 2";
inline constexpr const char* checkpoint_magic_v1 = "linearize-checkpoint 1";

using linearize::fnv1a;  // support/checksum.hpp

/// The slots of a module tree, in named_modules order.
inline std::vector<std::pair<std::string, std::shared_ptr<ReluSlotImpl>>> slots_of(
    const torch::nn::Module& net) {
  std::vector<std::pair<std::string, std::shared_ptr<ReluSlotImpl>>> out;
  for (const auto& m : net.named_modules("", false))
    if (auto s = std::dynamic_pointer_cast<ReluSlotImpl>(m.value())) out.emplace_back(m.key(), s);
  return out;
}

/// One line per parameter, buffer and slot: names and shapes. Two networks can exchange
/// checkpoints exactly when these agree.
inline std::vector<std::string> architecture_lines(const torch::nn::Module& net) {
  std::vector<std::string> lines;
  const auto shape = [](const torch::Tensor& t) {
    std::ostringstream out;
    out << t.sizes();
    return out.str();
  };
  for (const auto& p : net.named_parameters(true))
    lines.push_back("parameter " + p.key() + ' ' + shape(p.value()));
  for (const auto& b : net.named_buffers(true))
    lines.push_back("buffer " + b.key() + ' ' + shape(b.value()));
  for (const auto& [name, slot] : slots_of(net)) lines.push_back("slot " + name);
  return lines;
}

inline std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + '\n';
  return out;
}

}  // namespace detail

// ---- the run state and identity as JSON (io/json.hpp): each list drives writing and reading --
template <class M, class F>
  requires std::same_as<std::remove_const_t<M>, metrics>
void json_fields(M& m, F&& f) {
  f("top1", m.top1);
  f("top5", m.top5);
  f("loss", m.loss);
  f("samples", m.samples);
}

template <class R, class F>
  requires std::same_as<std::remove_const_t<R>, epoch_record>
void json_fields(R& r, F&& f) {
  f("epoch", r.epoch);
  f("train_loss", r.train_loss);
  f("train_top1", r.train_top1);
  f("lr", r.lr);
  f("eval", r.eval);
  f("images_per_second", r.images_per_second);
  f("seconds", r.seconds);
  f("values", r.values);
}

template <class S, class F>
  requires std::same_as<std::remove_const_t<S>, run_state>
void json_fields(S& s, F&& f) {
  f("epoch", s.epoch);
  f("step", s.step);
  f("global_step", s.global_step);
  f("stopped", s.stopped);
  f("partial_loss_sum", s.partial.loss_sum);
  f("partial_correct1", s.partial.correct1);
  f("partial_correct5", s.partial.correct5);
  f("partial_samples", s.partial.samples);
  f("partial_seconds", s.partial_seconds);
  f("partial_lr", s.partial_lr);
  f("values", s.values);
  f("rows", s.rows);
}

template <class I, class F>
  requires std::same_as<std::remove_const_t<I>, run_identity>
void json_fields(I& id, F&& f) {
  f("seed", id.seed);
  f("batch_size", id.batch_size);
  f("steps_per_epoch", id.steps_per_epoch);
  f("drop_last", id.drop_last);
  f("optimizer", id.optimizer);
}

namespace detail {

/// "seed 0, batch_size 8, ...": what a message shows of a run's identity.
inline std::string identity_text(const run_identity& id) {
  return io::describe_members(io::to_json_value(id));
}

/// States of the default generators: the CPU one, and each CUDA device's when there are any.
inline std::vector<torch::Tensor> generator_states() {
  std::vector<torch::Tensor> states;
  const auto grab = [&](at::Generator gen) {  // a handle: copies share the generator
    std::lock_guard<std::mutex> lock(gen.mutex());
    states.push_back(gen.get_state());
  };
  grab(at::globalContext().defaultGenerator(torch::kCPU));
  if (torch::cuda::is_available())
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i)
      grab(at::globalContext().defaultGenerator(
          torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(i))));
  return states;
}

}  // namespace detail

/// Writes a checkpoint of `net`, `optimizer` and the run to `path`, atomically: a crash during
/// the write leaves the previous checkpoint as it was.
inline void save_checkpoint(const std::filesystem::path& path, const NetworkImpl& net,
                            const torch::optim::Optimizer& optimizer, const run_identity& identity,
                            const run_state& state) {
  torch::NoGradGuard no_grad;
  torch::serialize::OutputArchive archive;
  archive.write("architecture", c10::IValue(detail::join_lines(detail::architecture_lines(net))));
  archive.write("description", c10::IValue(net.describe()));
  archive.write("identity", c10::IValue(io::to_json_value(identity).dump()));
  archive.write("settings", c10::IValue(identity.settings));
  archive.write("state", c10::IValue(io::to_json_value(state).dump()));
  archive.write("elapsed_seconds", c10::IValue(state.elapsed_seconds));

  const auto params = net.parameters(true);
  std::vector<int64_t> requires_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    archive.write("parameter/" + std::to_string(i), params[i].detach());
    requires_grad.push_back(params[i].requires_grad());
  }
  archive.write("requires_grad", torch::tensor(requires_grad, torch::kLong));
  const auto buffers = net.buffers(true);
  for (size_t i = 0; i < buffers.size(); ++i)
    archive.write("buffer/" + std::to_string(i), buffers[i], /*is_buffer=*/true);
  std::vector<int64_t> hard;  // 1 hard, 0 soft, -1 shape not known yet
  std::vector<int64_t> gated;
  const auto slots = detail::slots_of(net);
  for (const auto& [name, slot] : slots) {
    hard.push_back(!slot->materialized() ? -1 : slot->is_hard() ? 1 : 0);
    gated.push_back(slot->materialized() && slot->has_gate());
  }
  archive.write("slot_hard", torch::tensor(hard, torch::kLong));
  // The gate a relaxation set is state too: a hysteretic relaxation's next gate depends on it.
  archive.write("slot_gated", torch::tensor(gated, torch::kLong));
  for (size_t i = 0; i < slots.size(); ++i)
    if (gated[i]) archive.write("slot_gate/" + std::to_string(i), slots[i].second->gate().detach());

  torch::serialize::OutputArchive optim(archive.compilation_unit());
  optimizer.save(optim);
  archive.write("optimizer", optim);
  int64_t optimizer_params = 0;
  for (const auto& g : optimizer.param_groups())
    optimizer_params += static_cast<int64_t>(g.params().size());
  archive.write("optimizer_params", torch::tensor(optimizer_params));

  const auto generators = detail::generator_states();
  archive.write("generators", torch::tensor(static_cast<int64_t>(generators.size())));
  for (size_t i = 0; i < generators.size(); ++i)
    archive.write("generator/" + std::to_string(i), generators[i]);

  std::ostringstream payload_stream;
  archive.save_to(payload_stream);
  const std::string payload = std::move(payload_stream).str();
  write_atomically(path, [&](std::ostream& out) {
    out << detail::checkpoint_magic << '\n'
        << "payload " << payload.size() << ' ' << std::hex << detail::fnv1a(payload) << std::dec
        << '\n';
    out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  });
}

/// A checkpoint read from disk and checked (header, length, checksum, archive). Restore the
/// network first, then build the optimizer over its trainable parameters and restore that:
/// which parameters are trainable depends on the slots' hard/soft state the network restores.
class checkpoint {
 public:
  /// Reads `path`. Tensors are placed on `device` when given (resume on another device),
  /// else where they were saved.
  [[nodiscard]] static checkpoint read(const std::filesystem::path& path,
                                       std::optional<torch::Device> device = std::nullopt) {
    checkpoint c;
    c.path_ = path.string();
    require(std::filesystem::exists(path), "checkpoint '", c.path_, "' does not exist");
    const std::string file = read_file(path);
    const auto first = file.find('\n');
    if (first != std::string::npos && file.compare(0, first, detail::checkpoint_magic_v1) == 0)
      fail("checkpoint '", c.path_, "' has format 1, written by an earlier linearize; this one "
           "reads format 2 (", detail::checkpoint_magic, "). Delete it to start the run afresh");
    if (first == std::string::npos || file.compare(0, first, detail::checkpoint_magic) != 0)
      fail("'", c.path_, "' is not a linearize checkpoint (no '", detail::checkpoint_magic,
           "' header)");
    const auto second = file.find('\n', first + 1);
    size_t bytes = 0;
    unsigned long long sum = 0;
    if (second == std::string::npos ||
        std::sscanf(file.substr(first + 1, second - first - 1).c_str(), "payload %zu %llx", &bytes,
                    &sum) != 2)
      fail("checkpoint '", c.path_, "' is corrupt: missing payload header");
    const size_t start = second + 1;
    if (file.size() != start + bytes)
      fail("checkpoint '", c.path_, "' is truncated or corrupt: ", file.size() - start,
           " bytes of payload, expected ", bytes);
    const std::string payload = file.substr(start);
    if (detail::fnv1a(payload) != sum)
      fail("checkpoint '", c.path_, "' is corrupt: checksum mismatch");
    try {
      c10::optional<torch::Device> where;
      if (device) where = *device;
      c.archive_.load_from(payload.data(), payload.size(), where);
      c.architecture_ = c.text("architecture");
      c.description_ = c.text("description");
      // Errors name e.g. "'runs/x.ckpt (run state)'".
      const auto part = [&](const char* what) { return c.path_ + " (" + what + ")"; };
      io::read_json_value(io::parse_json(c.text("identity"), part("identity")), part("identity"),
                          c.identity_);
      io::read_json_value(io::parse_json(c.text("state"), part("run state")), part("run state"),
                          c.state_);
      c10::IValue settings;
      if (c.archive_.try_read("settings", settings)) {
        require(settings.isString(), "checkpoint '", c.path_, "' is corrupt: entry 'settings' is not text");
        c.identity_.settings = settings.toStringRef();
        if (!c.identity_.settings.empty())
          (void)io::parse_json(c.identity_.settings, part("settings"));  // corrupt: say so now
      }
      c10::IValue elapsed;
      if (c.archive_.try_read("elapsed_seconds", elapsed)) {
        require(elapsed.isDouble() && elapsed.toDouble() >= 0, "checkpoint '", c.path_,
                "' is corrupt: entry 'elapsed_seconds' is not a number of seconds >= 0");
        c.state_.elapsed_seconds = elapsed.toDouble();
      }
    } catch (const linearize::error&) {
      throw;
    } catch (const std::exception& e) {
      fail("checkpoint '", c.path_, "' is corrupt: ", first_line(e.what()));
    }
    return c;
  }

  [[nodiscard]] const run_state& state() const { return state_; }
  /// The describe() of the network that wrote it.
  [[nodiscard]] const std::string& description() const { return description_; }

  /// Refuses to continue a run whose seed, batching, optimizer or policy settings differ: it
  /// would not be the same run. The message names each setting that differs, with both values.
  void check_identity(const run_identity& expected) const {
    const io::difference_sides sides{.there = "in the checkpoint", .here = "in this run"};
    auto found = io::json_differences(io::to_json_value(identity_), io::to_json_value(expected), sides);
    // Settings: only where the checkpoint recorded them (older ones did not).
    if (!identity_.settings.empty() && identity_.settings != expected.settings) {
      const auto more = io::json_differences(
          io::parse_json(identity_.settings, path_ + " (settings)"),
          expected.settings.empty() ? io::json::object() : io::parse_json(expected.settings, "this run's settings"),
          sides);
      found.insert(found.end(), more.begin(), more.end());
    }
    std::string differ;  // "seed: 1 in the checkpoint, 2 in this run; optimizer.lr: ..."
    for (const auto& d : found) differ += (differ.empty() ? "" : "; ") + d;
    require(differ.empty(), "checkpoint '", path_, "' was written by another run (", differ,
            "). Resuming would not reproduce it: use another checkpoint path or start afresh");
  }

  /// Copies parameters, buffers, requires-grad flags and slot states into `net`. A network of
  /// another architecture is refused, with the first difference named.
  void restore_network(NetworkImpl& net) const {
    const auto here = detail::architecture_lines(net);
    std::vector<std::string> there;
    {
      std::istringstream in(architecture_);
      for (std::string line; std::getline(in, line);) there.push_back(line);
    }
    for (size_t i = 0; i < std::max(here.size(), there.size()); ++i) {
      const std::string a = i < there.size() ? there[i] : "(nothing)";
      const std::string b = i < here.size() ? here[i] : "(nothing)";
      require(a == b, "checkpoint '", path_, "' is for another architecture (", description_,
              "): it has '", a, "' where this network (", net.describe(), ") has '", b, "'");
    }
    torch::NoGradGuard no_grad;
    try {
      auto params = net.parameters(true);
      torch::Tensor flags;
      archive_.read("requires_grad", flags);
      for (size_t i = 0; i < params.size(); ++i) {
        torch::Tensor t;
        archive_.read("parameter/" + std::to_string(i), t);
        params[i].copy_(t);
        params[i].set_requires_grad(flags[static_cast<int64_t>(i)].item<int64_t>() != 0);
      }
      auto buffers = net.buffers(true);
      for (size_t i = 0; i < buffers.size(); ++i) {
        torch::Tensor t;
        archive_.read("buffer/" + std::to_string(i), t, /*is_buffer=*/true);
        buffers[i].copy_(t);
      }
      torch::Tensor hard;
      archive_.read("slot_hard", hard);
      hard = hard.to(torch::kCPU);
      const auto slots = detail::slots_of(net);
      for (size_t i = 0; i < slots.size(); ++i) {
        const auto state = hard[static_cast<int64_t>(i)].item<int64_t>();
        auto& slot = *slots[i].second;
        if (state == 1)
          slot.harden(slot.mask().detach().clone());
        else if (state == 0)
          slot.soften();
      }
      // Gates (checkpoints written before they were kept have none).
      torch::Tensor gated;
      const bool has_gates = archive_.try_read("slot_gated", gated);
      if (has_gates) gated = gated.to(torch::kCPU);
      require(!has_gates || gated.numel() == static_cast<int64_t>(slots.size()), "checkpoint '", path_,
              "' is corrupt: ", has_gates ? gated.numel() : 0, " slot gate flags for ", slots.size(), " slots");
      for (size_t i = 0; i < slots.size(); ++i) {
        auto& slot = *slots[i].second;
        if (has_gates && gated[static_cast<int64_t>(i)].item<int64_t>() != 0) {
          torch::Tensor gate;
          archive_.read("slot_gate/" + std::to_string(i), gate);
          slot.set_gate(gate.to(slot.mask().device(), slot.mask().scalar_type()));
        } else if (slot.materialized()) {
          slot.clear_gate();
        }
      }
    } catch (const linearize::error&) {
      throw;
    } catch (const std::exception& e) {
      fail("checkpoint '", path_, "' is corrupt: ", first_line(e.what()));
    }
  }

  /// Loads the optimizer state into `optimizer`, which must be of kind `name` ("sgd", "adam")
  /// and hold the same trainable parameters, in order, as the one that was saved.
  void restore_optimizer(torch::optim::Optimizer& optimizer, const std::string& name) const {
    require(identity_.optimizer == name, "checkpoint '", path_,
            "' holds the state of another optimizer (", detail::identity_text(identity_),
            "); expected optimizer ", name);
    int64_t count = 0;
    for (const auto& g : optimizer.param_groups()) count += static_cast<int64_t>(g.params().size());
    try {
      torch::Tensor saved;
      archive_.read("optimizer_params", saved);
      require(saved.item<int64_t>() == count, "checkpoint '", path_, "' holds optimizer state for ",
              saved.item<int64_t>(), " trainable parameters; this optimizer has ", count);
      torch::serialize::InputArchive optim;
      archive_.read("optimizer", optim);
      optimizer.load(optim);
    } catch (const linearize::error&) {
      throw;
    } catch (const std::exception& e) {
      fail("checkpoint '", path_, "' is corrupt: ", first_line(e.what()));
    }
  }

  /// Sets the default random generators (CPU, and CUDA devices present in both) to their saved
  /// states.
  void restore_rng() const {
    try {
      torch::Tensor count;
      archive_.read("generators", count);
      const auto saved = count.item<int64_t>();
      const auto current = static_cast<int64_t>(detail::generator_states().size());
      for (int64_t i = 0; i < std::min(saved, current); ++i) {
        torch::Tensor state;
        archive_.read("generator/" + std::to_string(i), state);
        auto gen = i == 0 ? at::globalContext().defaultGenerator(torch::kCPU)
                          : at::globalContext().defaultGenerator(torch::Device(
                                torch::kCUDA, static_cast<c10::DeviceIndex>(i - 1)));
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(state.to(torch::kCPU));
      }
    } catch (const linearize::error&) {
      throw;
    } catch (const std::exception& e) {
      fail("checkpoint '", path_, "' is corrupt: ", first_line(e.what()));
    }
  }

 private:
  checkpoint() = default;

  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  std::string text(const std::string& key) {
    c10::IValue v;
    archive_.read(key, v);
    require(v.isString(), "checkpoint '", path_, "' is corrupt: entry '", key, "' is not text");
    return v.toStringRef();
  }

  std::string path_;
  mutable torch::serialize::InputArchive archive_;
  std::string architecture_, description_;
  run_identity identity_;
  run_state state_;
};

/// Restores only the network of the checkpoint at `path` (e.g. to inspect or evaluate it).
inline void load_network(const std::filesystem::path& path, NetworkImpl& net) {
  checkpoint::read(path, device_of(net)).restore_network(net);
}

}  // namespace linearize::train
