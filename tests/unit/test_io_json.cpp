// JSON files through nlohmann-json (io/json.hpp): a field table drives writing and reading,
// numbers round-trip exactly (uint64 above 2^53, reals, NaN as null, infinities), and malformed
// or mistyped files are linearize::errors that name the file, the member and what was expected.
#include "test_support.hpp"

#include <linearize/io/json.hpp>
#include <linearize/io/json_difference.hpp>
#include <linearize/io/results.hpp>
#include <linearize/train/checkpoint.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace linearize;
using linearize::testing::expect_error;
using linearize::testing::temp_dir;

namespace sample {

struct point {
  double x = 0;
  std::optional<double> y{};
};

struct record {
  std::string text{};
  uint64_t seed = 0;
  int64_t offset = 0;
  int32_t small = 0;
  bool flag = false;
  double real = 0, none = 0, up = 0, down = 0;
  std::vector<point> points{};
  std::map<std::string, double> named{};
};

// Defined beside the types, found by argument-dependent lookup.
template <class P, class F>
  requires std::same_as<std::remove_const_t<P>, point>
void json_fields(P& p, F&& f) {
  f("x", p.x);
  f("y", p.y);
}

template <class R, class F>
  requires std::same_as<std::remove_const_t<R>, record>
void json_fields(R& r, F&& f) {
  f("format", io::fixed_text{"sample 1"});
  f("text", r.text);
  f("seed", r.seed);
  f("offset", r.offset);
  f("small", r.small);
  f("flag", r.flag);
  f("real", r.real);
  f("none", r.none);
  f("up", r.up);
  f("down", r.down);
  f("points", r.points);
  f("named", r.named);
}

record full() {
  return {.text = "quote \" back\\slash\nline, µs",
          .seed = std::numeric_limits<uint64_t>::max() - 6,  // far above 2^53
          .offset = std::numeric_limits<int64_t>::min() + 1,
          .small = -7,
          .flag = true,
          .real = 0.1 + 0.2,
          .none = std::numeric_limits<double>::quiet_NaN(),
          .up = std::numeric_limits<double>::infinity(),
          .down = -std::numeric_limits<double>::infinity(),
          .points = {{.x = 1e-300, .y = 2.5}, {.x = -0.0}},
          .named = {{"penalty weight", 3e-4}, {"best", -1}}};
}

record read_text(const std::string& text, const std::string& source = "sample.json") {
  record r;
  io::read_json_value(io::parse_json(text, source), source, r);
  return r;
}

}  // namespace sample

