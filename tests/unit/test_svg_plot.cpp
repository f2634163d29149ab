// SVG plots: the text carries what a reader needs (ticks, legend, escaped labels), the SVG
// renders to a non-blank image with the series' colours (rsvg-convert, decoded here with zlib),
// and bad input is refused. Set LINEARIZE_PLOT_DIR to keep the rendered PNGs for a look.
#include "test_support.hpp"

#include <linearize/io/svg_plot.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using namespace linearize;
using linearize::testing::expect_error;

namespace {

struct image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // 3 bytes per pixel, alpha composited on white
};

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) | (uint32_t(uint8_t(s[at + 2])) << 8) |
         uint32_t(uint8_t(s[at + 3]));
}

// A minimal PNG reader for what rsvg-convert writes: 8-bit grey/RGB/RGBA, not interlaced.
image read_png(const std::filesystem::path& path) {
  const std::string file = read_file(path);
  REQUIRE(file.size() > 8);
  REQUIRE(file.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  image img;
  int depth = 0, colour = 0, interlace = 0;
  std::string idat;
  for (size_t at = 8; at + 8 <= file.size();) {
    const uint32_t len = be32(file, at);
    const std::string type = file.substr(at + 4, 4);
    REQUIRE(at + 12 + len <= file.size());
    if (type == "IHDR") {
      img.width = be32(file, at + 8);
      img.height = be32(file, at + 12);
      depth = uint8_t(file[at + 16]);
      colour = uint8_t(file[at + 17]);
      interlace = uint8_t(file[at + 20]);
    } else if (type == "IDAT") {
      idat += file.substr(at + 8, len);
    } else if (type == "IEND") {
      break;
    }
    at += 12 + len;
  }
  REQUIRE(depth == 8);
  REQUIRE(interlace == 0);
  const int channels = colour == 0 ? 1 : colour == 2 ? 3 : colour == 4 ? 2 : colour == 6 ? 4 : 0;
  REQUIRE(channels > 0);
  const size_t stride = size_t(img.width) * channels;
  std::vector<uint8_t> raw((stride + 1) * img.height);
  uLongf raw_len = raw.size();
  REQUIRE(uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) == Z_OK);
  REQUIRE(raw_len == raw.size());
  std::vector<uint8_t> px(stride * img.height), prev(stride, 0);
  for (uint32_t y = 0; y < img.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* out = &px[y * stride];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= size_t(channels) ? out[i - channels] : 0, b = prev[i],
                c = i >= size_t(channels) ? prev[i - channels] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: FAIL("PNG filter type " << int(filter));
      }
      out[i] = uint8_t(in[i] + pred);
    }
    std::copy(out, out + stride, prev.begin());
  }
  img.rgb.resize(size_t(img.width) * img.height * 3);
  for (size_t p = 0; p < size_t(img.width) * img.height; ++p) {
    const uint8_t* s = &px[p * channels];
    const int alpha = channels == 4 ? s[3] : channels == 2 ? s[1] : 255;
    for (int k = 0; k < 3; ++k) {
      const int v = channels >= 3 ? s[k] : s[0];
      img.rgb[p * 3 + k] = uint8_t((v * alpha + 255 * (255 - alpha)) / 255);
    }
  }
  return img;
}

// Renders with rsvg-convert (Debian package librsvg2-bin, installed by scripts/run). Without it
// the check fails: a plot nobody has seen rendered is not tested.
image render(const std::filesystem::path& svg, const std::string& name) {
  if (std::system("command -v rsvg-convert >/dev/null 2>&1") != 0)
    FAIL("rsvg-convert not found: install Debian's librsvg2-bin (scripts/run does) to check that plots render");
  const auto png = svg.parent_path() / (name + ".png");
  const std::string cmd = "rsvg-convert -o '" + png.string() + "' '" + svg.string() + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  if (const char* keep = std::getenv("LINEARIZE_PLOT_DIR")) {
    std::filesystem::create_directories(keep);
    std::filesystem::copy_file(png, std::filesystem::path(keep) / (name + ".png"),
                               std::filesystem::copy_options::overwrite_existing);
  }
  return read_png(png);
}

struct pixel_stats {
  double dark_fraction = 0;    // clearly not background
  double luminance_std = 0;
  size_t near(uint8_t r, uint8_t g, uint8_t b, const image& img) const {
    size_t n = 0;
    for (size_t p = 0; p + 2 < img.rgb.size(); p += 3)
      n += std::abs(img.rgb[p] - r) < 24 && std::abs(img.rgb[p + 1] - g) < 24 && std::abs(img.rgb[p + 2] - b) < 24;
    return n;
  }
};

