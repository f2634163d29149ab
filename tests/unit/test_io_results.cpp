// Result rows of accuracy-versus-budget studies: exact CSV round trips (with commas, quotes and
// line breaks in the text), JSON escaping, appending to a file, and refusal of bad input.
#include "test_support.hpp"

#include <linearize/io/json.hpp>
#include <linearize/io/results.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>

using namespace linearize;
using linearize::testing::expect_error;

namespace {

std::vector<io::result_row> sample_rows() {
  io::result_row snl{.method = "snl", .budget = 15000, .relu_count = 14'987, .accuracy = 67.16,
                     .pi_latency_s = 0.3372075, .wall_time_s = 5321.25, .images_forwarded = 21'050'000};
  snl.set("seed", 1).set("lambda", 1.2e-3).set("note", "plain");
  io::result_row tricky{.method = "snl, then \"bcd\"", .budget = 0.1 + 0.2, .relu_count = 6000,
                        .accuracy = 72.9, .images_forwarded = 3};
  tricky.set("note", "line one\nline two, with \"quotes\"").set("seed", " padded ").set("dataset", "cifar100");
  io::result_row bare{.method = "deepreduce", .relu_count = 114'700};  // every measurement missing
  bare.set("note", "tab\there, back\\slash, ctrl\x01");
  return {snl, tricky, bare};
}

// An independent JSON parser agrees that the text is valid (python3's json module), where
// python3 is installed; returns false when it is not.
bool python_json_check(const std::filesystem::path& file, size_t rows) {
  if (std::system("command -v python3 >/dev/null 2>&1") != 0) return false;
  const std::string cmd = "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                          "sys.exit(0 if len(d)==int(sys.argv[2]) else 1)' '" +
                          file.string() + "' " + std::to_string(rows);
  CHECK(std::system(cmd.c_str()) == 0);
  return true;
}

bool same_number(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void check_equal(const std::vector<io::result_row>& a, const std::vector<io::result_row>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("row " << i);
    CHECK(a[i].method == b[i].method);
    CHECK(same_number(a[i].budget, b[i].budget));
    CHECK(a[i].relu_count == b[i].relu_count);
    CHECK(same_number(a[i].accuracy, b[i].accuracy));
    CHECK(same_number(a[i].pi_latency_s, b[i].pi_latency_s));
    CHECK(same_number(a[i].wall_time_s, b[i].wall_time_s));
    CHECK(a[i].images_forwarded == b[i].images_forwarded);
    for (const auto& [k, v] : a[i].extra) {
      const auto* got = b[i].get(k);
      REQUIRE(got != nullptr);
      CHECK(*got == v);
    }
    CHECK(a[i].extra.size() == b[i].extra.size());
  }
}

}  // namespace

TEST_CASE("results round-trip through CSV exactly, text with commas, quotes and newlines included", "[io]") {
  linearize::testing::temp_dir dir("results_csv");
  const auto rows = sample_rows();
  io::write_csv(dir / "results.csv", rows);
  const auto back = io::read_csv(dir / "results.csv");
  check_equal(rows, back);
  CHECK(back[1].budget == 0.1 + 0.2);  // shortest round-trip text, not a rounded one
  CHECK(back[1].extra[0].first == "seed");  // read back in column order

  const auto text = io::to_csv(rows);
  INFO(text);
  CHECK(text.starts_with("method,budget,relu_count,accuracy,pi_latency_s,wall_time_s,images_forwarded,seed,lambda,note,dataset\n"));
  CHECK(text.find("snl,15000,14987,67.16,0.3372075,5321.25,21050000,1,0.0012,plain,\n") != std::string::npos);
  CHECK(text.find("\"snl, then \"\"bcd\"\"\"") != std::string::npos);
  CHECK(text.find("\"line one\nline two, with \"\"quotes\"\"\"") != std::string::npos);
  CHECK(text.find("\" padded \"") != std::string::npos);
  CHECK(text.find("deepreduce,,114700,,,,0,,,") != std::string::npos);  // missing: empty cells
  // CRLF files (spreadsheets on Windows) read the same.
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  // (the newline inside the quoted note becomes \r\n too, as a spreadsheet would write it)
  auto from_crlf = io::parse_csv(crlf);
  REQUIRE(from_crlf.size() == 3);
  CHECK(*from_crlf[1].get("note") == "line one\r\nline two, with \"quotes\"");
  CHECK(from_crlf[0].accuracy == 67.16);
}

TEST_CASE("results as JSON: escaped strings, numbers, null for missing", "[io]") {
  linearize::testing::temp_dir dir("results_json");
  const auto rows = sample_rows();
  io::write_json(dir / "results.json", rows);
  const auto json = io::read_json_file(dir / "results.json");
  INFO(json.dump(2));
  REQUIRE(json.is_array());
  REQUIRE(json.size() == rows.size());
  // Fixed columns first, in order, then the extra ones as text.
  std::vector<std::string> keys;
  for (const auto& [k, v] : json[0].items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"method", "budget", "relu_count", "accuracy", "pi_latency_s",
                                         "wall_time_s", "images_forwarded", "seed", "lambda", "note"});
  CHECK(json[0]["accuracy"].get<double>() == 67.16);
  CHECK(json[0]["images_forwarded"] == 21'050'000);
  CHECK(json[0]["lambda"] == "0.0012");
  CHECK(json[1]["method"] == "snl, then \"bcd\"");
  CHECK(json[1]["budget"].get<double>() == 0.1 + 0.2);
  CHECK(json[1]["note"] == "line one\nline two, with \"quotes\"");
  CHECK(json[2]["accuracy"].is_null());
  CHECK(json[2]["wall_time_s"].is_null());
  CHECK(json[2]["note"] == "tab\there, back\\slash, ctrl\x01");
  if (!python_json_check(dir / "results.json", rows.size())) WARN("python3 not available: JSON parse check skipped");
}

