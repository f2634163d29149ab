// The fuzz corpora replayed (seconds): every file of tests/fuzz/corpus/<target>/ through its
// target (tests/fuzz/targets.hpp) either parses or throws linearize::error, nothing else. The
// files named valid* were written by the library's own writers and must parse; the others are
// malformed seeds and the findings of scripts/fuzz, kept as regression cases.
#include "test_support.hpp"

#include "../fuzz/targets.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

TEST_CASE("Every fuzz corpus file parses or throws linearize::error", "[fuzz]") {
  namespace fs = std::filesystem;
  // Beside this file in the source tree (CMake compiles it by its absolute path). Not a compile
  // definition: a definition on one source file rewrites the target's flags.make, and every
  // other test file would compile again.
  const fs::path corpus = fs::path(__FILE__).parent_path().parent_path() / "fuzz" / "corpus";
  for (const auto& t : linearize::fuzz::targets()) {
    const auto dir = corpus / t.name;
    REQUIRE(fs::is_directory(dir));
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    int valid = 0, refused = 0;
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      REQUIRE(in);
      const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                       std::istreambuf_iterator<char>()};
      INFO(t.name << ": " << file.string());
      bool parsed = false;
      REQUIRE_NOTHROW(parsed = linearize::fuzz::parses(t, bytes.data(), bytes.size()));
      if (file.filename().string().starts_with("valid")) {
        CHECK(parsed);
        ++valid;
      } else if (!parsed) {
        ++refused;
      }
    }
    INFO(t.name);
    CHECK(valid > 0);    // a seed the parser accepts: the fuzzer starts inside the format
    CHECK(refused > 0);  // and malformed inputs it refuses
  }
}
