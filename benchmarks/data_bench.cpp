// How long data takes, and whether training waits on it:
//   1. reading Fashion-MNIST from Debian's .gz files (skipped when absent);
//   2. reading CIFAR-10's binary files and decoding a TinyImageNet-shaped JPEG tree, both
//      written here from synthetic images (the real archives are not on this machine);
//   3. batch_loader throughput with the CIFAR augmentation (crop 4 + flip) at batch 128,
//      on CIFAR-shaped synthetic data: on the calling thread, and prefetched;
//   4. one epoch in which every step is a forward + backward + SGD step of a small conv net:
//      the fraction of the epoch spent in loader.next() waiting for the prefetched batch.
// Run: ./build/benchmarks/data_bench [--train-samples N] [--jpegs N] [--repeats N]
//                                    [--only read|loader|train]   (--help: defaults)
//      (LINEARIZE_ALLOCATOR=default: glibc defaults; LINEARIZE_THREADS=N: intra-op threads)
#include "../examples/cli.hpp"

#include <linearize/data/loader.hpp>
#include <linearize/data/registry.hpp>
#include <linearize/support/format.hpp>
#include <linearize/support/runtime.hpp>

#include <fmt/format.h>
#include <torch/torch.h>

#include <jpeglib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using namespace linearize;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Runs f `repeats` times; returns the fastest and the median time in seconds.
template <class F>
std::pair<double, double> time_it(int repeats, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

void row(const std::string& what, const std::string& value) {
  std::printf("  %-58s %s\n", what.c_str(), value.c_str());
}

void write_bytes(const fs::path& path, const void* data, size_t n) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

/// A 64x64 RGB JPEG at libjpeg's default quality 75 with 4:2:0 chroma, as TinyImageNet's are.
std::vector<uint8_t> encode_jpeg(const torch::Tensor& hwc) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = cinfo.image_height = 64;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  auto* base = hwc.data_ptr<uint8_t>();
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW r = base + static_cast<int64_t>(cinfo.next_scanline) * 64 * 3;
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

data::image_dataset synthetic_cifar(int64_t n) {
  data::image_dataset d;
  d.name = "synthetic-cifar";
  d.images = torch::randint(0, 256, {n, 3, 32, 32}, torch::kLong).to(torch::kByte);
  d.labels = torch::randint(0, 10, {n}, torch::kLong);
  d.classes = 10;
  d.mean = data::cifar10_mean;
  d.stdev = data::cifar10_stdev;
  return d;
}

struct small_convnet : torch::nn::Module {
  torch::nn::Conv2d c1{torch::nn::Conv2dOptions(3, 32, 3).padding(1)};
  torch::nn::Conv2d c2{torch::nn::Conv2dOptions(32, 64, 3).padding(1)};
  torch::nn::Conv2d c3{torch::nn::Conv2dOptions(64, 128, 3).padding(1)};
  torch::nn::Linear fc{128, 10};
  small_convnet() {
    register_module("c1", c1);
    register_module("c2", c2);
    register_module("c3", c3);
    register_module("fc", fc);
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(c1(x)), 2);
    x = torch::max_pool2d(torch::relu(c2(x)), 2);
    x = torch::adaptive_avg_pool2d(torch::relu(c3(x)), {1, 1}).flatten(1);
    return fc(x);
  }
};

struct options {
  int64_t train_samples = 10'000, jpegs = 4'000;
  int repeats = 3;
  std::string only;  ///< read | loader | train: run one section
};

