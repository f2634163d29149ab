// The dataset readers: small files written here in each format are read back exactly, and
// every kind of bad input is a linearize::error naming the file and what was expected.
#include "test_support.hpp"

#include <linearize/data/registry.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <jpeglib.h>

using namespace linearize;
using namespace linearize::data;
using linearize::testing::expect_error;
using linearize::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> random_bytes(int64_t n, int64_t high, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto t = torch::randint(0, high, {n}, gen, torch::kLong).to(torch::kByte);
  return {t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + n};
}

torch::Tensor as_tensor(const std::vector<uint8_t>& bytes) {
  return torch::tensor(std::vector<int64_t>(bytes.begin(), bytes.end()), torch::kLong)
      .to(torch::kByte);
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::vector<uint8_t> read_all(const fs::path& path) { return data::read_bytes(path); }

void write_gz(const fs::path& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

/// An IDX file of unsigned bytes: magic, big-endian sizes, data.
std::vector<uint8_t> idx(uint32_t magic, const std::vector<uint32_t>& dims,
                         const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  auto put = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
  };
  put(magic);
  for (auto d : dims) put(d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

struct fashion_files {
  std::vector<uint8_t> pixels, labels;
  int64_t n;
};

/// Writes {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte (gzipped or not).
fashion_files write_fashion(const fs::path& dir, const std::string& prefix, int64_t n,
                            uint64_t seed, bool gz = true) {
  fashion_files f{random_bytes(n * 28 * 28, 256, seed), random_bytes(n, 10, seed + 1), n};
  const auto images = idx(2051, {static_cast<uint32_t>(n), 28, 28}, f.pixels);
  const auto labels = idx(2049, {static_cast<uint32_t>(n)}, f.labels);
  if (gz) {
    write_gz(dir / (prefix + "-images-idx3-ubyte.gz"), images);
    write_gz(dir / (prefix + "-labels-idx1-ubyte.gz"), labels);
  } else {
    write_file(dir / (prefix + "-images-idx3-ubyte"), images);
    write_file(dir / (prefix + "-labels-idx1-ubyte"), labels);
  }
  return f;
}

void check_fashion(const image_dataset& d, const fashion_files& f) {
  REQUIRE(d.size() == f.n);
  CHECK(d.images.sizes() == torch::IntArrayRef({f.n, 1, 28, 28}));
  CHECK(torch::equal(d.images.flatten(), as_tensor(f.pixels)));
  CHECK(torch::equal(d.labels, as_tensor(f.labels).to(torch::kLong)));
  CHECK(d.classes == 10);
  CHECK(d.mean == std::vector<double>{fashion_mnist_mean});
  CHECK(d.stdev == std::vector<double>{fashion_mnist_stdev});
}

// ---- JPEG writing with libjpeg's compressor --------------------------------------------------

/// Encodes planar uint8 [C, H, W] (C = 1 or 3) at quality 100 without chroma subsampling.
std::vector<uint8_t> encode_jpeg(const torch::Tensor& chw) {
  const auto img = chw.permute({1, 2, 0}).contiguous();  // interleaved, as libjpeg wants it
  const int h = static_cast<int>(img.size(0)), w = static_cast<int>(img.size(1));
  const int c = static_cast<int>(img.size(2));
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = c;
  cinfo.in_color_space = c == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 100, TRUE);
  for (int i = 0; i < cinfo.num_components; ++i)
    cinfo.comp_info[i].h_samp_factor = cinfo.comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(&cinfo, TRUE);
  auto* base = img.data_ptr<uint8_t>();
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = base + static_cast<int64_t>(cinfo.next_scanline) * w * c;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

/// A smooth test image (JPEG keeps smooth images nearly exact), distinct per `id`.
torch::Tensor smooth_image(int64_t channels, int64_t side, int64_t id) {
  auto y = torch::arange(side, torch::kFloat).view({1, side, 1});
  auto x = torch::arange(side, torch::kFloat).view({1, 1, side});
  auto c = torch::arange(channels, torch::kFloat).view({channels, 1, 1});
  const double slope = 0.5 + 0.5 * static_cast<double>(id % 2);
  return (20.0 + static_cast<double>((id * 7) % 31) + x * slope + y * 0.75 + c * 20.0)
      .round()
      .to(torch::kByte);
}

bool near(const torch::Tensor& decoded, const torch::Tensor& source, int tolerance) {
  return decoded.sizes() == source.sizes() &&
         (decoded.to(torch::kInt) - source.to(torch::kInt)).abs().max().item<int>() <= tolerance;
}

struct tiny_tree {
  std::vector<std::string> wnids_file_order{"n0300", "n0100", "n0200"};  // sorted: 0100 0200 0300
  std::vector<torch::Tensor> train_images;  // [3, 64, 64] each, in load order (sorted wnid, file)
  std::vector<int64_t> train_labels;
  std::vector<torch::Tensor> val_images;    // in annotation order
  std::vector<int64_t> val_labels;
};

/// A TinyImageNet tree under dir/tiny-imagenet-200 with a few grayscale images.
tiny_tree write_tiny_imagenet(const fs::path& root) {
  tiny_tree t;
  const auto dir = root / "tiny-imagenet-200";
  fs::create_directories(dir);
  {
    std::ofstream w(dir / "wnids.txt");
    for (const auto& id : t.wnids_file_order) w << id << "\r\n";  // CRLF lines are accepted
  }
  const std::vector<std::string> sorted{"n0100", "n0200", "n0300"};
  int64_t id = 0;
  for (int64_t k = 0; k < 3; ++k) {
    for (int i = 0; i < 3; ++i, ++id) {
      const bool gray = (id % 4) == 1;
      auto img = smooth_image(gray ? 1 : 3, 64, id);
      write_file(dir / "train" / sorted[static_cast<size_t>(k)] / "images" /
                     (sorted[static_cast<size_t>(k)] + "_" + std::to_string(i) + ".JPEG"),
                 encode_jpeg(img));
      t.train_images.push_back(gray ? img.expand({3, 64, 64}).contiguous() : img);
      t.train_labels.push_back(k);
    }
  }
  fs::create_directories(dir / "val" / "images");
  std::ofstream ann(dir / "val" / "val_annotations.txt");
  const std::vector<int64_t> val_classes{2, 0, 1, 2};
  for (size_t i = 0; i < val_classes.size(); ++i, ++id) {
    const bool gray = i == 2;
    auto img = smooth_image(gray ? 1 : 3, 64, id);
    const auto name = "val_" + std::to_string(i) + ".JPEG";
    write_file(dir / "val" / "images" / name, encode_jpeg(img));
    ann << name << '\t' << sorted[static_cast<size_t>(val_classes[i])] << "\t0\t5\t60\t62\n";
    t.val_images.push_back(gray ? img.expand({3, 64, 64}).contiguous() : img);
    t.val_labels.push_back(val_classes[i]);
  }
  return t;
}

void write_cifar(const fs::path& path, const std::vector<std::vector<uint8_t>>& labels,
                 const std::vector<std::vector<uint8_t>>& pixels) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < labels.size(); ++i) {
    bytes.insert(bytes.end(), labels[i].begin(), labels[i].end());
    bytes.insert(bytes.end(), pixels[i].begin(), pixels[i].end());
  }
  write_file(path, bytes);
}

}  // namespace

