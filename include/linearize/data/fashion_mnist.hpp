#pragma once
// Fashion-MNIST from its IDX files, read straight from the .gz files with zlib (uncompressed
// files are accepted too: gzread passes plain files through). Debian's dataset-fashion-mnist
// package installs the four .gz files in /usr/share/datasets/fashion-mnist.
//
// IDX layout: a big-endian int32 magic (0x0000 0x08 = unsigned bytes, then the number of
// dimensions: 2051 for images [N, rows, cols], 2049 for labels [N]), one big-endian int32 per
// dimension, then the bytes. A header is never trusted for an allocation larger than what the
// file really holds: labels are read in chunks first, and images must match their count.
#include <linearize/data/dataset.hpp>
#include <linearize/data/dataset_files.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace linearize::data {

inline constexpr const char* fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";
inline constexpr int64_t fashion_mnist_classes = 10;
inline constexpr int64_t fashion_mnist_side = 28;

// Pixel mean and std (pixels scaled to [0, 1], population std over every pixel of the 60,000
// training images), computed once with load_fashion_mnist from Debian's files; the test set is
// normalized with the training set's constants, as usual.
inline constexpr double fashion_mnist_mean = 0.28604060;
inline constexpr double fashion_mnist_stdev = 0.35302424;

namespace detail {

/// A gzip (or plain) file read through zlib; every short read is an error naming the file.
class gz_file {
 public:
  explicit gz_file(std::filesystem::path path) : path_(std::move(path)) {
    file_ = gzopen(path_.c_str(), "rb");
    require(file_ != nullptr, "cannot open '", path_.string(), "': file missing or unreadable");
    gzbuffer(file_, 1 << 18);
  }
  gz_file(const gz_file&) = delete;
  gz_file& operator=(const gz_file&) = delete;
  ~gz_file() { gzclose(file_); }

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  /// Reads up to n bytes; fewer only at the end of the data. Corrupt gzip data is an error.
  size_t read_some(void* dst, size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    size_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<size_t>(n - done, size_t{1} << 30));
      const int got = gzread(file_, out + done, chunk);
      if (got < 0) fail("'", path_.string(), "' is not valid gzip data: ", zlib_message());
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  /// Reads exactly n bytes of `what`, or fails saying the file is truncated.
  void read_exact(void* dst, size_t n, const char* what) {
    const size_t got = read_some(dst, n);
    if (got == n) return;
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    fail("'", path_.string(), "' is truncated: expected ", n, " bytes of ", what, ", got ", got,
         errnum != Z_OK && msg && *msg ? std::string(" (zlib: ") + msg + ")" : std::string());
  }

  /// Fails if anything follows the expected data (a wrong header count would go unnoticed).
  void expect_end() {
    unsigned char extra = 0;
    require(read_some(&extra, 1) == 0, "'", path_.string(),
            "' has bytes after the data its header describes: expected the file to end there");
  }

 private:
  std::string zlib_message() {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    return msg ? msg : "unknown zlib error";
  }

  std::filesystem::path path_;
  gzFile file_ = nullptr;
};

[[nodiscard]] inline uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

/// Reads an IDX header of unsigned bytes with `dims` dimensions; returns the dimensions.
[[nodiscard]] inline std::vector<int64_t> read_idx_header(gz_file& file, uint32_t magic,
                                                          int dims) {
  std::array<unsigned char, 4> word{};
  file.read_exact(word.data(), 4, "IDX magic number");
  const uint32_t got = big_endian_u32(word.data());
  require(got == magic, "'", file.path().string(), "' has IDX magic number ", got, ", expected ",
          magic, " (unsigned bytes, ", dims, dims == 1 ? " dimension)" : " dimensions)");
  std::vector<int64_t> sizes;
  for (int d = 0; d < dims; ++d) {
    file.read_exact(word.data(), 4, "IDX dimension sizes");
    sizes.push_back(static_cast<int64_t>(big_endian_u32(word.data())));
  }
  return sizes;
}

/// A file name with ".gz" if that exists, else the uncompressed name, else an error.
[[nodiscard]] inline std::filesystem::path find_idx_file(const std::filesystem::path& dir,
                                                         const std::string& name) {
  std::error_code ec;
  const auto gz = dir / (name + ".gz");
  if (std::filesystem::is_regular_file(gz, ec)) return gz;
  const auto plain = dir / name;
  if (std::filesystem::is_regular_file(plain, ec)) return plain;
  fail("fashion-mnist: missing file '", gz.string(), "' (or uncompressed '", plain.string(), "')");
}

}  // namespace detail