void reading(const options& opt) {
  std::printf("Reading (best / median of %d, warm page cache):\n", opt.repeats);
  if (fs::is_directory(data::fashion_mnist_default_dir)) {
    const auto [best, median] = time_it(opt.repeats, [] {
      (void)data::load_fashion_mnist("", data::part::train);
      (void)data::load_fashion_mnist("", data::part::test);
    });
    const double mb = 70'000.0 * 794 / 1e6;  // pixels + labels, decompressed
    row("Fashion-MNIST train+test from .gz (70,000 images)",
        fmt::format("{:.3f} / {:.3f} s", best, median) +
            fmt::format("  ({:.0f} MB/s decompressed)", mb / best));
  } else {
    row("Fashion-MNIST", std::string("skipped: no ") + data::fashion_mnist_default_dir);
  }
  const fs::path tmp =
      fs::temp_directory_path() / ("linearize_data_bench_" + std::to_string(::getpid()));
  fs::create_directories(tmp);

  {  // CIFAR-10 binary: 5 x 10,000 records of 1 label byte + 3072 pixels.
    const auto dir = tmp / "cifar-10-batches-bin";
    const auto bytes = torch::randint(0, 256, {10'000, 3073}, torch::kLong).to(torch::kByte);
    bytes.select(1, 0).remainder_(10);
    for (int b = 1; b <= 5; ++b)
      write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), bytes.data_ptr(),
                  static_cast<size_t>(bytes.numel()));
    const auto [best, median] = time_it(opt.repeats, [&] { (void)data::load_cifar10(tmp); });
    row("CIFAR-10 train, binary (50,000 images, synthetic)",
        fmt::format("{:.3f} / {:.3f} s", best, median) + fmt::format("  ({:.0f} MB/s)", 153.65 / best));
  }

  {  // A TinyImageNet-shaped tree: 10 classes, opt.jpegs 64x64 JPEGs.
    const auto dir = tmp / "tiny-imagenet-200";
    fs::create_directories(dir);
    std::ofstream list(dir / "wnids.txt");
    const int64_t classes = 10;
    for (int64_t k = 0; k < classes; ++k) list << "n" << 1000 + k << "\n";
    list.close();
    for (int64_t i = 0; i < opt.jpegs; ++i) {
      // Natural-image-like content: low-frequency noise upsampled, so files are a few KB.
      auto small = torch::randint(0, 256, {1, 3, 8, 8}, torch::kFloat);
      auto img = torch::upsample_bilinear2d(small, {64, 64}, false)[0].permute({1, 2, 0});
      const auto hwc = img.round().clamp(0, 255).to(torch::kByte).contiguous();
      const auto wnid = "n" + std::to_string(1000 + i % classes);
      const auto jpeg = encode_jpeg(hwc);
      write_bytes(dir / "train" / wnid / "images" / (wnid + "_" + std::to_string(i) + ".JPEG"),
                  jpeg.data(), jpeg.size());
    }
    const auto n = static_cast<double>(opt.jpegs);
    const auto [best, median] = time_it(opt.repeats, [&] { (void)data::load_tiny_imagenet(tmp); });
    row("TinyImageNet-shaped tree, " + std::to_string(opt.jpegs) + " 64x64 JPEGs, all threads",
        fmt::format("{:.3f} / {:.3f} s", best, median) +
            fmt::format("  ({:.0f} images/s, 110k in ~{:.0f} s)", n / best, 110'000.0 * best / n));
    const auto [best1, median1] = time_it(
        opt.repeats, [&] { (void)data::load_tiny_imagenet(tmp, data::part::train, 1); });
    row("  same, one thread",
        fmt::format("{:.3f} / {:.3f} s", best1, median1) + fmt::format("  ({:.0f} images/s)", n / best1));
  }
  fs::remove_all(tmp);
}

void loading(const options& opt) {
  std::printf("\nbatch_loader, CIFAR augmentation (pad-4 crop + flip), batch 128, 50,000 "
              "synthetic 3x32x32 (best / median of %d):\n", opt.repeats);
  data::batch_loader loader(synthetic_cifar(50'000),
                            {.batch_size = 128, .augment = data::cifar_augmentation, .seed = 1});
  const int64_t batches = loader.batches_per_epoch();
  const auto [best, median] = time_it(opt.repeats, [&] {
    for (int64_t b = 0; b < batches; ++b) (void)loader.make(0, b);
  });
  row("make() on the calling thread, one epoch",
      fmt::format("{:.3f} / {:.3f} s", best, median) + fmt::format("  ({:.0f} images/s)", 50'000 / best));
  // What prefetching does, minus the overlap: each batch made on a fresh std::async thread.
  const auto [abest, amedian] = time_it(opt.repeats, [&] {
    for (int64_t b = 0; b < batches; ++b)
      (void)std::async(std::launch::async, [&] { return loader.make(0, b); }).get();
  });
  row("make() on a fresh std::async thread per batch, one epoch",
      fmt::format("{:.3f} / {:.3f} s", abest, amedian) + fmt::format("  ({:.0f} images/s)", 50'000 / abest));
  int64_t epoch = 0;
  const auto [pbest, pmedian] = time_it(opt.repeats, [&] {
    loader.start_epoch(epoch++);
    while (auto b = loader.next()) (void)b;
  });
  row("next() with prefetch, no training, one epoch",
      fmt::format("{:.3f} / {:.3f} s", pbest, pmedian) + fmt::format("  ({:.0f} images/s)", 50'000 / pbest));
}

void training(const options& opt) {
  fmt::print("\nOne training epoch ({} synthetic CIFAR samples, batch 128, small conv net "
             "forward + backward + SGD step):\n", grouped(opt.train_samples));
  torch::manual_seed(0);
  small_convnet net;
  torch::optim::SGD sgd(net.parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  data::batch_loader loader(synthetic_cifar(opt.train_samples),
                            {.batch_size = 128, .augment = data::cifar_augmentation, .seed = 2});
  auto step = [&](const data::batch& b) {
    sgd.zero_grad();
    auto loss = torch::cross_entropy_loss(net.forward(b.images), b.labels);
    loss.backward();
    sgd.step();
  };
  loader.start_epoch(0);  // warm-up: first-touch allocations, thread pools
  for (int i = 0; i < 3; ++i)
    if (auto b = loader.next()) step(*b);
  const double wait0 = loader.wait_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  loader.start_epoch(1);
  int64_t steps = 0;
  while (auto b = loader.next()) {
    step(*b);
    ++steps;
  }
  const double epoch_s = seconds_since(t0), wait_s = loader.wait_seconds() - wait0;
  row("epoch time", fmt::format("{:.3f} s ({:.1f} ms/step)", epoch_s, 1e3 * epoch_s / static_cast<double>(steps)));
  row("loader.wait_seconds() over the epoch", fmt::format("{:.4f} s", wait_s));
  row("fraction of the epoch waiting on data", fmt::format("{:.2f} %", 100.0 * wait_s / epoch_s));
}

}  // namespace

int main(int argc, char** argv) {
  cli::app app{"How long data takes, and whether training waits on it: dataset reading, batch_loader "
               "throughput, and the time a training epoch spends waiting for batches.", "data_bench"};
  options opt;
  app.add_option("--train-samples", opt.train_samples, "synthetic samples of the training section")
      ->check(cli::at_least<int64_t>(128));
  app.add_option("--jpegs", opt.jpegs, "JPEGs of the TinyImageNet-shaped tree")->check(cli::at_least<int64_t>(10));
  app.add_option("--repeats", opt.repeats, "timed repetitions (best and median reported)")->check(cli::at_least(1));
  app.add_option("--only", opt.only, "run one section: read, loader or train (default: all)")
      ->check(cli::one_of({"read", "loader", "train"}));
  return cli::run(app, argc, argv, [&] {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const auto rt = runtime::configure();
    std::printf("data_bench: %d intra-op threads, %u hardware threads, allocator: %s\n\n", rt.threads,
                std::thread::hardware_concurrency(), rt.allocator_name().c_str());
    if (opt.only.empty() || opt.only == "read") reading(opt);
    if (opt.only.empty() || opt.only == "loader") loading(opt);
    if (opt.only.empty() || opt.only == "train") training(opt);
    return 0;
  });
}