// ---- Fashion-MNIST ---------------------------------------------------------------------------

TEST_CASE("Fashion-MNIST IDX files are read from .gz and from uncompressed files", "[data]") {
  temp_dir tmp("fmnist");
  const auto train = write_fashion(tmp.path, "train", 7, 11);
  const auto test = write_fashion(tmp.path, "t10k", 3, 12);
  auto d = load_fashion_mnist(tmp.path, part::train);
  check_fashion(d, train);
  CHECK(d.name == "fashion-mnist/train");
  check_fashion(load_fashion_mnist(tmp.path, part::test), test);

  temp_dir plain("fmnist_plain");
  const auto raw = write_fashion(plain.path, "train", 4, 13, /*gz=*/false);
  check_fashion(load_fashion_mnist(plain.path, part::train), raw);
  // Through the registry, by name.
  check_fashion(load_dataset("fashion-mnist", plain.path, "train"), raw);
}

TEST_CASE("Fashion-MNIST: every bad input names the file and what was expected", "[data]") {
  temp_dir tmp("fmnist_bad");
  const auto dir = tmp.path;
  expect_error([&] { (void)load_fashion_mnist(dir / "nowhere"); }, "does not exist");
  expect_error([&] { (void)load_fashion_mnist(dir); }, "train-labels-idx1-ubyte.gz");

  const auto labels_path = dir / "train-labels-idx1-ubyte.gz";
  const auto images_path = dir / "train-images-idx3-ubyte.gz";
  const auto pixels = random_bytes(5 * 28 * 28, 256, 3);
  const auto labels = random_bytes(5, 10, 4);
  auto images_ok = [&] { write_gz(images_path, idx(2051, {5, 28, 28}, pixels)); };
  auto labels_ok = [&] { write_gz(labels_path, idx(2049, {5}, labels)); };

  labels_ok();
  expect_error([&] { (void)load_fashion_mnist(dir); }, "train-images-idx3-ubyte.gz");

  // Wrong magic: the labels file where the images belong, and vice versa.
  write_gz(images_path, idx(2049, {5}, labels));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "magic number 2049, expected 2051");
  images_ok();
  write_gz(labels_path, idx(2051, {5, 28, 28}, pixels));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "magic number 2051, expected 2049");

  // Counts and sizes.
  labels_ok();
  write_gz(images_path, idx(2051, {4, 28, 28}, std::vector<uint8_t>(pixels.begin(), pixels.begin() + 4 * 784)));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "holds 4 images, expected 5");
  write_gz(images_path, idx(2051, {5, 27, 28}, std::vector<uint8_t>(pixels.begin(), pixels.begin() + 5 * 27 * 28)));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "27x28 images, expected 28x28");

  // Truncation: fewer pixels than the header promises, a header cut short, a cut gzip stream.
  write_gz(images_path, idx(2051, {5, 28, 28}, std::vector<uint8_t>(pixels.begin(), pixels.end() - 100)));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "is truncated: expected 3920 bytes of pixels");
  write_gz(images_path, {0, 0, 8, 3, 0, 0});
  expect_error([&] { (void)load_fashion_mnist(dir); }, "is truncated");
  write_gz(labels_path, idx(2049, {9}, labels));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "promises 9 labels, the file holds 5");
  labels_ok();
  images_ok();
  auto gz = read_all(images_path);
  write_file(images_path, std::vector<uint8_t>(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2)));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "train-images-idx3-ubyte.gz' is truncated");

  // Extra bytes after the data: the header's count would be wrong.
  auto extra = pixels;
  extra.push_back(7);
  write_gz(images_path, idx(2051, {5, 28, 28}, extra));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "bytes after the data");

  // Label out of range.
  images_ok();
  auto bad_labels = labels;
  bad_labels[3] = 10;
  write_gz(labels_path, idx(2049, {5}, bad_labels));
  expect_error([&] { (void)load_fashion_mnist(dir); }, "label 10 of sample 3 out of range [0, 10)");

  // Not gzip at all but with a .gz name: read as a plain file, so the magic is wrong.
  write_file(labels_path, {'h', 'e', 'l', 'l', 'o', '!', '!', '!'});
  expect_error([&] { (void)load_fashion_mnist(dir); }, "magic number");
  // A gzip header followed by garbage.
  write_file(labels_path, {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  expect_error([&] { (void)load_fashion_mnist(dir); }, "train-labels-idx1-ubyte.gz");
}

TEST_CASE("the real Fashion-MNIST (Debian's dataset-fashion-mnist) loads whole", "[data]") {
  if (!fs::is_directory(fashion_mnist_default_dir)) {
    WARN("no " << fashion_mnist_default_dir << " (apt-get install dataset-fashion-mnist): skipped");
    return;
  }
  const auto train = load_dataset("fashion-mnist", "", "train");
  const auto test = load_dataset("fashion-mnist", "", "test");
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.classes == 10);
  CHECK(train.images.sizes() == torch::IntArrayRef({60000, 1, 28, 28}));
  // Balanced classes: 6,000 and 1,000 of each.
  CHECK(torch::equal(torch::bincount(train.labels), torch::full({10}, 6000, torch::kLong)));
  CHECK(torch::equal(torch::bincount(test.labels), torch::full({10}, 1000, torch::kLong)));
  // The hard-coded normalization constants are this training set's statistics (a histogram
  // of the bytes: exact, and cheaper than converting 47M pixels to floating point).
  std::array<int64_t, 256> count{};
  const auto* p = train.images.data_ptr<uint8_t>();
  for (int64_t i = 0; i < train.images.numel(); ++i) ++count[p[i]];
  double sum = 0, sum_sq = 0;
  for (int v = 0; v < 256; ++v) {
    sum += static_cast<double>(count[static_cast<size_t>(v)]) * v / 255.0;
    sum_sq += static_cast<double>(count[static_cast<size_t>(v)]) * (v / 255.0) * (v / 255.0);
  }
  const double n = static_cast<double>(train.images.numel()), mean = sum / n;
  CHECK(mean == Approx(fashion_mnist_mean).margin(1e-8));
  CHECK(std::sqrt(sum_sq / n - mean * mean) == Approx(fashion_mnist_stdev).margin(1e-8));
}