/// IDX labels (magic 2049) as int64 [N]; each label must lie in [0, classes).
[[nodiscard]] inline torch::Tensor read_idx_labels(const std::filesystem::path& path,
                                                   int64_t classes) {
  detail::gz_file file(path);
  const int64_t n = detail::read_idx_header(file, 2049, 1)[0];
  // Read in chunks: the vector grows with the data actually present, not with the header.
  std::vector<uint8_t> bytes;
  constexpr size_t chunk = size_t{1} << 20;
  while (static_cast<int64_t>(bytes.size()) < n) {
    const size_t want = std::min<size_t>(chunk, static_cast<size_t>(n) - bytes.size());
    const size_t at = bytes.size();
    bytes.resize(at + want);
    const size_t got = file.read_some(bytes.data() + at, want);
    require(got == want, "'", path.string(), "' is truncated: its header promises ", n,
            " labels, the file holds ", at + got);
  }
  file.expect_end();
  auto labels = torch::empty({n}, torch::kLong);
  auto* out = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    require(bytes[static_cast<size_t>(i)] < classes, "'", path.string(), "': label ",
            int{bytes[static_cast<size_t>(i)]}, " of sample ", i, " out of range [0, ", classes,
            ")");
    out[i] = bytes[static_cast<size_t>(i)];
  }
  return labels;
}

/// IDX images (magic 2051) as uint8 [N, 1, rows, cols]; N, rows and cols must be as expected.
[[nodiscard]] inline torch::Tensor read_idx_images(const std::filesystem::path& path,
                                                   int64_t count, int64_t rows, int64_t cols) {
  detail::gz_file file(path);
  const auto dims = detail::read_idx_header(file, 2051, 3);
  require(dims[0] == count, "'", path.string(), "' holds ", dims[0], " images, expected ", count,
          " (one per label)");
  require(dims[1] == rows && dims[2] == cols, "'", path.string(), "' holds ", dims[1], "x",
          dims[2], " images, expected ", rows, "x", cols);
  auto images = torch::empty({count, 1, rows, cols}, torch::kByte);
  file.read_exact(images.data_ptr<uint8_t>(), static_cast<size_t>(images.numel()), "pixels");
  file.expect_end();
  return images;
}

/// Fashion-MNIST's training (60,000) or test (10,000) images from `dir`, which holds
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. An empty `dir` means Debian's location.
[[nodiscard]] inline image_dataset load_fashion_mnist(const std::filesystem::path& dir,
                                                      part which = part::train) {
  const std::filesystem::path root = dir.empty() ? fashion_mnist_default_dir : dir;
  require_directory(root, "fashion-mnist");
  const std::string prefix = which == part::train ? "train" : "t10k";
  image_dataset d;
  d.name = "fashion-mnist/" + std::string(to_string(which));
  d.labels = read_idx_labels(detail::find_idx_file(root, prefix + "-labels-idx1-ubyte"),
                             fashion_mnist_classes);
  d.images = read_idx_images(detail::find_idx_file(root, prefix + "-images-idx3-ubyte"),
                             d.labels.size(0), fashion_mnist_side, fashion_mnist_side);
  d.classes = fashion_mnist_classes;
  d.mean = {fashion_mnist_mean};
  d.stdev = {fashion_mnist_stdev};
  d.validate();
  return d;
}

}  // namespace linearize::data
