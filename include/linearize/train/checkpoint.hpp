#pragma once
// Checkpoint and resume. A checkpoint holds everything a run's future depends on, so that a run
// resumed from it ends with exactly the weights an uninterrupted run with the same seed ends
// with: parameters, buffers and each slot's hard/soft state; the optimizer's state; the run's
// position (epoch, step: the LR schedule is a function of it and the batch loader's batches
// are a function of (seed, epoch, step)); the random generators' states; the history so far,
// the running totals of the unfinished epoch, and the hooks' named scalars.
//
// File layout: a text header line, a line with the payload's length and FNV-1a checksum, then
// the payload, a torch::serialize archive. The header catches a file that is not a checkpoint,
// the length a truncated one, the checksum a corrupt one; all are written atomically.
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/checksum.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/history.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
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
};

/// What must match for a resume to continue the same run.
struct run_identity {
  uint64_t seed = 0;
  int64_t batch_size = 0;
  int64_t steps_per_epoch = 0;
  bool drop_last = false;
  std::string optimizer{};
};

namespace detail {

inline constexpr const char* checkpoint_magic = "linearize-checkpoint 1";

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

// ---- the run state as text (hexadecimal floats: exact round trip) ---------------------------
inline std::string hex(double v) {
  std::ostringstream out;
  out << std::hexfloat << v;
  return out.str();
}

inline void write_metrics(std::ostream& out, const std::optional<metrics>& m) {
  if (!m) {
    out << " noeval";
    return;
  }
  out << " eval " << hex(m->top1) << ' ' << (m->top5 ? hex(*m->top5) : std::string("none")) << ' '
      << hex(m->loss) << ' ' << m->samples;
}

inline void write_scalars(std::ostream& out, const scalars& values) {
  out << ' ' << values.size();
  for (const auto& [name, v] : values) {
    require(!name.empty() && std::none_of(name.begin(), name.end(),
                                          [](unsigned char c) { return std::isspace(c); }),
            "checkpoint: named scalar '", name, "' must be a non-empty name without whitespace");
    out << ' ' << name << ' ' << hex(v);
  }
}

inline std::string state_text(const run_state& s) {
  std::ostringstream out;
  out << "position " << s.epoch << ' ' << s.step << ' ' << s.global_step << ' ' << s.stopped << '\n';
  out << "partial " << hex(s.partial.loss_sum) << ' ' << s.partial.correct1 << ' '
      << s.partial.correct5 << ' ' << s.partial.samples << ' ' << hex(s.partial_seconds) << ' '
      << hex(s.partial_lr) << '\n';
  out << "scalars";
  write_scalars(out, s.values);
  out << '\n' << "rows " << s.rows.size() << '\n';
  for (const auto& r : s.rows) {
    out << "row " << r.epoch << ' ' << hex(r.train_loss) << ' ' << hex(r.train_top1) << ' '
        << hex(r.lr) << ' ' << hex(r.images_per_second) << ' ' << hex(r.seconds);
    write_metrics(out, r.eval);
    write_scalars(out, r.values);
    out << '\n';
  }
  return out.str();
}

/// Reads the words of state_text back; any deviation is a corrupt checkpoint.
class state_reader {
 public:
  state_reader(const std::string& text, std::string where) : in_(text), where_(std::move(where)) {}

