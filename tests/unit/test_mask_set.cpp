// MaskSet: finds every slot of a module tree in a stable order, counts, indexes, applies and
// stores the whole network's binary mask, and refuses masks that belong to another network.
#include "mask_net.hpp"
#include "test_support.hpp"

#include <linearize/core/mask_set.hpp>

#include <fstream>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;

using Net = linearize::testing::MaskNet;

TEST_CASE("MaskSet finds slots in nested modules, Sequential and ModuleList, in order", "[mask_set]") {
  Net net;
  const MaskSet masks(net);
  REQUIRE(masks.size() == 4);
  CHECK(masks.names() == std::vector<std::string>{"stem", "body.1", "body.2", "heads.0"});
  CHECK(masks.total_relus() == 18 + 18 + 18 + 4);
  CHECK(masks.relu_count() == masks.total_relus());
  CHECK(masks.entries() == 18 + 2 + 18 + 1);
  CHECK(masks.offset(2) == 20);
  auto loc = masks.locate(21);
  CHECK(loc.slot == 2);
  CHECK(loc.entry == 1);
  expect_error([&] { (void)masks.locate(39); }, "flat index 39 out of range [0, 39)");
  const auto per_entry = masks.relus_per_entry();
  CHECK(per_entry[18].item<int64_t>() == 9);  // channel entry covers 3x3
  CHECK(per_entry[38].item<int64_t>() == 4);  // layer entry covers everything
  CHECK(per_entry.sum().item<int64_t>() == masks.total_relus());
  const auto stages = masks.per_stage();
  REQUIRE(stages.size() == 3);
  CHECK(stages[1].name == "body");
  CHECK(stages[1].total == 36);
}

TEST_CASE("MaskSet gets and sets the whole binary mask", "[mask_set]") {
  Net net;
  const MaskSet masks(net);
  auto flat = torch::zeros({masks.entries()}, torch::kBool);
  flat[0] = true;     // one element of the stem
  flat[18] = true;    // first channel of body.1: 9 ReLUs
  flat[38] = true;    // the whole head layer: 4 ReLUs
  masks.harden(flat);
  CHECK(masks.relu_count() == 1 + 9 + 4);
  CHECK(torch::equal(masks.binary(), flat));
  const auto rows = masks.per_slot();
  CHECK(rows[1].active == 9);
  CHECK(rows[2].active == 0);
  expect_error([&] { masks.harden(torch::ones({5})); }, "expected a flat mask of 39 entries");
}

TEST_CASE("MaskSet saves and loads masks, refusing other architectures and corrupt files",
          "[mask_set]") {
  linearize::testing::temp_dir dir("mask_set");
  Net net;
  const MaskSet masks(net);
  torch::manual_seed(4);
  auto flat = torch::rand({masks.entries()}) > 0.5;
  masks.harden(flat);
  masks.save(dir / "net.mask");

  Net other;
  const MaskSet restored(other);
  restored.load(dir / "net.mask");
  CHECK(torch::equal(restored.binary(), flat));
  CHECK(restored.relu_count() == masks.relu_count());

  torch::nn::Sequential different(ReluSlot(slot_options{.shape = {2, 3, 3}}),
                                  ReluSlot(slot_options{.shape = {5}}));
  const MaskSet wrong(different);
  expect_error([&] { wrong.load(dir / "net.mask"); }, "is for another architecture");

  const auto bytes = read_file(dir / "net.mask");
  {
    std::ofstream out(dir / "flipped.mask", std::ios::binary);
    auto copy = bytes;
    copy.back() = static_cast<char>(copy.back() ^ 0x1);
    out << copy;
  }
  expect_error([&] { restored.load(dir / "flipped.mask"); }, "checksum mismatch");
  {
    std::ofstream out(dir / "short.mask", std::ios::binary);
    out << bytes.substr(0, bytes.size() - 2);
  }
  expect_error([&] { restored.load(dir / "short.mask"); }, "truncated");
  {
    std::ofstream out(dir / "junk.mask", std::ios::binary);
    out << "PK\x03\x04 not a mask";
  }
  expect_error([&] { restored.load(dir / "junk.mask"); }, "not a linearize mask file");
  expect_error([&] { restored.load(dir / "missing.mask"); }, "cannot open");
}

TEST_CASE("MaskSet errors: no slots, slots without a shape", "[mask_set]") {
  torch::nn::Sequential empty(torch::nn::Linear(3, 3));
  expect_error([&] { MaskSet m(empty); }, "contains no ReluSlot");
  torch::nn::Sequential lazy{ReluSlot()};
  expect_error([&] { MaskSet m(lazy); }, "has not seen an input yet");
  lazy->forward(torch::randn({1, 3, 2}));
  CHECK(MaskSet(lazy).total_relus() == 6);
}

TEST_CASE("MaskSet mask parameters are the slots' own tensors", "[mask_set]") {
  Net net;
  const MaskSet masks(net);
  auto params = masks.parameters();
  REQUIRE(params.size() == 4);
  {
    torch::NoGradGuard no_grad;
    params[0].zero_();
  }
  CHECK(masks[0].relu_count() == 0);
  CHECK(close(masks.values().slice(0, 0, 18), torch::zeros({18})));
}
