#pragma once
// CIFAR-10 and CIFAR-100 in their binary versions. Each file is a run of fixed-size records:
//   CIFAR-10  (data_batch_1..5.bin, test_batch.bin): 1 label byte, 3072 pixel bytes
//   CIFAR-100 (train.bin, test.bin): 1 coarse label byte, 1 fine label byte, 3072 pixel bytes
// The pixels are already planar (1024 red, 1024 green, 1024 blue, rows top to bottom), which
// is image_dataset's [C, H, W] layout, so each record is one memcpy.
#include <linearize/data/dataset.hpp>
#include <linearize/data/dataset_files.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace linearize::data {

inline constexpr int64_t cifar_side = 32;
inline constexpr int64_t cifar_image_bytes = 3 * cifar_side * cifar_side;

// Per-channel pixel mean and std (pixels in [0, 1], population std over every pixel of the
// 50,000 training images): the published values, as torchvision-based code uses them. (The
// std (0.2023, 0.1994, 0.2010) seen in many repositories is not the pixel std.)
inline const std::vector<double> cifar10_mean{0.49139968, 0.48215841, 0.44653091};
inline const std::vector<double> cifar10_stdev{0.24703223, 0.24348513, 0.26158784};
inline const std::vector<double> cifar100_mean{0.50707516, 0.48654887, 0.44091784};
inline const std::vector<double> cifar100_stdev{0.26733429, 0.25643846, 0.27615047};

/// CIFAR-100's two labellings: 100 fine classes or 20 coarse superclasses.
enum class cifar100_labels { fine, coarse };

namespace detail {

struct cifar_format {
  const char* dataset;     ///< for messages
  const char* archive_dir; ///< what the official archive unpacks to
  int64_t label_bytes;     ///< label bytes before the pixels of each record
  int64_t label_at;        ///< which label byte is the label
  std::vector<int64_t> classes_per_label_byte;  ///< range of each label byte
};

/// Reads whole records from `files` (in order) into one dataset.
[[nodiscard]] inline image_dataset read_cifar_records(const std::filesystem::path& root,
                                                      const std::vector<std::string>& files,
                                                      const cifar_format& format) {
  const auto dir = find_dataset_dir(root, format.archive_dir, format.dataset);
  const int64_t record = format.label_bytes + cifar_image_bytes;
  // Sizes first, so that the images are allocated once and each file is read, copied, freed.
  std::vector<std::filesystem::path> paths;
  std::vector<int64_t> records;
  for (const auto& name : files) {
    std::error_code ec;
    paths.push_back(dir / name);
    const auto& path = paths.back();
    require(std::filesystem::is_regular_file(path, ec), format.dataset, ": missing file '",
            path.string(), "' (looked in '", root.string(), "' and in '",
            (root / format.archive_dir).string(), "', where the official archive unpacks)");
    const auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
    require(!ec && size > 0 && size % record == 0, "'", path.string(), "' has ", size,
            " bytes, expected a positive multiple of the ", record, "-byte ", format.dataset,
            " record (truncated, or not a ", format.dataset, " binary file?)");
    records.push_back(size / record);
  }
  int64_t n = 0;
  for (auto r : records) n += r;
  image_dataset d;
  d.images = torch::empty({n, 3, cifar_side, cifar_side}, torch::kByte);
  d.labels = torch::empty({n}, torch::kLong);
  auto* images = d.images.data_ptr<uint8_t>();
  auto* labels = d.labels.data_ptr<int64_t>();
  int64_t i = 0;
  for (size_t f = 0; f < paths.size(); ++f) {
    const auto bytes = read_bytes(paths[f]);
    require(static_cast<int64_t>(bytes.size()) == records[f] * record, "'", paths[f].string(),
            "' changed size while being read");
    for (int64_t r = 0; r < records[f]; ++r, ++i) {
      const uint8_t* rec = bytes.data() + r * record;
      for (int64_t b = 0; b < format.label_bytes; ++b) {
        const int64_t range = format.classes_per_label_byte[static_cast<size_t>(b)];
        require(rec[b] < range, "'", paths[f].string(), "': label ", int{rec[b]}, " of record ",
                r, " out of range [0, ", range, ")");
      }
      labels[i] = rec[format.label_at];
      std::memcpy(images + i * cifar_image_bytes, rec + format.label_bytes, cifar_image_bytes);
    }
  }
  d.classes = format.classes_per_label_byte[static_cast<size_t>(format.label_at)];
  return d;
}

}  // namespace detail

/// CIFAR-10's 50,000 training or 10,000 test images from `root` (the directory holding
/// cifar-10-batches-bin, or that directory itself).
[[nodiscard]] inline image_dataset load_cifar10(const std::filesystem::path& root,
                                                part which = part::train) {
  std::vector<std::string> files;
  if (which == part::train)
    for (int b = 1; b <= 5; ++b) files.push_back("data_batch_" + std::to_string(b) + ".bin");
  else
    files.push_back("test_batch.bin");
  auto d = detail::read_cifar_records(root, files,
                                      {.dataset = "cifar10",
                                       .archive_dir = "cifar-10-batches-bin",
                                       .label_bytes = 1,
                                       .label_at = 0,
                                       .classes_per_label_byte = {10}});
  d.name = "cifar10/" + std::string(to_string(which));
  d.mean = cifar10_mean;
  d.stdev = cifar10_stdev;
  d.validate();
  return d;
}

/// CIFAR-100's 50,000 training or 10,000 test images from `root` (the directory holding
/// cifar-100-binary, or that directory itself), with fine (100) or coarse (20) labels.
[[nodiscard]] inline image_dataset load_cifar100(const std::filesystem::path& root,
                                                 part which = part::train,
                                                 cifar100_labels labels = cifar100_labels::fine) {
  auto d = detail::read_cifar_records(root, {which == part::train ? "train.bin" : "test.bin"},
                                      {.dataset = "cifar100",
                                       .archive_dir = "cifar-100-binary",
                                       .label_bytes = 2,
                                       .label_at = labels == cifar100_labels::fine ? 1 : 0,
                                       .classes_per_label_byte = {20, 100}});
  d.name = std::string("cifar100") + (labels == cifar100_labels::coarse ? "-coarse/" : "/") +
           std::string(to_string(which));
  d.mean = cifar100_mean;
  d.stdev = cifar100_stdev;
  d.validate();
  return d;
}

}  // namespace linearize::data