// ---- CIFAR -----------------------------------------------------------------------------------

TEST_CASE("CIFAR-10 and CIFAR-100 binary records are read back exactly", "[data]") {
  temp_dir tmp("cifar");
  // CIFAR-10 inside the directory the archive unpacks to; record counts differ per batch.
  const auto dir10 = tmp.path / "cifar-10-batches-bin";
  std::vector<uint8_t> all_labels;
  std::vector<uint8_t> all_pixels;
  const std::vector<int> counts{2, 3, 1, 2, 2};
  for (size_t b = 0; b < counts.size(); ++b) {
    std::vector<std::vector<uint8_t>> labels, pixels;
    for (int i = 0; i < counts[b]; ++i) {
      labels.push_back(random_bytes(1, 10, 100 + b * 10 + static_cast<uint64_t>(i)));
      pixels.push_back(random_bytes(3072, 256, 200 + b * 10 + static_cast<uint64_t>(i)));
      all_labels.push_back(labels.back()[0]);
      all_pixels.insert(all_pixels.end(), pixels.back().begin(), pixels.back().end());
    }
    write_cifar(dir10 / ("data_batch_" + std::to_string(b + 1) + ".bin"), labels, pixels);
  }
  const auto test_pixels = random_bytes(3072, 256, 9);
  write_cifar(dir10 / "test_batch.bin", {{9}}, {test_pixels});

  auto train = load_cifar10(tmp.path, part::train);
  CHECK(train.name == "cifar10/train");
  REQUIRE(train.size() == 10);
  CHECK(train.images.sizes() == torch::IntArrayRef({10, 3, 32, 32}));
  CHECK(torch::equal(train.images.flatten(), as_tensor(all_pixels)));
  CHECK(torch::equal(train.labels, as_tensor(all_labels).to(torch::kLong)));
  CHECK(train.classes == 10);
  CHECK(train.mean == cifar10_mean);
  // The files directly in the given directory work too.
  auto test = load_cifar10(dir10, part::test);
  REQUIRE(test.size() == 1);
  CHECK(test.labels[0].item<int64_t>() == 9);
  CHECK(torch::equal(test.images.flatten(), as_tensor(test_pixels)));
  CHECK(torch::equal(load_dataset("cifar10", tmp.path, "train").images, train.images));

  // CIFAR-100: coarse then fine label byte.
  const auto dir100 = tmp.path / "cifar-100-binary";
  std::vector<std::vector<uint8_t>> labels{{3, 77}, {19, 99}, {0, 0}};
  std::vector<std::vector<uint8_t>> pixels{random_bytes(3072, 256, 1), random_bytes(3072, 256, 2),
                                           random_bytes(3072, 256, 3)};
  write_cifar(dir100 / "train.bin", labels, pixels);
  write_cifar(dir100 / "test.bin", {{5, 55}}, {pixels[0]});
  auto fine = load_cifar100(tmp.path, part::train);
  auto coarse = load_cifar100(tmp.path, part::train, cifar100_labels::coarse);
  CHECK(fine.classes == 100);
  CHECK(coarse.classes == 20);
  CHECK(torch::equal(fine.labels, torch::tensor({77, 99, 0}, torch::kLong)));
  CHECK(torch::equal(coarse.labels, torch::tensor({3, 19, 0}, torch::kLong)));
  CHECK(torch::equal(fine.images[1].flatten(), as_tensor(pixels[1])));
  CHECK(torch::equal(fine.images, coarse.images));
  CHECK(fine.stdev == cifar100_stdev);
  CHECK(load_dataset("cifar100", tmp.path, "test").labels[0].item<int64_t>() == 55);
  CHECK(load_dataset("cifar100-coarse", tmp.path, "test").labels[0].item<int64_t>() == 5);
}

