#pragma once
// Fuzz targets: every reader of bytes from disk, each fed one input. A target writes the bytes
// where its parser expects a file (a temporary directory of this process) and calls the
// parser. The contract: on any input a parser either succeeds or throws linearize::error; a
// target catches that and nothing else, so any other exception, a crash or a sanitizer report
// is a finding. Used by afl_main.cpp (AFL++) and by the corpus replay of the unit tests.
#include "../unit/mask_net.hpp"
#include "../unit/train_fixtures.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/data/cifar.hpp>
#include <linearize/data/fashion_mnist.hpp>
#include <linearize/data/jpeg.hpp>
#include <linearize/data/tiny_imagenet.hpp>
#include <linearize/io/json.hpp>
#include <linearize/io/results.hpp>
#include <linearize/io/torch_export.hpp>
#include <linearize/pipeline/run_settings.hpp>
#include <linearize/support/checksum.hpp>
#include <linearize/support/error.hpp>
#include <linearize/train/baseline.hpp>
#include <linearize/train/checkpoint.hpp>

#include <torch/torch.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linearize::fuzz {

namespace fs = std::filesystem;

/// A directory of this process for the files the targets write, removed at exit.
inline const fs::path& scratch() {
  struct dir {
    fs::path path;
    dir() {
      const fs::path shm = "/dev/shm";
      std::error_code ec;
      const auto base = fs::is_directory(shm, ec) ? shm : fs::temp_directory_path();
      path = base / ("linearize-fuzz-" + std::to_string(::getpid()));
      fs::create_directories(path);
    }
    ~dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const dir d;
  return d.path;
}

/// A fresh subdirectory `name` of the scratch directory (emptied first).
inline fs::path fresh_dir(const std::string& name) {
  const auto p = scratch() / name;
  std::error_code ec;
  fs::remove_all(p, ec);
  fs::create_directories(p);
  return p;
}

inline void write_bytes(const fs::path& path, std::string_view bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("fuzz harness: cannot write " + path.string());
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// ---- the small networks the mask, checkpoint and tensor-file targets read into ------------------
using testing::MaskNet;  // ../unit/mask_net.hpp

/// The tiny convolutional network of the trainer's tests (width 2: a few hundred weights).
inline std::shared_ptr<testing::TinyConvImpl> tiny_net() { return testing::tiny_conv(7, 2, 0.0); }

inline std::unique_ptr<torch::optim::SGD> tiny_sgd(testing::TinyConvImpl& net) {
  return std::make_unique<torch::optim::SGD>(net.parameters(),
                                             torch::optim::SGDOptions(0.1).momentum(0.9));
}

/// A checkpoint's header for `payload`: what checkpoint::read checks before the archive.
inline std::string checkpoint_header(std::string_view payload) {
  char line[64];
  std::snprintf(line, sizeof line, "payload %zu %llx\n", payload.size(),
                static_cast<unsigned long long>(fnv1a(std::string(payload))));
  return std::string(train::detail::checkpoint_magic) + "\n" + line;
}

// ---- the targets -------------------------------------------------------------------------------
/// IDX images (raw or gzip): 2 images of 28x28.
inline void idx_images(const uint8_t* data, size_t size) {
  const auto path = fresh_dir("idx_images") / "images-idx3-ubyte";
  write_bytes(path, as_text(data, size));
  (void)data::read_idx_images(path, 2, 28, 28);
}

/// IDX labels (raw or gzip) of 10 classes.
inline void idx_labels(const uint8_t* data, size_t size) {
  const auto path = fresh_dir("idx_labels") / "labels-idx1-ubyte";
  write_bytes(path, as_text(data, size));
  (void)data::read_idx_labels(path, 10);
}

/// The same bytes as CIFAR-10's and CIFAR-100's test file: parsed when either reads them.
inline void cifar(const uint8_t* data, size_t size) {
  const auto dir = fresh_dir("cifar");
  write_bytes(dir / "test_batch.bin", as_text(data, size));
  write_bytes(dir / "test.bin", as_text(data, size));
  std::optional<linearize::error> refused;
  const auto read = [&](auto&& load) {
    try {
      (void)load();
      return true;
    } catch (const linearize::error& e) {
      if (!refused) refused = e;
      return false;
    }
  };
  const bool cifar10 = read([&] { return data::load_cifar10(dir, data::part::test); });
  const bool cifar100 = read([&] {
    return data::load_cifar100(dir, data::part::test, data::cifar100_labels::fine);
  });
  if (!cifar10 && !cifar100) throw *refused;
}

/// A JPEG of any size, decoded to [3, H, W].
inline void jpeg(const uint8_t* data, size_t size) {
  (void)data::decode_jpeg(std::vector<uint8_t>(data, data + size), "fuzz.JPEG");
}

/// TinyImageNet's validation part: wnids.txt, NUL, val/val_annotations.txt, NUL, and the bytes
/// of val/images/val_0.JPEG (the input is split at its first two NUL bytes).
inline void tiny_imagenet(const uint8_t* data, size_t size) {
  const auto text = as_text(data, size);
  const auto a = text.find('\0');
  const auto b = a == std::string_view::npos ? a : text.find('\0', a + 1);
  const auto part = [&](size_t from, size_t to) {
    if (from == std::string_view::npos || from > text.size()) return std::string_view{};
    return text.substr(from, to == std::string_view::npos ? to : to - from);
  };
  const auto dir = fresh_dir("tiny_imagenet");
  write_bytes(dir / "wnids.txt", part(0, a));
  write_bytes(dir / "val" / "val_annotations.txt",
              a == std::string_view::npos ? std::string_view{} : part(a + 1, b));
  write_bytes(dir / "val" / "images" / "val_0.JPEG",
              b == std::string_view::npos ? std::string_view{} : part(b + 1, std::string_view::npos));
  (void)data::load_tiny_imagenet(dir, data::part::test, 1);
}

/// A mask file loaded into MaskNet.
inline void mask(const uint8_t* data, size_t size) {
  const auto path = fresh_dir("mask") / "net.mask";
  write_bytes(path, as_text(data, size));
  MaskNet net;
  MaskSet(*net).load(path);
}

/// A checkpoint read and restored into the tiny network, its SGD optimizer and the random
/// generators. Input that starts with the checkpoint header is the file as is; anything else is
/// a payload (the torch archive) and gets a correct header, so that the fuzzer reaches the
/// archive and the JSON state inside it past the length and checksum checks.
inline void checkpoint(const uint8_t* data, size_t size) {
  const auto text = as_text(data, size);
  const std::string_view magic = "linearize-checkpoint";
  std::string file = text.substr(0, magic.size()) == magic
                         ? std::string(text)
                         : checkpoint_header(text) + std::string(text);
  const auto path = fresh_dir("checkpoint") / "run.ckpt";
  write_bytes(path, file);
  const auto c = train::checkpoint::read(path);
  auto net = tiny_net();
  c.restore_network(*net);
  auto sgd = tiny_sgd(*net);
  c.restore_optimizer(*sgd, "sgd");
  // restore_rng sets the global generator: keep the process's own state around it.
  auto gen = at::globalContext().defaultGenerator(torch::kCPU);  // a handle
  const auto saved = gen.get_state();
  try {
    c.restore_rng();
  } catch (...) {
    gen.set_state(saved);
    throw;
  }
  gen.set_state(saved);
}

/// A baseline's record (weights.json beside weights.pt).
inline void baseline(const uint8_t* data, size_t size) {
  const auto dir = fresh_dir("baseline");
  write_bytes(dir / "weights.json", as_text(data, size));
  (void)train::read_baseline_record(dir / "weights.pt");
}

/// A results CSV file read back.
inline void results(const uint8_t* data, size_t size) {
  const auto path = fresh_dir("results") / "results.csv";
  write_bytes(path, as_text(data, size));
  (void)io::read_csv(path);
}

/// A tensor file from Python (torch.save of a dict) imported into the tiny network, strictly
/// and not.
inline void torch_tensors(const uint8_t* data, size_t size) {
  const auto path = fresh_dir("torch_tensors") / "state.pt";
  write_bytes(path, as_text(data, size));
  auto net = tiny_net();
  try {
    (void)io::import_state(*net, path, {.strict = true});
  } catch (const linearize::error&) {
  }
  (void)io::import_state(*net, path, {.strict = false});
}

/// The settings a run_json input is compared with: nested like a real record.
inline const io::json& run_settings_example() {
  static const io::json settings = io::json::parse(R"json({
    "format": "linearize-run 1", "model": "tiny_conv(width=2, classes=3)",
    "stages": [{"scheduler": {"name": "fixed_step", "steps": 4}, "budget": 0.5}],
    "options": {"seed": 1, "epochs": 2, "lr": 0.001},
    "data": {"train": 60, "held_out": 12, "test": 20}})json");
  return settings;
}

/// A work directory's run.json compared with run_settings_example().
inline void run_json(const uint8_t* data, size_t size) {
  const auto dir = fresh_dir("run_json");
  write_bytes(dir / "run.json", as_text(data, size));
  claim_work_dir(dir, run_settings_example(), /*write=*/false);
}

struct target {
  const char* name;
  void (*run)(const uint8_t*, size_t);
};

inline const std::vector<target>& targets() {
  static const std::vector<target> all{
      {"idx_images", idx_images}, {"idx_labels", idx_labels}, {"cifar", cifar},
      {"jpeg", jpeg},             {"tiny_imagenet", tiny_imagenet},
      {"mask", mask},             {"checkpoint", checkpoint}, {"baseline", baseline},
      {"results", results},       {"torch_tensors", torch_tensors},
      {"run_json", run_json}};
  return all;
}

inline const target* find_target(std::string_view name) {
  for (const auto& t : targets())
    if (name == t.name) return &t;
  return nullptr;
}

/// Runs `t` on one input: true when it parsed, false when it threw linearize::error. Anything
/// else propagates (a finding).
inline bool parses(const target& t, const uint8_t* data, size_t size) {
  try {
    t.run(data, size);
    return true;
  } catch (const linearize::error&) {
    return false;
  }
}

}  // namespace linearize::fuzz