TEST_CASE("append_csv creates a results file and adds rows, so a benchmark can resume", "[io]") {
  linearize::testing::temp_dir dir("results_append");
  const auto path = dir / "study.csv";
  const auto rows = sample_rows();
  for (const auto& r : rows) io::append_csv(path, r);
  check_equal(rows, io::read_csv(path));
  // A later row with a new extra column: earlier rows read back without it.
  io::result_row later{.method = "snl", .relu_count = 10'000, .accuracy = 64.16};
  later.set("resumed", true);
  io::append_csv(path, later);
  const auto all = io::read_csv(path);
  REQUIRE(all.size() == 4);
  CHECK(*all[3].get("resumed") == "true");
  CHECK(all[0].get("resumed") == nullptr);
  CHECK(*all[0].get("seed") == "1");
  CHECK(all[3].get("seed") == nullptr);
  CHECK(io::read_csv(path).size() == 4);
}

TEST_CASE("results: bad rows and bad files are errors that say what is wrong", "[io]") {
  using io::result_row;
  expect_error([] { (void)io::to_csv({result_row{}}); }, "empty method");
  expect_error([] { (void)io::to_csv({result_row{.method = "m", .accuracy = 101}}); },
               "accuracy (top-1 %) = 101; expected a finite value in [0, 100]");
  expect_error([] { (void)io::to_json({result_row{.method = "m", .pi_latency_s = INFINITY}}); }, "pi_latency_s = inf");
  expect_error([] { (void)io::to_csv({result_row{.method = "m", .relu_count = -1}}); }, "relu_count = -1");
  expect_error([] { (void)io::to_csv({result_row{.method = "m"}.set("method", "x")}); },
               "extra column 'method' has the name of a fixed column");
  result_row dup{.method = "m"};
  dup.extra = {{"seed", "1"}, {"seed", "2"}};
  expect_error([&] { (void)io::to_csv({dup}); }, "extra column 'seed' appears twice");

  const std::string header = "method,budget,relu_count,accuracy,pi_latency_s,wall_time_s,images_forwarded\n";
  expect_error([] { (void)io::parse_csv("", "a.csv"); }, "results file 'a.csv' is empty");
  expect_error([] { (void)io::parse_csv("method,budget,relus\n", "a.csv"); }, "header column 3 is 'relus'; expected 'relu_count'");
  expect_error([&] { (void)io::parse_csv(header + "snl,1,2,3,4,5\n", "a.csv"); }, "line 2: 6 fields; expected 7");
  expect_error([&] { (void)io::parse_csv(header + "snl,1,2,3,4,5,6\nsnl,x,2,3,4,5,6\n", "a.csv"); },
               "line 3, column 'budget': 'x' is not a number");
  expect_error([&] { (void)io::parse_csv(header + "snl,1,2.5,3,4,5,6\n", "a.csv"); },
               "column 'relu_count': '2.5' is not an integer");
  expect_error([&] { (void)io::parse_csv(header + "\"snl,1,2,3,4,5,6\n", "a.csv"); }, "never closed");
  expect_error([&] { (void)io::parse_csv(header + "sn\"l,1,2,3,4,5,6\n", "a.csv"); }, "a quote inside an unquoted field");
  expect_error([&] { (void)io::parse_csv(header + "snl,1,2,150,4,5,6\n", "a.csv"); }, "accuracy (top-1 %) = 150");
  expect_error([] { (void)io::read_csv("/nonexistent/results.csv"); }, "cannot open '/nonexistent/results.csv'");
  // A repeated column name would merge two columns silently (found by scripts/fuzz).
  const std::string fixed = header.substr(0, header.size() - 1);
  expect_error([&] { (void)io::parse_csv(fixed + ",seed,lr,seed\nsnl,1,2,3,4,5,6,1,2,3\n", "a.csv"); },
               "header column 10 'seed' repeats column 8");
  expect_error([&] { (void)io::parse_csv(fixed + ",budget\n", "a.csv"); }, "header column 8 'budget' repeats column 2");
  // Thousands of extra columns read in linear time (pairwise checks took minutes: scripts/fuzz).
  std::string wide_header = fixed, wide_row = "snl,1,2,3,4,5,6";
  for (int c = 0; c < 20000; ++c) {
    wide_header += ",c" + std::to_string(c);
    wide_row += ",1";
  }
  CHECK(io::parse_csv(wide_header + "\n" + wide_row + "\n", "a.csv")[0].extra.size() == 20000);
  // Blank lines and a missing final newline are fine.
  const auto rows = io::parse_csv(header + "\nsnl,+1e3,2,3,4,5,6", "a.csv");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].budget == 1000);
}
