// The cached baseline: trained once, loaded after; an interrupted run continues exactly; the
// best held-out epoch is kept; a corrupt or mismatched cache is a clear error.
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/io/flat_json.hpp>
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
    expect_error([&] { again(opts); }, "is not a flat JSON object");
  }
  SECTION("a record that lacks a member") {
    std::ofstream(dir / "tiny.json") << "{\"format\": \"linearize-baseline 1\", \"complete\": true}";
    expect_error([&] { again(opts); }, "has no member 'model'");
  }
  SECTION("a record of another format or recipe kind") {
    const auto rewrite = [&](const std::string& key, const std::string& value) {
      auto j = io::read_flat_json(dir / "tiny.json");
      j.set(key, value);
      io::write_flat_json(dir / "tiny.json", j);
    };
    rewrite("format", "linearize-baseline 0");
    expect_error([&] { again(opts); }, "member 'format' = 'linearize-baseline 0'; expected 'linearize-baseline 1'");
    rewrite("format", "linearize-baseline 1");
    rewrite("optimizer", "adam");
    expect_error([&] { again(opts); }, "member 'optimizer' = 'adam'; expected 'sgd'");
  }
  SECTION("a record with a negative seed") {
    auto j = io::read_flat_json(dir / "tiny.json");
    j.set("seed", -3);
    io::write_flat_json(dir / "tiny.json", j);
    expect_error([&] { again(opts); }, "member 'seed' = -3; expected a number >= 0");
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

TEST_CASE("flat JSON records round-trip exactly", "[io]") {
  io::flat_json j;
  j.set("text", "quote \" back\\slash\nline").set("third", 0.1 + 0.2).set("count", int64_t{96000});
  j.set("flag", true).set("none", io::missing).set("unicode", "µs");
  const auto back = io::parse_flat_json(io::to_json(j), "test");
  CHECK(back.text("text", "t") == "quote \" back\\slash\nline");
  CHECK(back.number("third", "t") == 0.1 + 0.2);
  CHECK(back.integer("count", "t") == 96000);
  CHECK(back.boolean("flag", "t"));
  CHECK(std::isnan(back.number("none", "t")));
  CHECK(back.text("unicode", "t") == "µs");
  CHECK(io::parse_flat_json(R"({"e": "\u00b5s"})", "t").text("e", "t") == "µs");
  expect_error([] { (void)io::parse_flat_json(R"({"a": 1, "a": 2})", "dup"); }, "appears twice");
  expect_error([] { (void)io::parse_flat_json(R"({"a": [1]})", "nested"); }, "nested");
  expect_error([] { (void)io::parse_flat_json(R"({"a": 1} x)", "tail"); }, "after the closing");
  expect_error([&] { (void)back.integer("third", "t"); }, "whole number");
  expect_error([&] { (void)back.text("count", "t"); }, "is not a string");

  temp_dir dir("flat_json");
  io::write_flat_json(dir / "r.json", j);
  if (std::system("command -v python3 >/dev/null 2>&1") == 0) {
    const std::string cmd = "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                            "sys.exit(0 if d[\"count\"]==96000 and d[\"none\"] is None else 1)' '" +
                            (dir / "r.json").string() + "'";
    CHECK(std::system(cmd.c_str()) == 0);
  }
}
