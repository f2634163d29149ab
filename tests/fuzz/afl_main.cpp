// The fuzzing driver, built by scripts/fuzz with AFL++'s compiler under ASan and UBSan:
//   afl_fuzz_target <target>             input from AFL++ (persistent mode), or stdin
//   afl_fuzz_target <target> <file>...   runs each file once (reproducing a finding)
//   afl_fuzz_target --seeds <corpus>     writes the valid seed inputs into <corpus>/<target>/
//   afl_fuzz_target --list               the target names
// A target may throw linearize::error and nothing else: any other exception aborts, so that
// AFL++ records the input as a crash.
#include "seeds.hpp"
#include "targets.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

namespace {

/// Runs one input; a file given by name (`file` not null) gets a line saying what happened.
void run_or_abort(const linearize::fuzz::target& t, const uint8_t* data, size_t size,
                  const char* file = nullptr) {
  try {
    try {
      t.run(data, size);
      if (file) std::printf("%s: parsed\n", file);
    } catch (const linearize::error& e) {
      if (file) std::printf("%s: linearize::error: %s\n", file, e.what());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: an exception other than linearize::error escaped: %s\n", t.name,
                 e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "%s: a non-std exception escaped\n", t.name);
    std::abort();
  }
}

std::vector<uint8_t> slurp(std::istream& in) {
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int usage() {
  std::fprintf(stderr,
               "usage: afl_fuzz_target <target> [file...] | --seeds <corpus dir> | --list\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace linearize::fuzz;
  if (argc < 2) return usage();
  const std::string first = argv[1];
  if (first == "--list") {
    for (const auto& t : targets()) std::printf("%s\n", t.name);
    return 0;
  }
  if (first == "--seeds") {
    if (argc != 3) return usage();
    write_seeds(argv[2]);
    return 0;
  }
  const target* t = find_target(first);
  if (!t) {
    std::fprintf(stderr, "unknown target '%s'; --list names them\n", first.c_str());
    return 2;
  }
  (void)scratch();  // before the fork server: each child then writes into the same directory
  if (argc > 2) {
    for (int i = 2; i < argc; ++i) {
      std::ifstream in(argv[i], std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "cannot read '%s'\n", argv[i]);
        return 2;
      }
      const auto bytes = slurp(in);
      run_or_abort(*t, bytes.data(), bytes.size(), argv[i]);
    }
    return 0;
  }
#ifdef __AFL_FUZZ_TESTCASE_LEN
  // LibTorch's static initialisation is slow: start the fork server only after it.
  __AFL_INIT();
  const unsigned char* buf = __AFL_FUZZ_TESTCASE_BUF;
  while (__AFL_LOOP(10000)) {
    const auto len = static_cast<size_t>(__AFL_FUZZ_TESTCASE_LEN);
    const std::vector<uint8_t> bytes(buf, buf + len);  // a heap copy: ASan sees overreads
    run_or_abort(*t, bytes.data(), bytes.size());
  }
#else
  const auto bytes = slurp(std::cin);
  run_or_abort(*t, bytes.data(), bytes.size());
#endif
  return 0;
}
