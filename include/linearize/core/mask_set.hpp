#pragma once
// MaskSet: every ReluSlot of a module tree, in a stable order (depth-first, registration order),
// with names. It gives the counts a private-inference budget is about, a flat global index over
// all mask entries (what selection rules and coordinate descent address), and the binary mask of
// the whole network as one tensor, which can be saved, loaded and applied.
#include <linearize/core/relu_slot.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/checksum.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace linearize {

/// Counts of one slot or one stage.
struct relu_tally {
  std::string name;      ///< slot name (module path) or stage name
  std::string stage;
  int layer = -1;
  int64_t total = 0;     ///< ReLUs in the activation map
  int64_t active = 0;    ///< ReLUs still needed (gate != 0)
  /// Positions that evaluate a polynomial replacement (gate != 1; see
  /// ReluSlotImpl::polynomial_count). The other linearized positions are free (identity).
  int64_t polynomial = 0;
};

/// Where a flat mask index lands: which slot, and which entry of that slot's (flattened) mask.
struct entry_location {
  size_t slot = 0;
  int64_t entry = 0;
};

class MaskSet {
 public:
  /// Collects the slots below `root` (not `root` itself). Every slot must know its activation
  /// shape (given at construction or learnt by a forward pass).
  explicit MaskSet(const torch::nn::Module& root) {
    for (const auto& item : root.named_modules("", /*include_self=*/false)) {
      if (auto slot = std::dynamic_pointer_cast<ReluSlotImpl>(item.value())) {
        require(slot->materialized(), "MaskSet: slot '", item.key(),
                "' has not seen an input yet; give its shape or run one forward pass first");
        names_.push_back(item.key());
        slots_.emplace_back(slot);
      }
    }
    require(!slots_.empty(), "MaskSet: the module tree (", root.name(),
            ") contains no ReluSlot; expected a network whose ReLUs are linearize::ReluSlot");
    offsets_.push_back(0);
    for (const auto& s : slots_) offsets_.push_back(offsets_.back() + s->mask_entries());
  }
  template <class M>
  explicit MaskSet(const torch::nn::ModuleHolder<M>& root) : MaskSet(*root) {}
  template <class M>
  explicit MaskSet(const std::shared_ptr<M>& root) : MaskSet(*root) {}

  // ---- slots ------------------------------------------------------------------------------------
  [[nodiscard]] size_t size() const { return slots_.size(); }
  /// The i-th slot. A MaskSet is a view of the network: its slots stay mutable through it.
  [[nodiscard]] ReluSlotImpl& operator[](size_t i) const { return *slots_.at(i); }
  [[nodiscard]] const std::string& name(size_t i) const { return names_.at(i); }
  [[nodiscard]] const std::vector<std::shared_ptr<ReluSlotImpl>>& slots() const { return slots_; }
  [[nodiscard]] const std::vector<std::string>& names() const { return names_; }

  // ---- counts -----------------------------------------------------------------------------------
  [[nodiscard]] int64_t total_relus() const {
    int64_t n = 0;
    for (const auto& s : slots_) n += s->total_relus();
    return n;
  }
  [[nodiscard]] int64_t relu_count() const {
    int64_t n = 0;
    for (const auto& s : slots_) n += s->relu_count();
    return n;
  }
  /// Positions that evaluate a polynomial replacement, over all slots.
  [[nodiscard]] int64_t polynomial_count() const {
    int64_t n = 0;
    for (const auto& s : slots_) n += s->polynomial_count();
    return n;
  }
  /// One row per slot, in order.
  [[nodiscard]] std::vector<relu_tally> per_slot() const {
    std::vector<relu_tally> rows;
    for (size_t i = 0; i < slots_.size(); ++i)
      rows.push_back({names_[i], slots_[i]->options.stage, slots_[i]->options.layer,
                      slots_[i]->total_relus(), slots_[i]->relu_count(),
                      slots_[i]->polynomial_count()});
    return rows;
  }
  /// One row per stage, in order of first appearance (slots without a stage form stage "").
  [[nodiscard]] std::vector<relu_tally> per_stage() const {
    std::vector<relu_tally> rows;
    for (const auto& r : per_slot()) {
      auto it = std::find_if(rows.begin(), rows.end(), [&](auto& s) { return s.name == r.stage; });
      if (it == rows.end()) it = rows.insert(rows.end(), {r.stage, r.stage, -1, 0, 0, 0});
      it->total += r.total;
      it->active += r.active;
      it->polynomial += r.polynomial;
    }
    return rows;
  }

