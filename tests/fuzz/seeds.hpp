#pragma once
// The valid seed inputs of each fuzz target, written with the library's own writers (and
// libjpeg and zlib for the formats the library only reads). `afl_fuzz_target --seeds DIR`
// writes them; tests/fuzz/corpus holds them with the malformed cases beside them.
#include "targets.hpp"

#include <jpeglib.h>
#include <zlib.h>

#include <cstdio>
#include <sstream>

namespace linearize::fuzz {

/// An RGB (or grayscale) JPEG of h x w pixels: a smooth gradient, quality 75.
inline std::string encode_jpeg(int h, int w, bool gray) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  jpeg_mem_dest(&cinfo, &out, &out_size);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = gray ? 1 : 3;
  cinfo.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 75, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<unsigned char> row(static_cast<size_t>(w * cinfo.input_components));
  while (cinfo.next_scanline < cinfo.image_height) {
    const auto y = static_cast<int>(cinfo.next_scanline);
    for (size_t i = 0; i < row.size(); ++i) row[i] = static_cast<unsigned char>(4 * y + 2 * i);
    JSAMPROW rows[1] = {row.data()};
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string bytes(reinterpret_cast<const char*>(out), out_size);
  jpeg_destroy_compress(&cinfo);
  std::free(out);
  return bytes;
}

inline std::string gzip(const fs::path& scratch_file, const std::string& bytes) {
  gzFile f = gzopen(scratch_file.c_str(), "wb9");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  return read_file(scratch_file);
}

inline std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

inline void write_seeds(const fs::path& corpus) {
  const auto put = [&](const char* target, const std::string& name, const std::string& bytes) {
    write_bytes(corpus / target / name, bytes);
  };
  const auto tmp = fresh_dir("seeds");

  // IDX: 2 images of 28x28, 5 labels; raw and gzip.
  std::string pixels(2 * 28 * 28, '\0');
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>(i * 7);
  const auto images = be32(2051) + be32(2) + be32(28) + be32(28) + pixels;
  put("idx_images", "valid_raw", images);
  put("idx_images", "valid.gz", gzip(tmp / "i.gz", images));
  const auto labels = be32(2049) + be32(5) + std::string("\x00\x03\x09\x01\x05", 5);
  put("idx_labels", "valid_raw", labels);
  put("idx_labels", "valid.gz", gzip(tmp / "l.gz", labels));

  // CIFAR: one CIFAR-10 record (3073 bytes), one CIFAR-100 record (3074 bytes).
  std::string record(3074, '\0');
  for (size_t i = 0; i < record.size(); ++i) record[i] = static_cast<char>(i * 13);
  record[0] = 7;
  record[1] = 42;
  put("cifar", "valid_cifar10", record.substr(0, 3073));
  put("cifar", "valid_cifar100", record);

  // JPEG: RGB and grayscale, small.
  put("jpeg", "valid_rgb_16x12", encode_jpeg(16, 12, false));
  put("jpeg", "valid_gray_8x8", encode_jpeg(8, 8, true));

  // TinyImageNet validation part: two classes, one image.
  put("tiny_imagenet", "valid",
      std::string("n01443537\nn01629819\n") + '\0' +
          "val_0.JPEG\tn01629819\t0\t0\t63\t63\n" + '\0' + encode_jpeg(64, 64, false));

  // A mask file of MaskNet with some entries zero.
  {
    MaskNet net;
    MaskSet masks(*net);
    auto bits = torch::ones({masks.entries()});
    bits.index_put_({torch::arange(0, masks.entries(), 3)}, 0);
    masks.harden(bits);
    masks.save(tmp / "net.mask");
    put("mask", "valid", read_file(tmp / "net.mask"));
  }

  // A checkpoint of the tiny network after one SGD step (optimizer state present): the payload
  // alone (the target adds the header) and the whole file.
  {
    auto net = tiny_net();
    auto sgd = tiny_sgd(*net);
    const auto x = torch::rand({4, 1, 6, 6});
    sgd->zero_grad();
    net->forward(x).sum().backward();
    sgd->step();
    train::run_state state;
    state.epoch = 1;
    state.step = 2;
    state.global_step = 5;
    state.values["lambda"] = 0.5;
    train::epoch_record row;
    row.epoch = 1;
    row.train_loss = 1.25;
    state.rows.push_back(row);
    state.elapsed_seconds = 3.5;
    train::save_checkpoint(tmp / "run.ckpt", *net, *sgd,
                           {.seed = 1, .batch_size = 4, .steps_per_epoch = 3, .optimizer = "sgd"},
                           state);
    const auto file = read_file(tmp / "run.ckpt");
    const auto second = file.find('\n', file.find('\n') + 1);
    put("checkpoint", "valid_payload", file.substr(second + 1));
    put("checkpoint", "valid_file", file);
  }

  // A baseline record.
  {
    train::baseline_record r;
    r.complete = true;
    r.model = "tiny_conv(width=2, classes=3)";
    r.dataset = "stripes";
    r.classes = 3;
    r.channels = 1;
    r.image_height = r.image_width = 6;
    r.train_samples = 60;
    r.held_out_samples = 12;
    r.test_samples = 20;
    r.best_epoch = 2;
    r.held_out_top1 = 0.75;
    r.test_top1 = 0.7;
    r.relu_count = 72;
    r.seconds_per_epoch = 0.01;
    r.threads = 1;
    r.weights = "weights.pt";
    r.weights_fnv1a = "0123456789abcdef";
    train::detail::write_record(tmp / "weights.json", r);
    put("baseline", "valid", read_file(tmp / "weights.json"));
  }

  // Results with an extra column and a missing measurement.
  {
    io::result_row a;
    a.method = "snl";
    a.budget = 0.5;
    a.relu_count = 36;
    a.accuracy = 0.81;
    a.pi_latency_s = 1.5;
    a.wall_time_s = 12;
    a.images_forwarded = 1000;
    a.set("seed", "1");
    io::result_row b = a;
    b.method = "deepreduce, \"quoted\"";
    b.pi_latency_s = io::missing;
    io::write_csv(tmp / "results.csv", {a, b});
    put("results", "valid", read_file(tmp / "results.csv"));
  }

  // The tiny network's tensors, as for Python.
  io::export_state(*tiny_net(), tmp / "state.pt");
  put("torch_tensors", "valid", read_file(tmp / "state.pt"));

  // run.json: the same run.
  put("run_json", "valid", io::json_text(run_settings_example()));
}

}  // namespace linearize::fuzz
