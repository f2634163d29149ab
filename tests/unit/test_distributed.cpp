// The data-parallel layer within one process: the launch environment and its errors, sharding,
// the loader's shards, bucketed sums and replica checksums on a group of one, BatchNorm that can
// synchronize (against torch's, and its arithmetic through a stand-in for a second rank), and
// the rendezvous's errors (a port in use, a rank that never comes, --nproc 0). Several real
// processes: tests/distributed/dist_check.cpp (ctest dist_*).
#include "test_support.hpp"
#include "train_fixtures.hpp"

#include <linearize/data/loader.hpp>
#include <linearize/distributed/buckets.hpp>
#include <linearize/distributed/env.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/distributed/launch.hpp>
#include <linearize/distributed/process_group.hpp>
#include <linearize/distributed/replicas.hpp>
#include <linearize/distributed/shard.hpp>
#include <linearize/models/batch_norm.hpp>
#include <linearize/train/trainer.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>

using namespace linearize;
using linearize::testing::close;
using linearize::testing::expect_error;

namespace {

distributed::env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

/// A second rank that holds exactly what this one holds: a sum doubles, a broadcast keeps.
struct twin_ranks final : distributed::communicator {
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 2; }
  [[nodiscard]] std::string backend() const override { return "twin"; }
  void sum(std::vector<torch::Tensor>& tensors) override {
    for (auto& t : tensors) t.mul_(2);
  }
  void broadcast(std::vector<torch::Tensor>&, int) override {}
  void barrier() override {}
};

/// Makes `g` the world while it lives.
struct world_scope {
  explicit world_scope(distributed::group g) { distributed::set_world(std::move(g)); }
  world_scope(const world_scope&) = delete;
  world_scope& operator=(const world_scope&) = delete;
  ~world_scope() { distributed::set_world({}); }
};

}  // namespace

TEST_CASE("launch environment: absent is one process; complete is read; anything else is a clear error",
          "[distributed]") {
  CHECK_FALSE(distributed::read_launch_env(env_of({})).has_value());
  const auto env = distributed::read_launch_env(
      env_of({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}}));
  REQUIRE(env.has_value());
  CHECK(env->rank == 1);
  CHECK(env->world_size == 4);
  CHECK(env->local_rank == 1);  // RANK when LOCAL_RANK is absent
  CHECK(env->master_addr == "node0");
  CHECK(env->master_port == 29500);
  CHECK(distributed::read_launch_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}}))->world_size == 1);

  const auto refused = [](std::map<std::string, std::string> vars, const std::string& needle) {
    expect_error([&] { (void)distributed::read_launch_env(env_of(vars)); }, needle);
  };
  refused({{"WORLD_SIZE", "2"}}, "WORLD_SIZE='2' is set but RANK is not");
  refused({{"RANK", "0"}}, "RANK='0' is set but WORLD_SIZE is not");
  refused({{"RANK", "x"}, {"WORLD_SIZE", "2"}}, "RANK='x'; expected a whole number in [0, 2)");
  refused({{"RANK", "2"}, {"WORLD_SIZE", "2"}}, "RANK='2'; expected a whole number in [0, 2)");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "0"}}, "WORLD_SIZE='0'; expected a whole number >= 1");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "2 "}}, "WORLD_SIZE='2 '");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}}, "MASTER_ADDR=''; expected the host of rank 0");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}, "MASTER_PORT is not set");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}},
          "MASTER_PORT='70000'; expected a port number in [1, 65535]");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "-1"}}, "LOCAL_RANK='-1'");
}

TEST_CASE("shards: contiguous, in rank order, sizes differing by at most one", "[distributed]") {
  for (const int64_t n : {0, 1, 7, 11, 128}) {
    for (const int ranks : {1, 2, 3, 5}) {
      int64_t next = 0, smallest = n, largest = 0;
      for (int r = 0; r < ranks; ++r) {
        const auto s = distributed::shard_of(n, r, ranks);
        CHECK(s.begin == next);
        next = s.end;
        smallest = std::min(smallest, s.size());
        largest = std::max(largest, s.size());
      }
      CHECK(next == n);
      CHECK(largest - smallest <= 1);
    }
  }
  CHECK(distributed::shard_of(11, 0, 2).size() == 6);
  expect_error([] { (void)distributed::shard_of(4, 2, 2); }, "rank 2 of 2");
}