TEST_CASE("CIFAR: missing, truncated and out-of-range files name the file", "[data]") {
  temp_dir tmp("cifar_bad");
  const auto dir = tmp.path;
  expect_error([&] { (void)load_cifar10(dir / "absent"); }, "does not exist");
  const auto px = random_bytes(3072, 256, 5);
  for (int b : {1, 2, 4, 5}) write_cifar(dir / ("data_batch_" + std::to_string(b) + ".bin"), {{1}}, {px});
  expect_error([&] { (void)load_cifar10(dir); }, "missing file '" + (dir / "data_batch_3.bin").string());
  expect_error([&] { (void)load_cifar10(dir, part::test); }, "test_batch.bin");

  write_cifar(dir / "data_batch_3.bin", {{1}, {2}}, {px, std::vector<uint8_t>(px.begin(), px.end() - 1)});
  expect_error([&] { (void)load_cifar10(dir); }, "data_batch_3.bin' has 6145 bytes, expected a positive multiple of the 3073-byte");
  write_file(dir / "data_batch_3.bin", {});
  expect_error([&] { (void)load_cifar10(dir); }, "data_batch_3.bin' has 0 bytes");
  write_cifar(dir / "data_batch_3.bin", {{1}, {10}}, {px, px});
  expect_error([&] { (void)load_cifar10(dir); }, "data_batch_3.bin': label 10 of record 1 out of range [0, 10)");

  write_cifar(dir / "train.bin", {{20, 5}}, {px});
  expect_error([&] { (void)load_cifar100(dir); }, "train.bin': label 20 of record 0 out of range [0, 20)");
  write_cifar(dir / "train.bin", {{2, 100}}, {px});
  expect_error([&] { (void)load_cifar100(dir, part::train, cifar100_labels::coarse); }, "label 100 of record 0 out of range [0, 100)");
  // A CIFAR-10 file is not a CIFAR-100 one: 3073-byte records are not 3074-byte records.
  write_cifar(dir / "train.bin", {{1}, {2}}, {px, px});
  expect_error([&] { (void)load_cifar100(dir); }, "3074-byte cifar100 record");
}