TEST_CASE("a field table writes and reads a record exactly", "[io]") {
  temp_dir dir("io_json");
  const auto r = sample::full();
  io::write_json_file(dir / "r.json", io::to_json_value(r));
  sample::record back;
  io::read_json_value(io::read_json_file(dir / "r.json"), "r.json", back);

  CHECK(back.text == r.text);
  CHECK(back.seed == std::numeric_limits<uint64_t>::max() - 6);
  CHECK(back.offset == std::numeric_limits<int64_t>::min() + 1);
  CHECK(back.small == -7);
  CHECK(back.flag);
  CHECK(back.real == 0.1 + 0.2);
  CHECK(std::isnan(back.none));
  CHECK(back.up == std::numeric_limits<double>::infinity());
  CHECK(back.down == -std::numeric_limits<double>::infinity());
  REQUIRE(back.points.size() == 2);
  CHECK(back.points[0].x == 1e-300);
  CHECK(back.points[0].y == 2.5);
  CHECK(std::signbit(back.points[1].x));
  CHECK_FALSE(back.points[1].y.has_value());
  CHECK(back.named == r.named);

  // Members in the order of the field table; NaN is null, infinities are text.
  const auto text = read_file(dir / "r.json");
  INFO(text);
  CHECK(text.starts_with("{\n  \"format\": \"sample 1\",\n  \"text\": "));
  CHECK(text.find("\"seed\": 18446744073709551609") != std::string::npos);
  CHECK(text.find("\"none\": null") != std::string::npos);
  CHECK(text.find("\"up\": \"inf\"") != std::string::npos);
  CHECK(text.find("\"y\": null") != std::string::npos);

  // An independent reader agrees (python3's json module, where installed).
  if (std::system("command -v python3 >/dev/null 2>&1") == 0) {
    const std::string cmd = "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                            "sys.exit(0 if d[\"seed\"]==2**64-7 and d[\"none\"] is None and "
                            "d[\"points\"][1][\"y\"] is None else 1)' '" + (dir / "r.json").string() + "'";
    CHECK(std::system(cmd.c_str()) == 0);
  } else {
    WARN("python3 not available: independent JSON check skipped");
  }
}

TEST_CASE("malformed or mistyped JSON is an error naming the file, the member and what was expected", "[io]") {
  const auto good = io::to_json_value(sample::full());
  const auto with = [&](const std::string& key, const io::json& value) {
    auto j = good;
    j[key] = value;
    return j.dump();
  };
  using sample::read_text;

  expect_error([] { (void)read_text("{\"text\": \"a\",", "broken.json"); },
               "'broken.json' is not valid JSON: parse error at line 1, column 14");
  expect_error([] { (void)read_text("", "empty.json"); }, "'empty.json' is not valid JSON");
  expect_error([] { (void)read_text("[1, 2]"); }, "'sample.json' = [1,2]; expected an object");
  expect_error([] { (void)read_text("{\"format\": \"sample 1\"}"); }, "'sample.json' has no member 'text'");
  expect_error([&] { (void)read_text(with("format", "sample 0")); },
               "'sample.json': member 'format' = 'sample 0'; expected 'sample 1'");
  expect_error([&] { (void)read_text(with("seed", -3)); }, "member 'seed' = -3; expected a number >= 0");
  expect_error([&] { (void)read_text(with("seed", 2.5)); }, "member 'seed' = 2.5; expected a whole number");
  expect_error([&] { (void)read_text(with("offset", uint64_t{1} << 63)); },
               "member 'offset' = 9223372036854775808; expected a smaller whole number");
  expect_error([&] { (void)read_text(with("small", int64_t{1} << 40)); }, "member 'small' = 1099511627776");
  expect_error([&] { (void)read_text(with("flag", 1)); }, "member 'flag' = 1; expected true or false");
  expect_error([&] { (void)read_text(with("text", 3)); }, "member 'text' = 3; expected text");
  expect_error([&] { (void)read_text(with("real", "fast")); }, "member 'real' = 'fast'; expected a number");
  expect_error([&] { (void)read_text(with("points", io::json::parse(R"([{"x": 1}, {"x": "a", "y": 2}])"))); },
               "member 'points[0]' has no member 'y'");
  expect_error([&] { (void)read_text(with("points", io::json::parse(R"([{"x": 1, "y": 2}, {"x": "a", "y": 2}])"))); },
               "member 'points[1].x' = 'a'; expected a number");
  expect_error([&] { (void)read_text(with("named", io::json::parse(R"({"best": true})"))); },
               "member 'named.best' = true; expected a number");
  // Whole numbers written as reals are read (an older writer's 1e3): exactly, below 2^53.
  CHECK(read_text(with("seed", 1e3)).seed == 1000);
  expect_error([] { (void)io::read_json_file("/nonexistent/r.json"); }, "cannot open '/nonexistent/r.json'");
}

TEST_CASE("result rows as JSON: numbers exact, null for missing, extra columns as text", "[io]") {
  io::result_row snl{.method = "snl, then \"bcd\"", .budget = 0.1 + 0.2, .relu_count = 14'987,
                     .accuracy = 67.16, .images_forwarded = 21'050'000};
  snl.set("seed", uint64_t{1} << 60).set("note", "tab\there, ctrl\x01");
  const auto j = io::parse_json(io::to_json({snl, {.method = "bare"}}), "rows");
  REQUIRE(j.size() == 2);
  CHECK(j[0]["method"] == "snl, then \"bcd\"");
  CHECK(j[0]["budget"].get<double>() == 0.1 + 0.2);
  CHECK(j[0]["relu_count"] == 14'987);
  CHECK(j[0]["pi_latency_s"].is_null());
  CHECK(j[0]["seed"] == "1152921504606846976");
  CHECK(j[0]["note"] == "tab\there, ctrl\x01");
  CHECK(j[1]["accuracy"].is_null());
  CHECK(io::to_json({}) == "[]\n");
}

TEST_CASE("a checkpoint's run state and identity round-trip through JSON exactly", "[io][train]") {
  train::run_state s;
  s.epoch = 3;
  s.step = 7;
  s.global_step = 1234;
  s.partial.loss_sum = 1.0 / 3.0;
  s.partial.correct1 = 17;
  s.partial_lr = 0.05 * 0.5;
  s.values = {{"penalty weight", 3e-4}, {"best_count", std::numeric_limits<double>::infinity()}};
  s.rows.push_back({.epoch = 0, .train_loss = 2.302585092994046, .lr = 0.1,
                    .eval = train::metrics{.top1 = 0.5, .loss = 1.5, .samples = 12}});
  s.rows.push_back({.epoch = 1, .train_loss = std::nan(""), .values = {{"x", -0.0}}});
  train::run_state back;
  io::read_json_value(io::parse_json(io::to_json_value(s).dump(), "state"), "state", back);
  CHECK(back.global_step == 1234);
  CHECK(back.partial.loss_sum == 1.0 / 3.0);
  CHECK(back.partial_lr == 0.05 * 0.5);
  CHECK(back.values == s.values);
  REQUIRE(back.rows.size() == 2);
  CHECK(back.rows[0].train_loss == 2.302585092994046);
  REQUIRE(back.rows[0].eval.has_value());
  CHECK_FALSE(back.rows[0].eval->top5.has_value());
  CHECK(back.rows[0].eval->samples == 12);
  CHECK(std::isnan(back.rows[1].train_loss));
  CHECK_FALSE(back.rows[1].eval.has_value());

  const train::run_identity id{.seed = (uint64_t{1} << 62) + 1, .batch_size = 8, .optimizer = "sgd"};
  train::run_identity id_back;
  io::read_json_value(io::to_json_value(id), "identity", id_back);
  CHECK(id_back.seed == (uint64_t{1} << 62) + 1);
  CHECK(train::detail::identity_text(id_back) == train::detail::identity_text(id));
  CHECK(train::detail::identity_text(id) ==
        "seed 4611686018427387905, batch_size 8, steps_per_epoch 0, drop_last false, optimizer sgd");
}

TEST_CASE("json_differences names each differing setting by its path, with both values", "[io]") {
  const auto there = io::parse_json(
      R"({"seed":0,"optimizer":{"kind":"sgd","lr":0.05,"momentum":0.9},"milestones":[1,2],"old":true,)"
      R"("schedule":{"kind":"cosine","epochs":3}})",
      "there");
  const auto here = io::parse_json(
      R"({"seed":0,"optimizer":{"kind":"sgd","lr":0.1,"momentum":0.9},"milestones":[1,3],"new":2,)"
      R"("schedule":{"kind":"multistep","gamma":0.1}})",
      "here");
  const auto all = io::json_differences(there, here);
  REQUIRE(all.size() == 5);
  CHECK(all[0] == "optimizer.lr: 0.05 there, 0.1 here");  // same kind: member by member
  CHECK(all[1] == "milestones[1]: 2 there, 3 here");
  CHECK(all[2] == "new: absent there, 2 here");
  // Another kind of schedule is named whole, not as its members' differences.
  CHECK(all[3] == R"(schedule: {"kind":"cosine","epochs":3} there, {"kind":"multistep","gamma":0.1} here)");
  CHECK(all[4] == "old: true there, absent here");
  const auto first = io::json_differences(there, here, {.there = "in the checkpoint", .here = "in this run"}, 1);
  REQUIRE(first.size() == 1);
  CHECK(first[0] == "optimizer.lr: 0.05 in the checkpoint, 0.1 in this run");
  CHECK(io::json_differences(there, there).empty());
  CHECK(io::json_differences(io::json(1), io::json(2)) == std::vector<std::string>{"the record: 1 there, 2 here"});
}
