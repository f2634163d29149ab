// Test runner: the library's start-up settings first, as every program using it should.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <linearize/support/runtime.hpp>

#include <torch/utils.h>

namespace {

// LibTorch seeds its global generator anew in each process, and the tests draw their networks'
// initial weights from it: seeded at the start of every test case, a case draws the same
// weights whether it runs alone or after others, and a run can be repeated.
struct seed_each_case : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    TestEventListenerBase::testCaseStarting(info);
    torch::manual_seed(0);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(seed_each_case)

int main(int argc, char* argv[]) {
  linearize::runtime::configure();
  return Catch::Session().run(argc, argv);
}
