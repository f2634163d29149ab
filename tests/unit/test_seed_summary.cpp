// Results over seeds: mean and standard error, comparisons paired by seed, the markdown tables a
// README quotes, the generated section of a markdown file, and error bars on the plot.
#include "test_support.hpp"

#include <linearize/io/markdown_section.hpp>
#include <linearize/io/seed_summary.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

using namespace linearize;
using linearize::testing::expect_error;

namespace {

io::result_row row(const std::string& method, const std::string& budget, int seed, double accuracy,
                   int64_t relus = 100) {
  io::result_row r{.method = method, .budget = 100, .relu_count = relus, .accuracy = accuracy};
  r.set("budget_text", budget).set("seed", seed);
  return r;
}

}  // namespace

TEST_CASE("summarize: mean and standard error of the mean; none below two values", "[results]") {
  const auto m = io::summarize({1, 2, 3, 6});
  CHECK(m.mean == Approx(3));
  // sample standard deviation sqrt(14 / 3), over sqrt(4)
  CHECK(m.se == Approx(std::sqrt(14.0 / 3) / 2));
  CHECK(m.n == 4);
  CHECK(std::isnan(io::summarize({5}).se));
  CHECK(io::summarize({5}).mean == 5);
  CHECK(std::isnan(io::summarize({}).mean));
}

TEST_CASE("Groups by method and budget; comparisons pair by seed", "[results]") {
  // b beats a by 1 point on every seed, though the seeds differ by much more between them: the
  // paired difference has no spread, the unpaired one would.
  const std::vector<io::result_row> rows = {
      row("a", "5%", 0, 80), row("b", "5%", 0, 81), row("a", "5%", 1, 70), row("b", "5%", 1, 71),
      row("a", "5%", 2, 60), row("b", "5%", 2, 61), row("a", "1%", 0, 50), row("b", "1%", 7, 99)};
  const auto groups = io::summarize_groups(rows, "budget_text");
  REQUIRE(groups.size() == 4);
  CHECK(groups[0].method == "a");
  CHECK(groups[0].group == "5%");
  CHECK(groups[0].accuracy.mean == Approx(70));
  CHECK(groups[0].accuracy.se == Approx(10 / std::sqrt(3.0)));
  CHECK(groups[1].accuracy.n == 3);
  const auto c = io::compare(rows, "b", "a", "5%", "budget_text");
  CHECK(c.difference.mean == Approx(1));
  CHECK(c.difference.se == Approx(0).margin(1e-12));
  CHECK(c.difference.n == 3);
  // A zero spread is not evidence of anything: it is "beyond" only as a strict inequality.
  CHECK(c.beyond_two_se());
  const auto reversed = io::compare(rows, "a", "b", "5%", "budget_text");
  CHECK(reversed.difference.mean == Approx(-1));
  // At 1% they share no seed.
  expect_error([&] { (void)io::compare(rows, "a", "b", "1%", "budget_text"); }, "share no seed");

  const std::vector<io::result_row> noisy = {row("a", "5%", 0, 80), row("b", "5%", 0, 81), row("a", "5%", 1, 80),
                                             row("b", "5%", 1, 79), row("a", "5%", 2, 80), row("b", "5%", 2, 82)};
  const auto n = io::compare(noisy, "b", "a", "5%", "budget_text");
  CHECK(n.difference.mean == Approx(2.0 / 3));
  CHECK_FALSE(n.beyond_two_se());  // differences 1, -1, 2: s.e. 0.88
}

TEST_CASE("Markdown tables carry the numbers and the verdict", "[results]") {
  const std::vector<io::result_row> rows = {row("a", "5%", 0, 80, 90), row("a", "5%", 1, 82, 110),
                                            row("b", "5%", 0, 70), row("b", "5%", 1, 71)};
  const auto summary = io::markdown_summary(io::summarize_groups(rows, "budget_text"));
  CHECK(summary.find("| a | 5% | 100 | 81.00 ± 1.00 | 0 | 2 |") != std::string::npos);
  CHECK(summary.find("| b | 5% | 100 | 70.50 ± 0.50 | 0 | 2 |") != std::string::npos);
  const auto table = io::markdown_comparisons({io::compare(rows, "a", "b", "5%", "budget_text")});
  CHECK(table.find("| a − b | 5% | 10.50 ± 0.50 | yes | 2 |") != std::string::npos);
  const auto one = io::markdown_comparisons({io::compare({row("a", "1%", 0, 1), row("b", "1%", 0, 2)}, "a", "b",
                                                         "1%", "budget_text")});
  CHECK(one.find("n/a (one seed)") != std::string::npos);
}

TEST_CASE("A generated markdown section replaces only what lies between its markers", "[results]") {
  const std::string text = "# Title\n<!-- t:begin -->\nold\n<!-- t:end -->\nrest\n";
  CHECK(io::replace_section(text, "t", "new\n", "x.md") == "# Title\n<!-- t:begin -->\nnew\n<!-- t:end -->\nrest\n");
  expect_error([&] { (void)io::replace_section(text, "other", "", "x.md"); }, "other:begin");
  expect_error([&] { (void)io::replace_section("<!-- t:begin -->\nno end\n", "t", "", "x.md"); }, "t:end");
  // A marker inside a line is not one: the section starts at the whole line.
  CHECK(io::replace_section("say <!-- t:begin -->\n<!-- t:begin -->\nold\n<!-- t:end -->\n", "t", "new\n", "x.md") ==
        "say <!-- t:begin -->\n<!-- t:begin -->\nnew\n<!-- t:end -->\n");
  expect_error([&] { (void)io::replace_section("say <!-- t:begin -->\nold\n<!-- t:end -->\n", "t", "", "x.md"); },
               "t:begin");
  const auto dir = std::filesystem::temp_directory_path() / "linearize_section_test";
  std::filesystem::create_directories(dir);
  const auto path = dir / "README.md";
  write_atomically(path, [&](std::ostream& out) { out << text; });
  io::write_section(path, "t", "table\n");
  CHECK(read_file(path) == "# Title\n<!-- t:begin -->\ntable\n<!-- t:end -->\nrest\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("The summary plot draws the standard errors as bars and refuses bad ones", "[results]") {
  const std::vector<io::result_row> rows = {row("a", "5%", 0, 80), row("a", "5%", 1, 84), row("a", "1%", 0, 60, 20)};
  const auto plot = io::accuracy_plot(io::summarize_groups(rows, "budget_text"), "t");
  REQUIRE(plot.lines.size() == 1);
  REQUIRE(plot.lines[0].points.size() == 2);
  CHECK(plot.lines[0].points[0].y_error == Approx(2));
  CHECK(plot.lines[0].points[1].y_error == 0);  // one seed: no bar
  const auto svg = io::render_svg(plot);
  // The 5% point's bar: a stem and two caps in the series' colour at the bar's stroke width.
  io::line_plot plain = plot;
  plain.lines[0].points[0].y_error = 0;
  const auto bars = [](const std::string& s) {
    const std::string style = "stroke=\"#0072B2\" stroke-width=\"1.4\"";
    size_t n = 0;
    for (size_t at = s.find(style); at != std::string::npos; at = s.find(style, at + 1)) ++n;
    return n;
  };
  CHECK(bars(svg) == 3);
  CHECK(bars(io::render_svg(plain)) == 0);
  plain.lines[0].points[0].y_error = -1;
  expect_error([&] { (void)io::render_svg(plain); }, "error bar -1");
}
