#pragma once
// Everything a coordinate-descent search's future depends on, saved after every iteration so a
// killed search resumes to the same mask: the network (weights, BatchNorm statistics, binary
// masks), the position (iterations done, whether the last one's finetune is still to run), the
// reference predictions the drops are measured against, the counters, and one row per
// iteration. Random draws are pure functions of (seed, iteration, try), so the position is the
// generator state. The identity (settings, budget, starting count) must match for a resume.
//
// One file, a {name: tensor} pickle (io/torch_export.hpp), written atomically: a crash while
// writing leaves the previous checkpoint intact.
#include <linearize/core/network.hpp>
#include <linearize/io/torch_export.hpp>
#include <linearize/select/coordinate_report.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace linearize::select {

/// One iteration of the search.
struct iteration_row {
  int64_t iteration = 0;      ///< 0-based
  int64_t relu_count = 0;     ///< after the iteration's block
  int64_t tries = 0;          ///< candidates scored
  bool accepted = false;      ///< a candidate passed (else the least drop was taken)
  double drop = 0;            ///< the chosen block's drop against the reference, as a fraction
  double accuracy = 0;        ///< scoring-set accuracy after the block (reference - drop)
  double seconds = 0;
};

struct coordinate_state {
  std::string identity;             ///< the settings this search runs with
  int64_t iteration = 0;            ///< iterations finished
  bool finetune_pending = false;    ///< rows.back()'s block is applied, its finetune not done
  bool done = false;
  torch::Tensor reference_correct;  ///< bool [N]: the reference's per-sample correctness
  coordinate_report report;
  std::vector<iteration_row> rows;
};

namespace detail {
inline constexpr int64_t coordinate_state_format = 1;

inline torch::Tensor text_tensor(const std::string& text) {
  auto t = torch::empty({static_cast<int64_t>(text.size())}, torch::kByte);
  std::copy(text.begin(), text.end(), t.data_ptr<uint8_t>());
  return t;
}
inline std::string tensor_text(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kByte).contiguous();
  return {reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel())};
}
}  // namespace detail

/// Writes the state and `net` to `path`, atomically.
inline void save_coordinate_state(const std::filesystem::path& path, const NetworkImpl& net,
                                  const coordinate_state& state) {
  c10::Dict<std::string, at::Tensor> out;
  for (const auto& item : io::state_dict(net)) out.insert("net/" + item.key(), item.value().clone());
  out.insert("bcd/format", torch::tensor(detail::coordinate_state_format, torch::kLong));
  out.insert("bcd/identity", detail::text_tensor(state.identity));
  out.insert("bcd/position", torch::tensor({state.iteration, static_cast<int64_t>(state.finetune_pending),
                                            static_cast<int64_t>(state.done)}, torch::kLong));
  out.insert("bcd/reference_correct", state.reference_correct.to(torch::kCPU, torch::kBool));
  coordinate_report::fields([&](const char* name, auto member) {
    out.insert(std::string("bcd/report/") + name,
               torch::tensor(static_cast<double>(state.report.*member), torch::kDouble));
  });
  std::vector<double> rows;
  for (const auto& r : state.rows)
    rows.insert(rows.end(), {static_cast<double>(r.iteration), static_cast<double>(r.relu_count),
                             static_cast<double>(r.tries), r.accepted ? 1.0 : 0.0, r.drop,
                             r.accuracy, r.seconds});
  out.insert("bcd/rows", torch::tensor(rows, torch::kDouble).reshape({static_cast<int64_t>(state.rows.size()), 7}));
  io::write_tensors(path, out);
}

/// Reads a state saved by save_coordinate_state, checks that it belongs to a search with
/// `identity`, and restores `net` from it. A file of another search or architecture, or a
/// corrupt one, is a linearize::error that says which.
[[nodiscard]] inline coordinate_state load_coordinate_state(const std::filesystem::path& path,
                                                            NetworkImpl& net,
                                                            const std::string& identity) {
  const auto file = io::read_tensors(path);
  const auto get = [&](const std::string& name) {
    require(file.contains(name), "coordinate-descent checkpoint '", path.string(), "' lacks '",
            name, "'; the file is not one this version wrote, or is corrupt");
    return file.at(name);
  };
  require(get("bcd/format").item<int64_t>() == detail::coordinate_state_format,
          "coordinate-descent checkpoint '", path.string(), "' has format ",
          get("bcd/format").item<int64_t>(), "; expected ", detail::coordinate_state_format);
  coordinate_state s;
  s.identity = detail::tensor_text(get("bcd/identity"));
  require(s.identity == identity, "coordinate-descent checkpoint '", path.string(),
          "' was written by another search (", s.identity, "); this one is (", identity,
          "). Resuming would not reproduce it: use another work directory or start afresh");

  // The network: every parameter and buffer by name, shapes equal, nothing missing or extra.
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : net.named_parameters(true)) targets.emplace(p.key(), p.value());
  for (const auto& b : net.named_buffers(true)) targets.emplace(b.key(), b.value());
  int64_t stored = 0;
  for (const auto& item : file) stored += item.key().rfind("net/", 0) == 0;
  require(stored == static_cast<int64_t>(targets.size()), "coordinate-descent checkpoint '",
          path.string(), "' holds ", stored, " tensors of the network; ", net.describe(), " has ",
          targets.size());
  for (const auto& [name, target] : targets) {
    const auto source = get("net/" + name);
    require(source.sizes() == target.sizes(), "coordinate-descent checkpoint '", path.string(),
            "': '", name, "' has shape ", source.sizes(), " there, ", target.sizes(), " in ",
            net.describe());
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, target] : targets) target.copy_(file.at("net/" + name));
  }

  const auto position = get("bcd/position");
  require(position.numel() == 3, "coordinate-descent checkpoint '", path.string(),
          "' is corrupt: position has ", position.numel(), " values, expected 3");
  s.iteration = position[0].item<int64_t>();
  s.finetune_pending = position[1].item<int64_t>() != 0;
  s.done = position[2].item<int64_t>() != 0;
  s.reference_correct = get("bcd/reference_correct").to(torch::kBool);
  coordinate_report::fields([&](const char* name, auto member) {
    using T = std::remove_reference_t<decltype(s.report.*member)>;
    s.report.*member = static_cast<T>(get(std::string("bcd/report/") + name).template item<double>());
  });
  const auto rows = get("bcd/rows").to(torch::kDouble).contiguous();
  require(rows.dim() == 2 && rows.size(1) == 7, "coordinate-descent checkpoint '", path.string(),
          "' is corrupt: rows of shape ", rows.sizes());
  const double* r = rows.data_ptr<double>();
  for (int64_t i = 0; i < rows.size(0); ++i, r += 7)
    s.rows.push_back({static_cast<int64_t>(r[0]), static_cast<int64_t>(r[1]),
                      static_cast<int64_t>(r[2]), r[3] != 0, r[4], r[5], r[6]});
  return s;
}

}  // namespace linearize::select