pixel_stats stats(const image& img) {
  pixel_stats s;
  double sum = 0, sum2 = 0;
  size_t dark = 0;
  const size_t n = size_t(img.width) * img.height;
  for (size_t p = 0; p < n; ++p) {
    const double l = (0.2126 * img.rgb[3 * p] + 0.7152 * img.rgb[3 * p + 1] + 0.0722 * img.rgb[3 * p + 2]) / 255;
    sum += l;
    sum2 += l * l;
    dark += l < 0.8;
  }
  s.dark_fraction = double(dark) / double(n);
  s.luminance_std = std::sqrt(std::max(0.0, sum2 / double(n) - (sum / double(n)) * (sum / double(n))));
  return s;
}

io::line_plot published_plot() {
  io::line_plot p;
  p.title = "ResNet18 / CIFAR-100 <accuracy & ReLUs>";
  p.lines.push_back({"snl (ours)", {{6e3, 57.65}, {10e3, 64.16}, {15e3, 67.16}}});
  p.lines.push_back({"snl+bcd (ours)", {{15e3, 69.0}, {6e3, 66.0}, {10e3, 68.0}}});  // unsorted on purpose
  p.references.push_back({"SNL (published)", {{12.9e3, 66.53}, {25e3, 70.05}, {49.4e3, 73.75}, {99.9e3, 75.94}, {180e3, 77.65}}});
  p.references.push_back({"DeepReDuce (published)", {{12.3e3, 64.97}, {49.2e3, 69.50}, {229.4e3, 76.22}}});
  return p;
}

}  // namespace

TEST_CASE("line plot SVG: log ticks, legend, escaped text, one marker per point", "[io]") {
  const auto svg = io::render_svg(published_plot());
  CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(svg.ends_with("</svg>\n"));
  CHECK(svg.find("ResNet18 / CIFAR-100 &lt;accuracy &amp; ReLUs&gt;") != std::string::npos);
  for (const char* tick : {">10K<", ">100K<", ">20K<", ">50K<"}) CHECK(svg.find(tick) != std::string::npos);
  CHECK(svg.find(">1M<") == std::string::npos);  // the axis ends near the data
  CHECK(svg.find("ReLU count (log scale)") != std::string::npos);
  CHECK(svg.find("Top-1 accuracy (%)") != std::string::npos);
  for (const char* label : {"snl (ours)", "snl+bcd (ours)", "SNL (published)", "DeepReDuce (published)"})
    CHECK(svg.find(std::string(">") + label + "<") != std::string::npos);
  CHECK(svg.find("fill=\"white\" stroke=\"#009E73\"") != std::string::npos);  // hollow reference markers
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
  // A linear x axis labels counts too.
  auto linear = published_plot();
  linear.log_x = false;
  const auto lin = io::render_svg(linear);
  CHECK(lin.find("(log scale)") == std::string::npos);
  CHECK(lin.find(">100K<") != std::string::npos);
}

TEST_CASE("plots render to non-blank PNGs with the series' colours", "[io]") {
  linearize::testing::temp_dir dir("svg_plot");
  io::write_svg(dir / "accuracy.svg", published_plot());
  const auto img = render(dir / "accuracy.svg", "accuracy_vs_relus");
  CHECK(img.width == 880);
  CHECK(img.height == 520);
  const auto s = stats(img);
  INFO("dark fraction " << s.dark_fraction << ", luminance std " << s.luminance_std);
  CHECK(s.dark_fraction > 0.005);
  CHECK(s.dark_fraction < 0.5);
  CHECK(s.luminance_std > 0.05);
  CHECK(s.near(0x00, 0x72, 0xB2, img) > 200);  // first series: Okabe-Ito blue
  CHECK(s.near(0xD5, 0x5E, 0x00, img) > 200);  // second series: vermillion

  io::bar_chart chart;
  chart.title = "ReLUs kept per layer";
  for (int i = 0; i < 8; ++i)
    chart.bars.push_back({"layer" + std::to_string(i / 2 + 1) + "." + std::to_string(i % 2) + ".relu",
                          int64_t{65536} >> (i / 2), (int64_t{65536} >> (i / 2)) / (3 + i)});
  chart.bars[3].kept = 0;
  io::write_svg(dir / "bars.svg", chart);
  const auto bars = render(dir / "bars.svg", "relus_per_layer");
  const auto b = stats(bars);
  INFO("bars: dark fraction " << b.dark_fraction << ", luminance std " << b.luminance_std);
  CHECK(b.luminance_std > 0.05);
  CHECK(b.near(0x00, 0x72, 0xB2, bars) > 1000);  // kept bars
  CHECK(b.near(0xDD, 0xDD, 0xDD, bars) > 1000);  // total bars
  chart.log_y = false;
  io::write_svg(dir / "bars_linear.svg", chart);
  CHECK(stats(render(dir / "bars_linear.svg", "relus_per_layer_linear")).luminance_std > 0.05);
}