// ---- JPEG and TinyImageNet ---------------------------------------------------------------------

TEST_CASE("decode_jpeg: colour and grayscale JPEGs decode to RGB close to what was encoded", "[data]") {
  const auto rgb = smooth_image(3, 20, 1);
  const auto decoded = decode_jpeg(encode_jpeg(rgb), "rgb.jpg");
  CHECK(near(decoded, rgb, 4));
  const auto gray = smooth_image(1, 17, 2);
  const auto as_rgb = decode_jpeg(encode_jpeg(gray), "gray.jpg");
  REQUIRE(as_rgb.sizes() == torch::IntArrayRef({3, 17, 17}));
  CHECK(torch::equal(as_rgb[0], as_rgb[1]));
  CHECK(torch::equal(as_rgb[0], as_rgb[2]));
  CHECK(near(as_rgb.slice(0, 0, 1), gray, 2));

  expect_error([&] { (void)decode_jpeg({}, "empty.jpg"); }, "'empty.jpg': malformed JPEG");
  expect_error([&] { (void)decode_jpeg(random_bytes(300, 256, 1), "noise.jpg"); },
               "'noise.jpg': malformed JPEG (libjpeg: Not a JPEG file");
  auto bytes = encode_jpeg(rgb);
  bytes.resize(bytes.size() * 2 / 3);  // libjpeg only warns and fills in gray: an error here
  expect_error([&] { (void)decode_jpeg(bytes, "cut.jpg"); }, "'cut.jpg': malformed JPEG (libjpeg: Premature end");
  // A header claiming 65500x65500 pixels is refused before 12.8 GB are allocated.
  auto huge = encode_jpeg(rgb);
  const std::array<uint8_t, 2> sof0{0xff, 0xc0};  // baseline frame header
  const auto sof = std::search(huge.begin(), huge.end(), sof0.begin(), sof0.end());
  REQUIRE(sof != huge.end());
  for (int i : {5, 7}) {  // height, then width: big-endian 65500
    sof[i] = 0xff;
    sof[i + 1] = 0xdc;
  }
  expect_error([&] { (void)decode_jpeg(huge, "huge.jpg"); }, "image is 65500x65500, more than the");
}