  void expect(const std::string& word) {
    const auto w = next();
    if (w != word) bad("expected '", word, "', found '", w, "'");
  }
  std::string next() {
    std::string w;
    if (!(in_ >> w)) bad("ends early");
    return w;
  }
  double real() { return to_real(next()); }
  double to_real(const std::string& w) {
    char* end = nullptr;
    const double v = std::strtod(w.c_str(), &end);
    if (end != w.c_str() + w.size() || w.empty()) bad("'", w, "' is not a number");
    return v;
  }
  int64_t integer() {
    const auto w = next();
    char* end = nullptr;
    const long long v = std::strtoll(w.c_str(), &end, 10);
    if (end != w.c_str() + w.size() || w.empty()) bad("'", w, "' is not an integer");
    return static_cast<int64_t>(v);
  }
  scalars named() {
    scalars out;
    const int64_t n = integer();
    for (int64_t i = 0; i < n; ++i) {
      auto name = next();
      out[name] = real();
    }
    return out;
  }
  std::optional<metrics> eval() {
    const auto w = next();
    if (w == "noeval") return std::nullopt;
    if (w != "eval") bad("expected 'eval' or 'noeval', found '", w, "'");
    metrics m;
    m.top1 = real();
    const auto top5 = next();
    if (top5 != "none") m.top5 = to_real(top5);
    m.loss = real();
    m.samples = integer();
    return m;
  }
  template <class... Why>
  [[noreturn]] void bad(Why&&... why) {
    fail("checkpoint '", where_, "' is corrupt: its run state ", std::forward<Why>(why)...);
  }

 private:
  std::istringstream in_;
  std::string where_;
};

inline run_state parse_state(const std::string& text, const std::string& where) {
  state_reader r(text, where);
  run_state s;
  r.expect("position");
  s.epoch = r.integer();
  s.step = r.integer();
  s.global_step = r.integer();
  s.stopped = r.integer() != 0;
  r.expect("partial");
  s.partial.loss_sum = r.real();
  s.partial.correct1 = r.integer();
  s.partial.correct5 = r.integer();
  s.partial.samples = r.integer();
  s.partial_seconds = r.real();
  s.partial_lr = r.real();
  r.expect("scalars");
  s.values = r.named();
  r.expect("rows");
  const int64_t rows = r.integer();
  for (int64_t i = 0; i < rows; ++i) {
    r.expect("row");
    epoch_record e;
    e.epoch = r.integer();
    e.train_loss = r.real();
    e.train_top1 = r.real();
    e.lr = r.real();
    e.images_per_second = r.real();
    e.seconds = r.real();
    e.eval = r.eval();
    e.values = r.named();
    s.rows.push_back(std::move(e));
  }
  return s;
}

inline std::string identity_text(const run_identity& id) {
  std::ostringstream out;
  out << "seed " << id.seed << " batch_size " << id.batch_size << " steps_per_epoch "
      << id.steps_per_epoch << " drop_last " << id.drop_last << " optimizer " << id.optimizer;
  return out.str();
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
  archive.write("identity", c10::IValue(detail::identity_text(identity)));
  archive.write("state", c10::IValue(detail::state_text(state)));

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
  for (const auto& [name, slot] : detail::slots_of(net))
    hard.push_back(!slot->materialized() ? -1 : slot->is_hard() ? 1 : 0);
  archive.write("slot_hard", torch::tensor(hard, torch::kLong));

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
      c.identity_text_ = c.text("identity");
      c.state_ = detail::parse_state(c.text("state"), c.path_);
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

  /// Refuses to continue a run whose seed, batching or optimizer differ: it would not be the
  /// same run.
  void check_identity(const run_identity& expected) const {
    const auto here = detail::identity_text(expected);
    require(identity_text_ == here, "checkpoint '", path_, "' was written by another run (",
            identity_text_, "); this run has (", here,
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
    } catch (const linearize::error&) {
      throw;
    } catch (const std::exception& e) {
      fail("checkpoint '", path_, "' is corrupt: ", first_line(e.what()));
    }
  }

  /// Loads the optimizer state into `optimizer`, which must be of kind `name` ("sgd", "adam")
  /// and hold the same trainable parameters, in order, as the one that was saved.
  void restore_optimizer(torch::optim::Optimizer& optimizer, const std::string& name) const {
    require(identity_text_.find(" optimizer " + name) != std::string::npos, "checkpoint '", path_,
            "' holds the state of another optimizer (", identity_text_, "); expected ", name);
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
  std::string architecture_, description_, identity_text_;
  run_state state_;
};

/// Restores only the network of the checkpoint at `path` (e.g. to inspect or evaluate it).
inline void load_network(const std::filesystem::path& path, NetworkImpl& net) {
  checkpoint::read(path, device_of(net)).restore_network(net);
}

}  // namespace linearize::train
