// Test runner: the library's start-up settings first, as every program using it should.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <linearize/support/runtime.hpp>

#include <torch/torch.h>

int main(int argc, char* argv[]) {
  linearize::runtime::configure();
  // LibTorch seeds its global generator anew in each process; the tests draw their networks'
  // initial weights from it, so without a seed a run could not be repeated.
  torch::manual_seed(0);
  return Catch::Session().run(argc, argv);
}
