// Test runner: the library's start-up settings first, as every program using it should.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <linearize/support/runtime.hpp>

int main(int argc, char* argv[]) {
  linearize::runtime::configure();
  return Catch::Session().run(argc, argv);
}