TEST_CASE("loader shards: laid end to end they are the whole batch, augmented alike", "[distributed]") {
  const auto data = testing::stripes(75, 3);
  const data::loader_options whole{.batch_size = 32, .augment = {.crop_padding = 1, .horizontal_flip = true},
                                   .seed = 9, .prefetch = false};
  const data::batch_loader one(data, whole);
  for (const int ranks : {2, 3}) {
    for (int64_t index = 0; index < one.batches_per_epoch(); ++index) {
      const auto full = one.make(4, index);
      std::vector<torch::Tensor> images, labels;
      for (int r = 0; r < ranks; ++r) {
        auto part = whole;
        part.shard_index = r;
        part.shard_count = ranks;
        const auto b = data::batch_loader(data, part).make(4, index);
        images.push_back(b.images);
        labels.push_back(b.labels);
      }
      CHECK(torch::equal(torch::cat(images), full.images));
      CHECK(torch::equal(torch::cat(labels), full.labels));
    }
  }
  CHECK(one.batch_samples(2) == 11);
  auto bad = whole;
  bad.shard_index = 2;
  bad.shard_count = 2;
  expect_error([&] { data::batch_loader(data, bad); }, "shard 2 of 2");
}

TEST_CASE("a group of one: collectives change nothing; gathers give one row", "[distributed]") {
  const distributed::group alone;
  CHECK(alone.alone());
  CHECK(alone.writer());
  CHECK(distributed::world().alone());
  auto t = torch::arange(6, torch::kFloat);
  std::vector<torch::Tensor> v{t};
  alone.sum(v);
  CHECK(torch::equal(t, torch::arange(6, torch::kFloat)));
  CHECK(alone.gather(t).sizes() == torch::IntArrayRef({1, 6}));
  CHECK(alone.gather_text("abc") == std::vector<std::string>{"abc"});
  CHECK(alone.traffic().collectives == 0);
}

TEST_CASE("flat buckets: few buckets, sums and scaling per tensor, extras in the same round",
          "[distributed]") {
  std::vector<torch::Tensor> tensors{torch::ones({3, 4}), torch::full({5}, 2.0), torch::ones({2}, torch::kDouble),
                                     torch::full({7}, 3.0)};
  distributed::flat_buckets buckets(tensors, /*bucket_bytes=*/64);
  // floats 12 + 5 elements (68 bytes: split), doubles 2, floats 7: four buckets
  CHECK(buckets.buckets() == 4);
  distributed::flat_buckets large(tensors);
  CHECK(large.buckets() == 3);  // a change of dtype starts a bucket
  const world_scope twins(distributed::group(std::make_shared<twin_ranks>()));
  auto extra = torch::tensor({1.5}, torch::kDouble);
  large.sum(distributed::world(), tensors, {extra}, 0.5);  // each rank's half, summed: as it was
  CHECK(torch::equal(tensors[0], torch::ones({3, 4})));
  CHECK(torch::equal(tensors[1], torch::full({5}, 2.0)));
  CHECK(torch::equal(tensors[2], torch::ones({2}, torch::kDouble)));
  CHECK(extra.item<double>() == 3.0);
  CHECK(distributed::world().traffic().collectives == 1);
}

TEST_CASE("replica checksums: equal for equal states, different after any change", "[distributed]") {
  const auto a = testing::tiny_conv(5), b = testing::tiny_conv(5);
  CHECK(distributed::state_checksum(*a) == distributed::state_checksum(*b));
  {
    torch::NoGradGuard no_grad;
    b->head->bias[1].add_(1e-7);
  }
  CHECK(distributed::state_checksum(*a) != distributed::state_checksum(*b));
  const auto c = testing::tiny_conv(5);
  c->bn->running_var[0].fill_(2);  // buffers count too
  CHECK(distributed::state_checksum(*a) != distributed::state_checksum(*c));
}

TEST_CASE("models::BatchNorm2d is torch's BatchNorm2d where it does not synchronize", "[distributed]") {
  torch::manual_seed(3);
  auto ours = models::BatchNorm2d(5);
  auto theirs = torch::nn::BatchNorm2d(5);
  CHECK(ours->named_parameters().keys() == theirs->named_parameters().keys());
  CHECK(ours->named_buffers().keys() == theirs->named_buffers().keys());
  const auto x = torch::randn({8, 5, 3, 3});
  for (const bool training : {true, false}) {
    ours->train(training);
    theirs->train(training);
    ours->synchronized = true;  // one process: nothing to synchronize with
    CHECK(torch::allclose(ours(x), theirs(x)));
    CHECK(torch::allclose(ours->running_mean, theirs->running_mean));
    CHECK(torch::allclose(ours->running_var, theirs->running_var));
  }
  std::ostringstream printed;
  printed << *ours;
  CHECK(printed.str().find("linearize::models::BatchNorm2d(5, eps=1e-05") != std::string::npos);
  CHECK(models::visit_batchnorm(ours.ptr().get(), [](auto&) {}));
  CHECK(models::visit_batchnorm(theirs.ptr().get(), [](auto&) {}));
}