TEST_CASE("TinyImageNet: train and val trees decode in parallel, labels by sorted wnid", "[data]") {
  temp_dir tmp("tiny");
  const auto t = write_tiny_imagenet(tmp.path);
  CHECK(tiny_imagenet_wnids(tmp.path / "tiny-imagenet-200") ==
        std::vector<std::string>{"n0100", "n0200", "n0300"});

  auto train = load_tiny_imagenet(tmp.path, part::train, 2);
  CHECK(train.name == "tinyimagenet/train");
  REQUIRE(train.size() == static_cast<int64_t>(t.train_images.size()));
  CHECK(train.classes == 3);
  CHECK(train.images.sizes() == torch::IntArrayRef({9, 3, 64, 64}));
  CHECK(torch::equal(train.labels, torch::tensor(t.train_labels, torch::kLong)));
  for (int64_t i = 0; i < train.size(); ++i) {
    INFO("train image " << i);
    CHECK(near(train.images[i], t.train_images[static_cast<size_t>(i)], 4));
  }
  // Grayscale files came out with three equal channels.
  CHECK(torch::equal(train.images[1][0], train.images[1][2]));
  // One thread gives the same bytes as many.
  CHECK(torch::equal(load_tiny_imagenet(tmp.path, part::train, 1).images, train.images));

  auto val = load_dataset("tinyimagenet", tmp.path / "tiny-imagenet-200", "val");
  CHECK(val.name == "tinyimagenet/test");
  REQUIRE(val.size() == 4);
  CHECK(torch::equal(val.labels, torch::tensor(t.val_labels, torch::kLong)));
  for (int64_t i = 0; i < val.size(); ++i) CHECK(near(val.images[i], t.val_images[static_cast<size_t>(i)], 4));
  CHECK(val.mean == tiny_imagenet_mean);
}