TEST_CASE("accuracy_plot groups result rows by method; bars_from takes per_slot rows", "[io]") {
  std::vector<io::result_row> rows = {{.method = "snl", .relu_count = 15000, .accuracy = 67.2},
                                      {.method = "bcd", .relu_count = 6000, .accuracy = 66.0},
                                      {.method = "snl", .relu_count = 6000, .accuracy = 57.7},
                                      {.method = "snl", .relu_count = 9000}};  // no accuracy: left out
  const auto plot = io::accuracy_plot(rows, "study");
  REQUIRE(plot.lines.size() == 2);
  CHECK(plot.lines[0].label == "snl");
  REQUIRE(plot.lines[0].points.size() == 2);
  CHECK(plot.lines[0].points[0].x == 6000);
  CHECK(plot.lines[0].points[1].y == 67.2);
  expect_error([] { (void)io::accuracy_plot({io::result_row{.method = "m"}}); }, "has an accuracy");

  struct tally {
    std::string name;
    int64_t total, active;
  };
  const std::vector<tally> per_slot = {{"a", 10, 3}, {"b", 20, 0}};
  const auto bars = io::bars_from(per_slot);
  REQUIRE(bars.size() == 2);
  CHECK(bars[0].name == "a");
  CHECK(bars[0].kept == 3);
  CHECK(bars[1].total == 20);
}

TEST_CASE("plots refuse empty series, non-positive x on a log axis, NaN, bad bars", "[io]") {
  io::line_plot p;
  expect_error([&] { (void)io::render_svg(p); }, "line_plot: no series");
  p.lines.push_back({"empty", {}});
  expect_error([&] { (void)io::render_svg(p); }, "line series 'empty' has no points");
  p.lines[0] = {"zero", {{0, 50}, {1000, 60}}};
  expect_error([&] { (void)io::render_svg(p); }, "point 0: x = 0 on a log x axis; expected x > 0");
  p.log_x = false;
  CHECK_NOTHROW(io::render_svg(p));
  p.lines[0] = {"nan", {{100, NAN}}};
  expect_error([&] { (void)io::render_svg(p); }, "series 'nan', point 0: (100, nan); expected finite coordinates");
  p.lines[0] = {"ok", {{100, 1}}};
  p.references.push_back({"ref", {{-5, 1}}});
  p.log_x = true;
  expect_error([&] { (void)io::render_svg(p); }, "reference series 'ref', point 0: x = -5 on a log x axis");
  p.references.clear();
  p.width = 50;
  expect_error([&] { (void)io::render_svg(p); }, "size 50x520 pixels");
  p.width = 880;
  CHECK_NOTHROW(io::render_svg(p));  // a single point still gets an axis

  io::bar_chart c;
  expect_error([&] { (void)io::render_svg(c); }, "bar_chart: no bars");
  c.bars = {{"l1", 10, 11}};
  expect_error([&] { (void)io::render_svg(c); }, "bar 0 ('l1') keeps 11 of 10 ReLUs");
  c.bars = {{"l1", 0, 0}};
  expect_error([&] { (void)io::render_svg(c); }, "every bar has 0 ReLUs");
  c.bars = {{"l1", 100, 0}, {"l2", 0, 0}};
  CHECK_NOTHROW(io::render_svg(c));
  expect_error([] { io::write_svg("/tmp/x.svg", std::string("hello")); }, "is not SVG");
}

TEST_CASE("grouped bar chart: a bar per positive value, a legend entry per series, durations", "[io]") {
  const io::grouped_bar_chart c{.title = "Latency per layer",
                                .series = {"ReLU", "polynomial", "linear"},
                                .groups = {"conv1", "relu1"},
                                .values = {{0, 0, 2e-3}, {5e-5, 1e-6, 0}}};
  const auto svg = io::render_svg(c);
  const auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (auto at = svg.find(needle); at != std::string::npos; at = svg.find(needle, at + 1)) ++n;
    return n;
  };
  // background + 3 positive values + plot frame + 3 legend swatches
  CHECK(count("<rect") == 8);
  for (const auto* label : {">ReLU<", ">polynomial<", ">linear<", ">conv1<", ">relu1<"})
    CHECK(svg.find(label) != std::string::npos);
  CHECK(svg.find(" ms<") != std::string::npos);  // tick labels are durations
  CHECK(svg.find(" us<") != std::string::npos);

  auto wrong = c;
  wrong.values[1].pop_back();
  expect_error([&] { (void)io::render_svg(wrong); }, "group 1 ('relu1') has 2 values; expected 3");
  wrong = c;
  wrong.values[0][0] = -1;
  expect_error([&] { (void)io::render_svg(wrong); }, "expected finite values >= 0");
  wrong = c;
  wrong.values = {{0, 0, 0}, {0, 0, 0}};
  expect_error([&] { (void)io::render_svg(wrong); }, "every value is 0");
}
