#pragma once
// TinyImageNet (tiny-imagenet-200): 200 classes of 64x64 RGB JPEGs.
//   wnids.txt                          the class ids (WordNet ids), one a line
//   train/<wnid>/images/*.JPEG         500 a class
//   val/val_annotations.txt            "<file>\t<wnid>\t<box...>" for each validation image
//   val/images/*.JPEG                  50 a class
// The labelled "val" part serves as the test set (the official test set has no labels).
// Class k is the k-th wnid in sorted order, as torchvision's ImageFolder numbers the train/
// folders, so labels agree with models trained in Python. 110,000 files are decoded on all
// hardware threads; the first bad file (in file order) is the one reported.
#include <linearize/data/dataset.hpp>
#include <linearize/data/dataset_files.hpp>
#include <linearize/data/jpeg.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace linearize::data {

inline constexpr int64_t tiny_imagenet_side = 64;

// Per-channel pixel mean and std (pixels in [0, 1]) of the training set: published values,
// the ones code for TinyImageNet commonly normalizes with.
inline const std::vector<double> tiny_imagenet_mean{0.4802, 0.4481, 0.3975};
inline const std::vector<double> tiny_imagenet_stdev{0.2302, 0.2265, 0.2262};

/// The class ids of wnids.txt in sorted order: label k is the k-th of them.
[[nodiscard]] inline std::vector<std::string> tiny_imagenet_wnids(const std::filesystem::path& dir) {
  const auto path = require_file(dir, "wnids.txt", "tinyimagenet");
  std::ifstream in(path);
  require(static_cast<bool>(in), "cannot open '", path.string(), "'");
  std::vector<std::string> wnids;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    if (line.empty()) continue;
    require(line.find_first_of(" \t/") == std::string::npos, "'", path.string(),
            "': malformed class id '", line, "', expected one WordNet id (e.g. n01443537) a line");
    wnids.push_back(line);
  }
  require(!wnids.empty(), "'", path.string(), "' lists no class ids");
  std::sort(wnids.begin(), wnids.end());
  const auto dup = std::adjacent_find(wnids.begin(), wnids.end());
  require(dup == wnids.end(), "'", path.string(), "' lists class id '",
          dup == wnids.end() ? "" : *dup, "' twice");
  return wnids;
}

namespace detail {

/// Decodes `files` into `images` (uint8 [N, 3, side, side]) on `threads` threads. Throws, after
/// all threads stopped, the error of the first failing file in file order.
inline void decode_jpeg_files(const std::vector<std::filesystem::path>& files,
                              torch::Tensor& images, int threads) {
  const auto n = static_cast<int64_t>(files.size());
  const int64_t side = images.size(2), image_bytes = images.size(1) * side * images.size(3);
  uint8_t* out = images.data_ptr<uint8_t>();
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;
  int64_t first_bad = std::numeric_limits<int64_t>::max();
  std::string first_message;
  auto record = [&](int64_t i, std::string message) {
    std::lock_guard lock(mutex);
    if (i < first_bad) {
      first_bad = i;
      first_message = std::move(message);
    }
    failed = true;
  };
  // Items are claimed in increasing order and a claimed item is always finished, so every file
  // before the first failure is checked: the reported file does not depend on thread timing.
  auto work = [&] {
    std::vector<uint8_t> row;
    while (!failed) {
      const int64_t i = next++;
      if (i >= n) return;
      const auto& path = files[static_cast<size_t>(i)];
      try {
        const auto bytes = read_bytes(path);
        int64_t h = side, w = side;
        auto why = decode_jpeg_planar(bytes.data(), bytes.size(), out + i * image_bytes, h, w, row);
        if (!why.empty()) record(i, "'" + path.string() + "': " + why);
      } catch (const std::exception& e) {
        record(i, e.what());
      }
    }
  };
  const int count = static_cast<int>(std::clamp<int64_t>(threads, 1, std::max<int64_t>(n, 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failed) fail(first_message);
}

[[nodiscard]] inline std::vector<std::filesystem::path> jpegs_in(const std::filesystem::path& dir) {
  std::error_code ec;
  require(std::filesystem::is_directory(dir, ec), "tinyimagenet: missing directory '", dir.string(),
          "'");
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    auto ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (entry.is_regular_file() && (ext == ".jpeg" || ext == ".jpg")) files.push_back(entry.path());
  }
  require(!files.empty(), "tinyimagenet: no .JPEG files in '", dir.string(), "'");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace detail

/// TinyImageNet's 100,000 training or 10,000 validation images from `root` (the directory
/// holding tiny-imagenet-200, or that directory itself). `threads` <= 0: all hardware threads.
[[nodiscard]] inline image_dataset load_tiny_imagenet(const std::filesystem::path& root,
                                                      part which = part::train, int threads = 0) {
  const auto dir = find_dataset_dir(root, "tiny-imagenet-200", "tinyimagenet");
  const auto wnids = tiny_imagenet_wnids(dir);
  std::map<std::string, int64_t> label_of;
  for (size_t k = 0; k < wnids.size(); ++k) label_of[wnids[k]] = static_cast<int64_t>(k);

  std::vector<std::filesystem::path> files;
  std::vector<int64_t> labels;
  if (which == part::train) {
    for (size_t k = 0; k < wnids.size(); ++k) {
      auto in_class = detail::jpegs_in(dir / "train" / wnids[k] / "images");
      files.insert(files.end(), in_class.begin(), in_class.end());
      labels.insert(labels.end(), in_class.size(), static_cast<int64_t>(k));
    }
  } else {
    const auto annotations = require_file(dir / "val", "val_annotations.txt", "tinyimagenet");
    std::ifstream in(annotations);
    require(static_cast<bool>(in), "cannot open '", annotations.string(), "'");
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      const auto tab1 = line.find('\t');
      const auto tab2 = tab1 == std::string::npos ? tab1 : line.find('\t', tab1 + 1);
      require(tab1 != std::string::npos && tab1 > 0, "'", annotations.string(), "' line ", number,
              ": expected '<file>\\t<wnid>\\t...', got '", line, "'");
      const auto file = line.substr(0, tab1);
      const auto wnid = line.substr(tab1 + 1, tab2 == std::string::npos ? tab2 : tab2 - tab1 - 1);
      const auto it = label_of.find(wnid);
      require(it != label_of.end(), "'", annotations.string(), "' line ", number, ": class id '",
              wnid, "' is not in wnids.txt");
      require(file.find('/') == std::string::npos, "'", annotations.string(), "' line ", number,
              ": file name '", file, "' must not contain '/'");
      files.push_back(require_file(dir / "val" / "images", file, "tinyimagenet"));
      labels.push_back(it->second);
    }
    require(!files.empty(), "'", annotations.string(), "' lists no images");
  }

  image_dataset d;
  d.name = "tinyimagenet/" + std::string(to_string(which));
  const auto n = static_cast<int64_t>(files.size());
  d.images = torch::empty({n, 3, tiny_imagenet_side, tiny_imagenet_side}, torch::kByte);
  d.labels = torch::tensor(labels, torch::kLong);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  detail::decode_jpeg_files(files, d.images, threads);
  d.classes = static_cast<int64_t>(wnids.size());
  d.mean = tiny_imagenet_mean;
  d.stdev = tiny_imagenet_stdev;
  d.validate();
  return d;
}

}  // namespace linearize::data
