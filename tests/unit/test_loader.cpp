// In-memory datasets, batch construction with augmentation, and the seeded batch loader.
#include "test_support.hpp"

#include <linearize/data/loader.hpp>

using namespace linearize;
using namespace linearize::data;
using linearize::testing::close;
using linearize::testing::expect_error;

namespace {

image_dataset tiny_dataset(int64_t n, int64_t c = 1, int64_t hw = 5) {
  image_dataset d;
  d.name = "tiny";
  d.images = torch::randint(0, 256, {n, c, hw, hw}, torch::kLong).to(torch::kByte);
  d.labels = torch::arange(n, torch::kLong) % 3;
  d.classes = 3;
  d.mean.assign(static_cast<size_t>(c), 0.5);
  d.stdev.assign(static_cast<size_t>(c), 0.25);
  return d;
}

}  // namespace

TEST_CASE("make_batch normalizes, crops with black padding and flips", "[data]") {
  auto img = torch::arange(16, torch::kLong).to(torch::kByte).view({1, 1, 4, 4});
  const std::vector<double> mean{0.5}, sd{0.25};
  auto plain = make_batch(img, mean, sd, {}, 7);
  CHECK(close(plain, (img.to(torch::kFloat) / 255 - 0.5) / 0.25));

  // Flip only: every seed either flips or not; over seeds both happen and flips are exact.
  bool saw_flip = false, saw_plain = false;
  for (uint64_t s = 0; s < 16; ++s) {
    auto out = make_batch(img, mean, sd, {.horizontal_flip = true}, s);
    if (close(out, plain)) saw_plain = true;
    else if (close(out, plain.flip({3}))) saw_flip = true;
    else FAIL("flip produced neither the image nor its mirror");
  }
  CHECK(saw_flip);
  CHECK(saw_plain);

  // Crop with padding: output is a shifted window; padded pixels read black (0) before
  // normalization.
  auto padded = torch::constant_pad_nd(img, {2, 2, 2, 2}, 0);
  for (uint64_t s = 0; s < 8; ++s) {
    auto out = make_batch(img, mean, sd, {.crop_padding = 2}, s);
    bool matched = false;
    for (int dy = 0; dy <= 4 && !matched; ++dy)
      for (int dx = 0; dx <= 4 && !matched; ++dx) {
        auto window = padded.slice(2, dy, dy + 4).slice(3, dx, dx + 4).to(torch::kFloat);
        matched = close(out, (window / 255 - 0.5) / 0.25);
      }
    CHECK(matched);
  }
  expect_error([&] { (void)make_batch(img, {0.5, 0.5}, sd, {}, 0); }, "2 means and 1 stds for 1 channels");
  expect_error([&] { (void)make_batch(img.to(torch::kFloat), mean, sd, {}, 0); }, "must be uint8");
}

TEST_CASE("batch_loader covers the epoch once, reproducibly, and resumes mid-epoch", "[data]") {
  torch::manual_seed(0);
  const auto d = tiny_dataset(23);
  loader_options opts{.batch_size = 5, .augment = {.crop_padding = 1, .horizontal_flip = true}, .seed = 42};
  batch_loader a(d, opts), b(d, opts);
  CHECK(a.batches_per_epoch() == 5);
  a.start_epoch(3);
  std::vector<batch> all;
  while (auto x = a.next()) all.push_back(*x);
  REQUIRE(all.size() == 5);
  CHECK(all.back().labels.size(0) == 3);
  int64_t seen = 0;
  for (auto& x : all) seen += x.labels.size(0);
  CHECK(seen == 23);

  b.start_epoch(3, 2);  // resume at batch 2
  for (size_t i = 2; i < all.size(); ++i) {
    auto x = b.next();
    REQUIRE(x);
    CHECK(x->index == static_cast<int64_t>(i));
    CHECK(torch::equal(x->images, all[i].images));
    CHECK(torch::equal(x->labels, all[i].labels));
  }
  CHECK_FALSE(b.next());

  // Another epoch gives another order (with overwhelming probability for 23 samples).
  batch_loader c(d, opts);
  c.start_epoch(4);
  std::vector<torch::Tensor> labels4;
  while (auto x = c.next()) labels4.push_back(x->labels);
  std::vector<torch::Tensor> labels3;
  for (auto& x : all) labels3.push_back(x.labels);
  CHECK_FALSE(torch::equal(torch::cat(labels4), torch::cat(labels3)));
}

TEST_CASE("batch_loader options and dataset validation give clear errors", "[data]") {
  auto d = tiny_dataset(4);
  expect_error([&] { batch_loader l(d, {.batch_size = 0}); }, "batch size 0 must be positive");
  expect_error([&] { batch_loader l(d, {.batch_size = 8, .drop_last = true}); },
               "fewer than one batch of 8");
  auto bad = d;
  bad.labels[1] = 7;
  expect_error([&] { bad.validate(); }, "label 7 out of range [0, 3)");
  bad = d;
  bad.images = bad.images.to(torch::kFloat);
  expect_error([&] { bad.validate(); }, "images must be uint8");
}

TEST_CASE("split holds out a seeded, disjoint part", "[data]") {
  auto d = tiny_dataset(50);
  d.labels = torch::arange(50, torch::kLong);
  d.classes = 50;
  auto s1 = split(d, 0.2, 9), s2 = split(d, 0.2, 9);
  CHECK(s1.held_out.size() == 10);
  CHECK(s1.train.size() == 40);
  CHECK(torch::equal(s1.held_out.labels, s2.held_out.labels));
  auto all = torch::cat({s1.train.labels, s1.held_out.labels}).sort();
  CHECK(torch::equal(std::get<0>(all), torch::arange(50, torch::kLong)));
  expect_error([&] { (void)split(d, 1.5, 0); }, "held-out fraction 1.5");
}