  // ---- the flat index over all mask entries --------------------------------------------------
  [[nodiscard]] int64_t entries() const { return offsets_.back(); }
  /// First flat index of slot i; slot i owns [offset(i), offset(i + 1)).
  [[nodiscard]] int64_t offset(size_t i) const { return offsets_.at(i); }
  [[nodiscard]] entry_location locate(int64_t flat) const {
    require(flat >= 0 && flat < entries(), "MaskSet: flat index ", flat, " out of range [0, ",
            entries(), ")");
    const auto it = std::upper_bound(offsets_.begin(), offsets_.end(), flat);
    const size_t slot = static_cast<size_t>(it - offsets_.begin()) - 1;
    return {slot, flat - offsets_[slot]};
  }
  /// ReLUs behind each flat entry (1 for element masks, H*W for channel masks, ...), int64 [E].
  [[nodiscard]] torch::Tensor relus_per_entry() const {
    std::vector<torch::Tensor> parts;
    for (const auto& s : slots_)
      parts.push_back(torch::full({s->mask_entries()}, s->relus_per_entry(), torch::kLong));
    return torch::cat(parts);
  }

  // ---- whole-network masks ---------------------------------------------------------------------
  /// The binary mask of the network, flat bool [entries()] on CPU: true = the ReLU stays.
  [[nodiscard]] torch::Tensor binary() const {
    std::vector<torch::Tensor> parts;
    for (const auto& s : slots_) parts.push_back(s->binary_mask().reshape({-1}).to(torch::kCPU));
    return torch::cat(parts);
  }
  /// The mask parameters, flat float [entries()] on CPU (a copy, detached).
  [[nodiscard]] torch::Tensor values() const {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    for (const auto& s : slots_)
      parts.push_back(s->mask().detach().reshape({-1}).to(torch::kCPU, torch::kFloat));
    return torch::cat(parts);
  }
  /// Hardens every slot to its part of a flat binary mask of entries() values.
  void harden(const torch::Tensor& flat) const {
    require(flat.dim() == 1 && flat.numel() == entries(), "MaskSet: binary mask of shape ",
            flat.sizes(), "; expected a flat mask of ", entries(), " entries");
    for (size_t i = 0; i < slots_.size(); ++i)
      slots_[i]->harden(flat.slice(0, offsets_[i], offsets_[i + 1]));
  }
  /// The mask parameters of every slot, e.g. for an optimizer's parameter group.
  [[nodiscard]] std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> ps;
    for (const auto& s : slots_) ps.push_back(s->mask());
    return ps;
  }
  void soften() const {
    for (const auto& s : slots_) s->soften();
  }
  void clear_gates() const {
    for (const auto& s : slots_) s->clear_gate();
  }

  // ---- mask files ------------------------------------------------------------------------------
  /// One line per slot: name, granularity, activation shape. Two networks accept each other's
  /// masks exactly when their architectures are equal.
  [[nodiscard]] std::string architecture() const {
    std::ostringstream out;
    for (size_t i = 0; i < slots_.size(); ++i) out << slot_line(i) << '\n';
    return out.str();
  }

  /// Saves the binary mask with the architecture it belongs to (written atomically).
  void save(const std::filesystem::path& path) const {
    const auto bits = pack(binary());
    write_atomically(path, [&](std::ostream& out) {
      out << magic << '\n' << "slots " << slots_.size() << '\n' << architecture();
      out << "data " << bits.size() << ' ' << std::hex << checksum(bits) << std::dec << '\n';
      out.write(bits.data(), static_cast<std::streamsize>(bits.size()));
    });
  }

  /// Loads a mask saved by save() and hardens every slot to it. Refuses, with the first
  /// difference named, a mask from another architecture; refuses a truncated or corrupt file.
  void load(const std::filesystem::path& path) const {
    const std::string file = read_file(path);
    std::istringstream in(file);
    std::string line;
    const auto bad = [&](auto&&... why) {
      fail("mask file '", path.string(), "' ", std::forward<decltype(why)>(why)...);
    };
    if (!std::getline(in, line) || line != magic) bad("is not a linearize mask file (no '", magic, "' header)");
    size_t count = 0;
    if (!std::getline(in, line) || std::sscanf(line.c_str(), "slots %zu", &count) != 1)
      bad("is corrupt: missing slot count");
    for (size_t i = 0; i < count; ++i) {
      if (!std::getline(in, line)) bad("is truncated in its slot list");
      if (i >= slots_.size())
        bad("is for another architecture: it has ", count, " slots, this network ", slots_.size());
      if (line != slot_line(i))
        bad("is for another architecture: slot ", i, " is '", line, "' there, '", slot_line(i),
            "' here");
    }
    if (count != slots_.size())
      bad("is for another architecture: it has ", count, " slots, this network ", slots_.size());
    size_t bytes = 0;
    unsigned long long sum = 0;
    if (!std::getline(in, line) || std::sscanf(line.c_str(), "data %zu %llx", &bytes, &sum) != 2)
      bad("is corrupt: missing data header");
    const auto start = static_cast<size_t>(in.tellg());
    if (bytes != (static_cast<size_t>(entries()) + 7) / 8 || file.size() != start + bytes)
      bad("is truncated or corrupt: ", file.size() - std::min(file.size(), start),
          " bytes of mask data, expected ", (entries() + 7) / 8);
    const std::string bits = file.substr(start, bytes);
    if (checksum(bits) != sum) bad("is corrupt: checksum mismatch");
    harden(unpack(bits, entries()));
  }

 private:
  static constexpr const char* magic = "linearize-mask 1";

  [[nodiscard]] std::string slot_line(size_t i) const {
    const auto& o = slots_[i]->options;
    std::string shape;
    for (size_t d = 0; d < o.shape.size(); ++d) shape += (d ? "x" : "") + std::to_string(o.shape[d]);
    return names_[i] + ' ' + std::string(to_string(o.grain)) + ' ' + shape;
  }

  static std::string pack(const torch::Tensor& flat_bool) {
    const auto b = flat_bool.to(torch::kBool).contiguous();
    const bool* p = b.data_ptr<bool>();
    std::string bits(static_cast<size_t>((b.numel() + 7) / 8), '\0');
    for (int64_t i = 0; i < b.numel(); ++i)
      if (p[i]) bits[static_cast<size_t>(i / 8)] |= static_cast<char>(1u << (i % 8));
    return bits;
  }
  static torch::Tensor unpack(const std::string& bits, int64_t n) {
    auto out = torch::empty({n}, torch::kBool);
    bool* p = out.data_ptr<bool>();
    for (int64_t i = 0; i < n; ++i)
      p[i] = (static_cast<unsigned char>(bits[static_cast<size_t>(i / 8)]) >> (i % 8)) & 1u;
    return out;
  }
  static unsigned long long checksum(const std::string& bytes) { return fnv1a(bytes); }

  std::vector<std::shared_ptr<ReluSlotImpl>> slots_;
  std::vector<std::string> names_;
  std::vector<int64_t> offsets_;
};

}  // namespace linearize
