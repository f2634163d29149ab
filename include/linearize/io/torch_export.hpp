#pragma once
// Weights and masks to and from Python. A file here is a pickled {name: tensor} dict in the
// zip format that Python's torch.save writes and torch.load reads:
//   C++:    linearize::io::export_state(*net, "resnet.pt");
//   Python: sd = torch.load("resnet.pt"); model.load_state_dict(sd, strict=False)
//   Python: torch.save(dict(model.state_dict()), "back.pt")   # or any {str: Tensor} dict
//   C++:    linearize::io::import_state(*net, "back.pt");
// Names are the module paths (conv1.weight, layer1.0.bn1.running_mean, layer1.0.relu1.mask),
// which the models of models/ choose to match the usual PyTorch code. Masks are parameters,
// so they travel with the weights. Python's torch.save writes a zip archive, which
// torch::pickle_load reads; but LibTorch 1.13 cannot read a top-level OrderedDict (what
// state_dict() returns), so Python must save dict(model.state_dict()); read_tensors says so.
#include <linearize/core/relu_slot.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace linearize::io {

/// Every parameter and buffer of `module` by its dotted name, in registration order, as detached
/// CPU tensors (views of the module's own tensors when they already live on the CPU).
[[nodiscard]] inline c10::Dict<std::string, at::Tensor> state_dict(const torch::nn::Module& module) {
  c10::Dict<std::string, at::Tensor> out;
  for (const auto& p : module.named_parameters(true)) out.insert(p.key(), p.value().detach().cpu());
  for (const auto& b : module.named_buffers(true)) out.insert(b.key(), b.value().detach().cpu());
  return out;
}

/// Writes `tensors` so that Python's torch.load (and read_tensors) reads it; atomically, so an
/// interrupted write leaves any previous file intact.
inline void write_tensors(const std::filesystem::path& path,
                          const c10::Dict<std::string, at::Tensor>& tensors) {
  c10::Dict<std::string, at::Tensor> contiguous;
  for (const auto& item : tensors) contiguous.insert(item.key(), item.value().contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(contiguous));
  write_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

/// Reads a {name: tensor} dict written by write_tensors or by Python's torch.save.
[[nodiscard]] inline c10::Dict<std::string, at::Tensor> read_tensors(const std::filesystem::path& path) {
  const std::string data = read_file(path);
  c10::IValue value;
  try {
    value = torch::pickle_load(std::vector<char>(data.begin(), data.end()));
  } catch (const c10::Error& e) {
    // LibTorch 1.13's unpickler turns collections.OrderedDict into None (it only expects one as
    // a tensor's empty hook list), so a state_dict() saved as is cannot be read. Its pickle
    // starts with that class (protocol 2, torch.save's default); a plain dict's does not.
    const std::string ordered_dict_pickle = std::string("\x80\x02") + "ccollections\nOrderedDict\n";
    const bool ordered = data.find(ordered_dict_pickle) != std::string::npos;
    require(!ordered, "'", path.string(), "' holds a Python OrderedDict (a state_dict() saved as "
            "is), which LibTorch's unpickler cannot read; save a plain dict in Python: "
            "torch.save(dict(model.state_dict()), path)");
    fail("'", path.string(), "' is not a file torch.save or linearize::io wrote, or is corrupt (",
         e.what_without_backtrace(), ")");
  } catch (const std::exception& e) {
    fail("'", path.string(), "' is not a file torch.save or linearize::io wrote, or is corrupt (",
         e.what(), ")");
  }
  require(value.isGenericDict(), "'", path.string(), "' holds a ", value.tagKind(),
          "; expected a dict of name -> tensor");
  c10::Dict<std::string, at::Tensor> out;
  for (const auto& item : value.toGenericDict()) {
    require(item.key().isString(), "'", path.string(), "' has a key of type ", item.key().tagKind(),
            "; expected string names");
    const std::string name = item.key().toStringRef();
    require(item.value().isTensor(), "'", path.string(), "': '", name, "' holds a ",
            item.value().tagKind(), "; expected a tensor");
    out.insert(name, item.value().toTensor());
  }
  return out;
}

/// Writes every parameter, buffer and mask of `module` for Python (see the top of this file).
inline void export_state(const torch::nn::Module& module, const std::filesystem::path& path) {
  write_tensors(path, state_dict(module));
}

struct import_options {
  /// Every name of the module must be in the file and every name in the file in the module
  /// (PyTorch's load_state_dict(strict=True)). Shapes must match either way.
  bool strict = true;
};

/// What an import did: names copied, names of the module absent from the file, names of the
/// file absent from the module (the last two are empty after a strict import).
struct import_report {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
};

namespace detail {
inline std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t shown = 8;
  std::string text;
  for (size_t i = 0; i < names.size() && i < shown; ++i) text += (i ? ", " : "") + names[i];
  if (names.size() > shown) text += ", ... (" + std::to_string(names.size() - shown) + " more)";
  return text;
}
}  // namespace detail

