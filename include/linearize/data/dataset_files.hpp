#pragma once
// Where a dataset's files are and how they are read whole. The official archives unpack to a
// directory of their own (cifar-10-batches-bin, cifar-100-binary, tiny-imagenet-200); a reader
// accepts either that directory's parent or the directory itself, and names every place it
// looked when a file is missing.
#include <linearize/support/error.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace linearize::data {

/// Which part of a dataset to read. TinyImageNet's labelled held-out part is called "val";
/// it plays the role of the test set (its own test set has no labels).
enum class part { train, test };

[[nodiscard]] inline std::string_view to_string(part p) { return p == part::train ? "train" : "test"; }

/// "train", "test" or "val" (a synonym of test).
[[nodiscard]] inline part parse_part(std::string_view which) {
  if (which == "train") return part::train;
  if (which == "test" || which == "val") return part::test;
  fail("unknown dataset part '", which, "': expected 'train', 'test' or 'val'");
}

/// Fails, naming `dataset`, unless `dir` is an existing directory.
inline void require_directory(const std::filesystem::path& dir, std::string_view dataset) {
  std::error_code ec;
  require(std::filesystem::is_directory(dir, ec), dataset, ": dataset directory '", dir.string(),
          "' does not exist or is not a directory");
}

/// The directory holding a dataset's files: `root/archive_dir` if that exists, else `root`.
/// A missing `root` is an error naming the dataset.
[[nodiscard]] inline std::filesystem::path find_dataset_dir(const std::filesystem::path& root,
                                                            std::string_view archive_dir,
                                                            std::string_view dataset) {
  require_directory(root, dataset);
  std::error_code ec;
  const auto inner = root / archive_dir;
  return std::filesystem::is_directory(inner, ec) ? inner : root;
}

/// `dir/name` when it is a regular file; otherwise an error naming the file and `dataset`.
[[nodiscard]] inline std::filesystem::path require_file(const std::filesystem::path& dir,
                                                        const std::string& name,
                                                        std::string_view dataset) {
  std::error_code ec;
  const auto path = dir / name;
  require(std::filesystem::is_regular_file(path, ec), dataset, ": missing file '", path.string(),
          "'");
  return path;
}

/// The bytes of a file, read with one fread (the datasets are read once, whole, into memory).
[[nodiscard]] inline std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  require(f != nullptr, "cannot open '", path.string(), "': file missing or unreadable");
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  require(!ec, "cannot get the size of '", path.string(), "': ", ec.message());
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  const size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f.get());
  require(got == bytes.size(), "reading '", path.string(), "' failed after ", got, " of ",
          bytes.size(), " bytes");
  return bytes;
}

}  // namespace linearize::data
