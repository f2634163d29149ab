// The cached baseline: trained once, loaded after; an interrupted run continues exactly; the
// best held-out epoch is kept; a corrupt or mismatched cache is a clear error.
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/io/json.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/train/baseline.hpp>
#include <linearize/train/evaluate.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace linearize;
using linearize::testing::expect_error;
using linearize::testing::same_state;
using linearize::testing::temp_dir;
using linearize::testing::tiny_conv;

namespace {

// 48 samples, a quarter held out: 36 train in batches of 8, 5 steps per epoch.
train::baseline_options tiny_options(const std::filesystem::path& out) {
  return {.recipe = {.epochs = 2,
                     .batch_size = 8,
                     .lr = 0.05,
                     .augment = {.crop_padding = 1, .horizontal_flip = true},
                     .held_out_fraction = 0.25,
                     .seed = 3},
          .out = out,
          .checkpoint_every = 3,
          .progress = {.mode = train::progress_mode::silent}};
}

bool same_number(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void check_same_record(const train::baseline_record& a, const train::baseline_record& b) {
  CHECK(a.complete == b.complete);
  CHECK(a.model == b.model);
  CHECK(a.dataset == b.dataset);
  CHECK(a.best_epoch == b.best_epoch);
  CHECK(same_number(a.held_out_top1, b.held_out_top1));
  CHECK(same_number(a.test_top1, b.test_top1));
  CHECK(same_number(a.test_top5, b.test_top5));
  CHECK(a.relu_count == b.relu_count);
  CHECK(same_number(a.seconds_per_epoch, b.seconds_per_epoch));
  CHECK(a.weights_fnv1a == b.weights_fnv1a);
  CHECK(train::detail::recipe_text(a.recipe) == train::detail::recipe_text(b.recipe));
}

}  // namespace

TEST_CASE("a baseline is trained once, then loaded from its cache", "[train]") {
  const auto data = testing::stripes(48, 1), test = testing::stripes(24, 2);
  temp_dir dir("baseline_cache");
  const auto opts = tiny_options(dir / "tiny.pt");

  CHECK_FALSE(train::baseline_complete(opts.out));
  const auto first = train::load_or_train_baseline(tiny_conv(1, 4, 0.0), data, test, opts);
  CHECK(first.trained);
  CHECK(train::baseline_complete(opts.out));
  const auto& r = first.record;
  CHECK(r.complete);
  CHECK(r.model == "tiny_conv(width=4, classes=3)");
  CHECK(r.dataset == "stripes");
  CHECK(r.train_samples == 36);
  CHECK(r.held_out_samples == 12);
  CHECK(r.test_samples == 24);
  CHECK((r.best_epoch == 1 || r.best_epoch == 2));
  CHECK(r.relu_count == 4 * 6 * 6);
  CHECK(r.held_out_top1 >= 0);
  CHECK(r.held_out_top1 <= 1);
  CHECK(std::isnan(r.test_top5));  // 3 classes: no top-5
  CHECK(r.seconds_per_epoch > 0);
  CHECK(r.weights == "tiny.pt");
  // The weights kept are the ones the record's accuracy was measured on.
  CHECK(train::evaluate(first.net, test).top1 == r.test_top1);
  // Only the weights and the record remain; the masks were frozen at 1 and are soft again.
  CHECK(std::filesystem::exists(dir / "tiny.pt"));
  CHECK(std::filesystem::exists(dir / "tiny.json"));
  CHECK_FALSE(std::filesystem::exists(dir / "tiny.ckpt"));
  CHECK_FALSE(std::filesystem::exists(dir / "tiny.best.pt"));
  const MaskSet masks(*first.net);
  CHECK_FALSE(masks[0].is_hard());
  CHECK(masks[0].mask().requires_grad());
  CHECK(masks[0].mask().eq(1).all().item<bool>());
  check_same_record(train::read_baseline_record(opts.out), r);

  // A second call loads: other initial weights, the same network as the first call left.
  const auto second = train::load_or_train_baseline(tiny_conv(99, 4, 0.0), data, test, opts);
  CHECK_FALSE(second.trained);
  CHECK(same_state(*second.net, *first.net));
  check_same_record(second.record, r);

  // --fresh: trains again (the same seed gives the same network).
  auto fresh_opts = opts;
  fresh_opts.resume = false;
  const auto third = train::load_or_train_baseline(tiny_conv(1, 4, 0.0), data, test, fresh_opts);
  CHECK(third.trained);
  CHECK(same_state(*third.net, *first.net));
}

TEST_CASE("an interrupted baseline run continues to the same network", "[train]") {
  const auto data = testing::stripes(48, 1), test = testing::stripes(24, 2);
  temp_dir dir("baseline_resume");
  const auto straight = train::load_or_train_baseline(tiny_conv(1, 4, 0.0), data, test,
                                                      tiny_options(dir / "straight.pt"));

  auto opts = tiny_options(dir / "cut.pt");
  opts.recipe.epochs = 2;
  opts.stop_after_steps = 7;  // "killed" in epoch 2; the last checkpoint is from step 6
  const auto part = train::load_or_train_baseline(tiny_conv(1, 4, 0.0), data, test, opts);
  CHECK_FALSE(part.record.complete);
  CHECK_FALSE(train::read_baseline_record(opts.out).complete);
  CHECK_FALSE(train::baseline_complete(opts.out));
  CHECK(std::filesystem::exists(dir / "cut.ckpt"));
  CHECK(std::filesystem::exists(dir / "cut.best.pt"));  // epoch 1 ended: its weights are kept
  // An incomplete baseline is not loaded.
  expect_error([&] { (void)train::load_baseline(*tiny_conv(5, 4, 0.0), opts.out); }, "not complete");

  opts.stop_after_steps.reset();
  const auto rest = train::load_or_train_baseline(tiny_conv(77, 4, 0.0), data, test, opts);
  CHECK(rest.trained);
  CHECK(rest.record.complete);
  CHECK(same_state(*rest.net, *straight.net));
  CHECK(rest.record.best_epoch == straight.record.best_epoch);
  CHECK(rest.record.test_top1 == straight.record.test_top1);
  CHECK(rest.record.weights_fnv1a == straight.record.weights_fnv1a);
}

TEST_CASE("a corrupt or mismatched baseline cache is a clear error", "[train]") {
  const auto data = testing::stripes(48, 1), test = testing::stripes(24, 2);
  temp_dir dir("baseline_corrupt");
  const auto opts = tiny_options(dir / "tiny.pt");
  (void)train::load_or_train_baseline(tiny_conv(1, 4, 0.0), data, test, opts);
  const auto again = [&](const train::baseline_options& o, int64_t width = 4) {
    (void)train::load_or_train_baseline(tiny_conv(1, width, 0.0), data, test, o);
  };

  SECTION("another recipe") {
    auto other = opts;
    other.recipe.lr = 0.1;
    expect_error([&] { again(other); }, "was trained with");
  }
  SECTION("another network") {
    expect_error([&] { again(opts, 5); }, "holds tiny_conv(width=4, classes=3)");
  }
  SECTION("another dataset") {
    auto renamed = data;
    renamed.name = "bands/train";
    expect_error([&] { (void)train::load_or_train_baseline(tiny_conv(1, 4, 0.0), renamed, test, opts); },
                 "is for dataset 'stripes'");
  }
  SECTION("damaged weights") {
    {
      std::fstream f(opts.out, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(200);
      f.write("garbage", 7);
    }
    expect_error([&] { again(opts); }, "are corrupt or were replaced");
  }
  SECTION("missing weights") {
    std::filesystem::remove(opts.out);
    expect_error([&] { again(opts); }, "are missing");
  }
  SECTION("a damaged record") {
    std::ofstream(dir / "tiny.json") << "{\"format\": \"linearize-baseline 1\", \"complete\": tru";
    expect_error([&] { again(opts); }, "tiny.json' is not valid JSON: parse error at line 1, column 51");
  }
  SECTION("a record that lacks a member") {
    std::ofstream(dir / "tiny.json") << "{\"format\": \"linearize-baseline 1\", \"complete\": true}";
    expect_error([&] { again(opts); }, "has no member 'model'");
  }
  SECTION("a record of another format or recipe kind") {
    const auto rewrite = [&](const std::string& key, const std::string& value) {
      auto j = io::read_json_file(dir / "tiny.json");
      j[key] = value;
      io::write_json_file(dir / "tiny.json", j);
    };
    rewrite("format", "linearize-baseline 0");
    expect_error([&] { again(opts); }, "member 'format' = 'linearize-baseline 0'; expected 'linearize-baseline 1'");
    rewrite("format", "linearize-baseline 1");
    rewrite("optimizer", "adam");
    expect_error([&] { again(opts); }, "member 'optimizer' = 'adam'; expected 'sgd'");
  }
  SECTION("a record with a negative seed") {
    auto j = io::read_json_file(dir / "tiny.json");
    j["seed"] = -3;
    io::write_json_file(dir / "tiny.json", j);
    expect_error([&] { again(opts); }, "tiny.json': member 'seed' = -3; expected a number >= 0");
    j["seed"] = 1.5;
    io::write_json_file(dir / "tiny.json", j);
    expect_error([&] { again(opts); }, "member 'seed' = 1.5; expected a whole number");
    j["seed"] = "3";
    io::write_json_file(dir / "tiny.json", j);
    expect_error([&] { again(opts); }, "member 'seed' = '3'; expected a whole number >= 0");
  }
  SECTION("fresh ignores the damaged cache") {
    std::ofstream(dir / "tiny.json") << "not json at all";
    auto fresh = opts;
    fresh.resume = false;
    CHECK(train::load_or_train_baseline(tiny_conv(1, 4, 0.0), data, test, fresh).record.complete);
  }
}

TEST_CASE("a baseline by model name loads its cache without reading the dataset", "[train]") {
  // ResNet18-IN takes inputs of 8x8 and up: the stripes, padded by a pixel.
  const auto padded = [](data::image_dataset d) {
    d.images = torch::constant_pad_nd(d.images, {1, 1, 1, 1}).contiguous();
    return d;
  };
  const auto data = padded(testing::stripes(48, 1)), test = padded(testing::stripes(24, 2));
  temp_dir dir("baseline_spec");
  auto opts = tiny_options(dir / "resnet.pt");
  opts.recipe.epochs = 1;
  const train::baseline_spec spec{.data = "stripes", .model = "resnet18_in", .width = 1};
  const auto net = models::make_model("resnet18_in", {.classes = 3, .channels = 1, .size = 8, .width = 1});
  const auto trained = train::train_baseline(net, data, test, opts);
  REQUIRE(trained.record.complete);
  // "stripes" is no dataset load_dataset knows: a cache hit must not try to read it.
  const auto loaded = train::load_or_train_baseline(spec, opts);
  CHECK_FALSE(loaded.trained);
  CHECK(loaded.net->describe() == trained.net->describe());
  CHECK(same_state(*loaded.net, *trained.net));

  CHECK(train::default_baseline_path({}) == "runs/baseline/fashion-mnist_resnet18_in_w16.pt");
  CHECK(train::default_baseline_path({.data = "cifar100", .model = "mobilenet_v1", .width = 0.5}) ==
        "runs/baseline/cifar100_mobilenet_v1_w0.5.pt");
}

TEST_CASE("a baseline record round-trips exactly, seeds above 2^53 included", "[train][io]") {
  temp_dir dir("baseline_record");
  train::baseline_record r;
  r.complete = true;
  r.model = "tiny_conv(width=4, classes=3)";
  r.dataset = "stripes \"quoted\"";
  r.recipe.seed = (uint64_t{1} << 63) + 12345;  // no double holds it
  r.recipe.lr = 0.1 + 0.2;
  r.held_out_top1 = 0.925;
  r.test_top1 = 1.0 / 3.0;  // test_top5 stays NaN: null in the file
  r.relu_count = 96'000;
  r.weights = "tiny.pt";
  r.weights_fnv1a = "00ff00ff00ff00ff";
  train::detail::write_record(dir / "tiny.json", r);
  const auto back = train::read_baseline_record(dir / "tiny.pt");
  check_same_record(back, r);
  CHECK(back.recipe.seed == (uint64_t{1} << 63) + 12345);
  CHECK(back.recipe.lr == 0.1 + 0.2);
  CHECK(back.dataset == r.dataset);
  const auto text = read_file(dir / "tiny.json");
  CHECK(text.find("\"seed\": 9223372036854788153") != std::string::npos);
  CHECK(text.find("\"test_top5\": null") != std::string::npos);
  // The same record trains afresh with a seed that large (no 2^53 limit any more).
  CHECK_NOTHROW(train::detail::validate(r.recipe));
}

TEST_CASE("a record written before nlohmann-json (whole reals without a fraction) still reads", "[train][io]") {
  temp_dir dir("baseline_old_record");
  // As the earlier hand-written writer left it: every number as a double, whole ones as integers.
  std::ofstream(dir / "old.json") << R"json({
  "format": "linearize-baseline 1", "complete": true, "model": "tiny_conv(width=4, classes=3)",
  "dataset": "stripes", "classes": 3, "channels": 1, "image_height": 6, "image_width": 6,
  "epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.05, "schedule": "cosine",
  "momentum": 0.9, "weight_decay": 0.0005, "crop_padding": 1, "horizontal_flip": true,
  "held_out_fraction": 0.25, "seed": 3, "train_samples": 36, "held_out_samples": 12,
  "test_samples": 24, "best_epoch": 2, "held_out_top1": 1, "test_top1": 0.9583333333333334,
  "test_top5": null, "relu_count": 144, "seconds_per_epoch": 3, "images_per_second": 12.5,
  "threads": 2, "weights": "old.pt", "weights_fnv1a": "0123456789abcdef"
})json";
  const auto r = train::read_baseline_record(dir / "old.pt");
  CHECK(r.complete);
  CHECK(r.recipe.seed == 3);
  CHECK(r.recipe.lr == 0.05);
  CHECK(r.held_out_top1 == 1.0);
  CHECK(r.seconds_per_epoch == 3.0);
  CHECK(r.test_top1 == 0.9583333333333334);
  CHECK(std::isnan(r.test_top5));
  CHECK(r.relu_count == 144);
}