/// Copies the tensors of a file written by export_state or Python's torch.save into `module`'s
/// parameters, buffers and masks, by name. A hard (binary) slot takes its mask through
/// ReluSlot::harden, so a non-binary mask for it is refused. Nothing is changed unless every
/// check passes.
inline import_report import_state(torch::nn::Module& module, const std::filesystem::path& path,
                                  import_options options = {}) {
  const auto file = read_tensors(path);
  std::map<std::string, at::Tensor> targets;  // name -> the module's tensor
  std::vector<std::string> order;
  for (const auto& p : module.named_parameters(true)) {
    targets.emplace(p.key(), p.value());
    order.push_back(p.key());
  }
  for (const auto& b : module.named_buffers(true)) {
    targets.emplace(b.key(), b.value());
    order.push_back(b.key());
  }
  std::map<std::string, std::shared_ptr<ReluSlotImpl>> hard_masks;  // "<slot>.mask" -> slot
  for (const auto& m : module.named_modules("", false))
    if (auto slot = std::dynamic_pointer_cast<ReluSlotImpl>(m.value()); slot && slot->is_hard())
      hard_masks.emplace(m.key() + ".mask", slot);

  import_report report;
  for (const auto& name : order) {
    if (!file.contains(name)) {
      report.missing.push_back(name);
      continue;
    }
    const auto& source = file.at(name);
    const auto& target = targets.at(name);
    require(source.sizes() == target.sizes(), "'", path.string(), "': '", name, "' has shape ",
            source.sizes(), " in the file, ", target.sizes(), " in the network");
    report.loaded.push_back(name);
  }
  for (const auto& item : file)
    if (!targets.count(item.key())) report.unexpected.push_back(item.key());
  if (options.strict) {
    require(report.missing.empty(), "'", path.string(), "' lacks ", report.missing.size(),
            " name(s) of the network: ", detail::name_list(report.missing));
    require(report.unexpected.empty(), "'", path.string(), "' has ", report.unexpected.size(),
            " name(s) the network does not: ", detail::name_list(report.unexpected));
  }
  for (const auto& [name, slot] : hard_masks) {
    if (!file.contains(name)) continue;
    const auto mask = file.at(name);
    require(mask.eq(0).logical_or(mask.eq(1)).all().item<bool>(), "'", path.string(), "': '",
            name, "' belongs to a hard (binary) slot but holds values other than 0 and 1");
  }

  torch::NoGradGuard no_grad;
  for (const auto& name : report.loaded) {
    const auto& source = file.at(name);
    if (const auto hard = hard_masks.find(name); hard != hard_masks.end())
      hard->second->harden(source);
    else
      targets.at(name).copy_(source);
  }
  return report;
}

template <class M>
inline void export_state(const std::shared_ptr<M>& module, const std::filesystem::path& path) {
  export_state(*module, path);
}
template <class M>
inline import_report import_state(const std::shared_ptr<M>& module,
                                  const std::filesystem::path& path, import_options options = {}) {
  return import_state(*module, path, options);
}

}  // namespace linearize::io