TEST_CASE("synchronized BatchNorm: over two ranks holding the same shard, the output, the input's "
          "gradient and the running statistics are those of that shard alone", "[distributed]") {
  torch::manual_seed(4);
  auto ours = models::BatchNorm2d(3);
  auto theirs = torch::nn::BatchNorm2d(3);
  {
    torch::NoGradGuard no_grad;
    ours->weight.copy_(torch::tensor({0.5, 1.5, -1.0}));
    ours->bias.copy_(torch::tensor({0.1, 0.0, 0.3}));
    theirs->weight.copy_(ours->weight);
    theirs->bias.copy_(ours->bias);
  }
  const auto x = (torch::randn({6, 3, 4, 4}) * 3 + 2).set_requires_grad(true);
  const auto x2 = x.detach().clone().set_requires_grad(true);
  const auto target = torch::randn({6, 3, 4, 4});
  {
    const world_scope twins(distributed::group(std::make_shared<twin_ranks>()));
    // synchronize_batchnorm visits the layers inside the module it is given (a network's).
    torch::nn::Sequential network(ours);
    const models::synchronize_batchnorm on(*network, true);
    (ours(x) * target).sum().backward();
    CHECK(ours->synchronized);
  }
  CHECK_FALSE(ours->synchronized);  // cleared when the scope ended
  (theirs(x2) * target).sum().backward();
  CHECK(close(x.grad(), x2.grad(), 1e-4, 1e-5));
  CHECK(close(ours->running_mean, theirs->running_mean));
  // The unbiased variance counts both ranks' samples: n / (n - 1) with n = 2 x 96.
  const auto biased = x.detach().var({0, 2, 3}, /*unbiased=*/false);
  CHECK(close(ours->running_var, 0.9 + 0.1 * biased * (192.0 / 191.0), 1e-4, 1e-5));
  CHECK(close(ours->weight.grad(), theirs->weight.grad(), 1e-4, 1e-5));  // this rank's own share
  CHECK(close(ours->bias.grad(), theirs->bias.grad(), 1e-4, 1e-5));
  CHECK(ours->num_batches_tracked.item<int64_t>() == 1);
}

TEST_CASE("sync_batchnorm on a network with torch's BatchNorm is an error naming the layer", "[distributed]") {
  auto net = testing::tiny_conv(1);
  train::options o;
  o.sync_batchnorm = true;
  o.progress.mode = train::progress_mode::silent;
  expect_error([&] { (void)train::fit(*net, testing::stripes(16, 1), o); },
               "sync_batchnorm: module 'bn' is a torch::nn::BatchNorm2dImpl, which cannot synchronize");
}

TEST_CASE("rendezvous errors: a port in use, a rank that never comes, --nproc 0, --nproc under a launcher",
          "[distributed]") {
  REQUIRE(distributed::has_gloo());
  // Hold a port, then ask rank 0 of two to serve the rendezvous on it.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);
  const distributed::launch_env env{.rank = 0, .world_size = 2, .master_addr = "127.0.0.1", .master_port = port};
  expect_error([&] { (void)distributed::connect(env, {.timeout = std::chrono::seconds(2)}); },
               "rank 0 cannot serve the rendezvous on MASTER_PORT=" + std::to_string(port) + " (MASTER_ADDR=127.0.0.1): "
               "the port is in use");
  ::close(fd);

  // Rank 0 of two, and rank 1 never starts: a timeout, not a hang.
  const auto t0 = std::chrono::steady_clock::now();
  const distributed::launch_env lonely{.rank = 0, .world_size = 2, .master_addr = "127.0.0.1",
                                       .master_port = distributed::detail::free_port()};
  expect_error([&] { (void)distributed::connect(lonely, {.timeout = std::chrono::seconds(1)}); },
               "rank 0 of 2 timed out after 1 s waiting for the rendezvous");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));

  char arg0[] = "program";
  char* argv[] = {arg0, nullptr};
  expect_error([&] { (void)distributed::launch_local(0, 1, argv); },
               "launch: --nproc 0; expected at least 1");
  ::setenv("WORLD_SIZE", "4", 1);
  expect_error([&] { (void)distributed::launch_local(2, 1, argv); },
               "--nproc 2 given, but WORLD_SIZE='4' is set already");
  ::unsetenv("WORLD_SIZE");
}