TEST_CASE("TinyImageNet: corrupt or missing files are errors naming the file", "[data]") {
  temp_dir tmp("tiny_bad");
  write_tiny_imagenet(tmp.path);
  const auto dir = tmp.path / "tiny-imagenet-200";
  const auto train_dir = dir / "train" / "n0200" / "images";
  const auto good = read_all(train_dir / "n0200_0.JPEG");

  // Corrupt files: the first bad one in file order is reported, whatever the thread timing.
  write_file(train_dir / "n0200_1.JPEG", random_bytes(500, 256, 8));
  write_file(dir / "train" / "n0300" / "images" / "n0300_0.JPEG", {});
  for (int threads : {1, 2, 4})
    expect_error([&] { (void)load_tiny_imagenet(tmp.path, part::train, threads); },
                 (train_dir / "n0200_1.JPEG").string() + "': malformed JPEG (libjpeg: Not a JPEG file");
  write_file(train_dir / "n0200_1.JPEG", std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(good.size() / 2)));
  expect_error([&] { (void)load_tiny_imagenet(tmp.path); }, "n0200_1.JPEG': malformed JPEG (libjpeg: Premature end");
  write_file(train_dir / "n0200_1.JPEG", good);
  expect_error([&] { (void)load_tiny_imagenet(tmp.path); }, "n0300_0.JPEG': malformed JPEG");
  write_file(dir / "train" / "n0300" / "images" / "n0300_0.JPEG", encode_jpeg(smooth_image(3, 32, 0)));
  expect_error([&] { (void)load_tiny_imagenet(tmp.path); }, "n0300_0.JPEG': image is 32x32, expected 64x64");
  write_file(dir / "train" / "n0300" / "images" / "n0300_0.JPEG", good);
  CHECK(load_tiny_imagenet(tmp.path).size() == 9);

  // Missing pieces of the tree.
  fs::remove_all(dir / "train" / "n0100");
  expect_error([&] { (void)load_tiny_imagenet(tmp.path); }, "missing directory '" + (dir / "train" / "n0100" / "images").string());
  fs::remove(dir / "val" / "images" / "val_1.JPEG");
  expect_error([&] { (void)load_tiny_imagenet(tmp.path, part::test); }, "missing file '" + (dir / "val" / "images" / "val_1.JPEG").string());
  {
    std::ofstream ann(dir / "val" / "val_annotations.txt");
    ann << "val_0.JPEG\tn0999\t0\t0\t1\t1\n";
  }
  expect_error([&] { (void)load_tiny_imagenet(tmp.path, part::test); }, "line 1: class id 'n0999' is not in wnids.txt");
  {
    std::ofstream ann(dir / "val" / "val_annotations.txt");
    ann << "val_0.JPEG\tn0100\t0\t0\t1\t1\nval_2.JPEG n0100\n";
  }
  expect_error([&] { (void)load_tiny_imagenet(tmp.path, part::test); }, "line 2: expected '<file>\\t<wnid>");
  fs::remove(dir / "val" / "val_annotations.txt");
  expect_error([&] { (void)load_tiny_imagenet(tmp.path, part::test); }, "missing file '" + (dir / "val" / "val_annotations.txt").string());
  {
    std::ofstream w(dir / "wnids.txt");
    w << "n0100\nn0200\nn0100\n";
  }
  expect_error([&] { (void)load_tiny_imagenet(tmp.path); }, "lists class id 'n0100' twice");
  fs::remove(dir / "wnids.txt");
  expect_error([&] { (void)load_tiny_imagenet(tmp.path); }, "missing file '" + (dir / "wnids.txt").string());
  expect_error([&] { (void)load_tiny_imagenet(tmp.path / "absent"); }, "tinyimagenet: dataset directory");
}

// ---- registry --------------------------------------------------------------------------------

TEST_CASE("load_dataset: unknown names and parts list what is known", "[data]") {
  expect_error([] { (void)load_dataset("imagenet", "/tmp", "train"); },
               "unknown dataset 'imagenet': expected one of fashion-mnist, cifar10, cifar100, cifar100-coarse, tinyimagenet");
  expect_error([] { (void)load_dataset("cifar10", "/tmp", "validation"); },
               "unknown dataset part 'validation': expected 'train', 'test' or 'val'");
  expect_error([] { (void)load_dataset("cifar10", "", part::train); }, "needs the directory");
  CHECK(parse_part("val") == part::test);
  CHECK(parse_part("train") == part::train);
}
