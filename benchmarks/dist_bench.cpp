// Data-parallel training throughput: images/s of the trainer on 1, 2, ... ranks started on this
// machine (distributed/launch.hpp), with the same global batch, and the time each step spends in
// communication (the gradient buckets' allreduce and the step statistics that travel with them,
// waiting for the slower rank included). Then, on paper, what a step computes and what it must
// move on N GPUs for ResNet18-IN and WRN-22-8: parameters (masks included) x 4 bytes, of which a
// ring allreduce sends and receives 2 (N - 1) / N per rank per step.
//
//   ./build/benchmarks/dist_bench                      ranks 1 and 2, ResNet18-IN width 16, 28x28
//   ./build/benchmarks/dist_bench --ranks 1,2,4 --model wide_resnet_22_8 --width 2 --size 32
//   ./build/benchmarks/dist_bench --ranks 2 --device cuda   the NCCL path (needs a CUDA LibTorch)
//
// Each configuration is a fresh group of processes: rank r of n gets cores / n threads. Images
// are random bytes (throughput does not depend on what they show), so nothing is read from disk.
#include "../examples/cli.hpp"

#include <linearize/distributed/group.hpp>
#include <linearize/distributed/launch.hpp>
#include <linearize/distributed/process_group.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/models/resnet18_in.hpp>
#include <linearize/models/wide_resnet.hpp>
#include <linearize/pi/mac_count.hpp>
#include <linearize/support/format.hpp>
#include <linearize/train/trainer.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace lz = linearize;
namespace fs = std::filesystem;

namespace {

struct settings {
  std::vector<int> ranks{1, 2};
  std::string model = "resnet18_in";
  double width = 16;
  int64_t size = 28;
  int64_t channels = 1;
  int64_t classes = 10;
  int64_t batch = 128;
  int64_t warmup = 3;
  int64_t steps = 20;
  std::string device = "cpu";
  bool sync_batchnorm = false;
  std::string result{};  // set for the ranks: where rank 0 writes its measurement
};

int64_t count_parameters(const torch::nn::Module& net) {
  int64_t n = 0;
  for (const auto& p : net.parameters(true)) n += p.numel();
  return n;
}

/// One rank's part: trains warmup + steps steps and measures the last `steps`.
int measure(const settings& s) {
  lz::runtime::configure();
  const auto group = lz::distributed::world();
  torch::Device device = torch::kCPU;
  if (s.device == "cuda") {
    lz::require(torch::cuda::is_available(), "dist_bench: --device cuda, but CUDA is not available here");
    device = lz::distributed::local_device();
  }
  torch::manual_seed(1);
  auto net = lz::models::make_model(
      s.model, {.classes = s.classes, .channels = s.channels, .size = s.size, .width = s.width});
  net->to(device);
  const int64_t samples = (s.warmup + s.steps) * s.batch;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  lz::data::image_dataset data;
  data.name = "random";
  data.images = torch::randint(0, 256, {samples, s.channels, s.size, s.size}, gen, torch::kLong).to(torch::kByte);
  data.labels = torch::randint(0, s.classes, {samples}, gen, torch::kLong);
  data.classes = s.classes;
  data.mean = std::vector<double>(static_cast<size_t>(s.channels), 0.5);
  data.stdev = std::vector<double>(static_cast<size_t>(s.channels), 0.25);

  lz::train::options o;
  o.epochs = 1;
  o.batch_size = s.batch;
  o.optimizer = lz::train::sgd{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4};
  o.progress.mode = lz::train::progress_mode::silent;
  o.sync_batchnorm = s.sync_batchnorm;
  using clock = std::chrono::steady_clock;
  clock::time_point start{};
  double comm_start = 0, seconds = 0, comm = 0;
  int64_t bytes_start = 0, bytes = 0;
  (void)lz::train::fit(*net, data, o, lz::train::hooks{.after_step = [&](lz::train::step_context& c) {
                         const auto t = group.traffic();
                         if (c.global_step + 1 == s.warmup) {
                           start = clock::now();
                           comm_start = t.seconds;
                           bytes_start = t.bytes;
                         } else if (c.global_step + 1 == s.warmup + s.steps) {
                           seconds = std::chrono::duration<double>(clock::now() - start).count();
                           comm = t.seconds - comm_start;
                           bytes = t.bytes - bytes_start;
                         }
                       }});
  if (group.writer()) {
    const nlohmann::json row{{"ranks", group.size()},
                             {"backend", group.backend()},
                             {"threads_per_rank", torch::get_num_threads()},
                             {"images_per_second", static_cast<double>(s.steps * s.batch) / seconds},
                             {"seconds_per_step", seconds / static_cast<double>(s.steps)},
                             {"communication_seconds_per_step", comm / static_cast<double>(s.steps)},
                             {"bytes_per_step", static_cast<double>(bytes) / static_cast<double>(s.steps)},
                             {"parameters", count_parameters(*net)}};
    std::ofstream(s.result) << row.dump() << '\n';
  }
  return 0;
}

/// Computation and allreduce volume of one step of `model` on N GPUs (the section "on paper").
void on_paper(const std::string& label, const lz::Network& net, const std::vector<int64_t>& sample,
              int64_t batch_per_gpu) {
  const int64_t params = count_parameters(*net);
  const int64_t masks = [&] {
    int64_t n = 0;
    for (const auto& item : net->named_parameters(true))
      if (item.key().size() >= 4 && item.key().compare(item.key().size() - 4, 4, "mask") == 0)
        n += item.value().numel();
    return n;
  }();
  const auto macs = lz::pi::count_macs(*net, sample).total();
  // Training a step: forward + backward (input and weight gradients), about 3 forwards.
  const double flops_per_gpu = 3.0 * 2.0 * static_cast<double>(macs) * static_cast<double>(batch_per_gpu);
  const double gradient_bytes = 4.0 * static_cast<double>(params);
  fmt::print("{}: {} parameters ({} of them masks) = {:.1f} MB of fp32 gradients per step; "
             "{:.2f} GMACs per image forward, {:.0f} GFLOP per GPU per step (batch {} per GPU, "
             "forward + backward ~ 3 forwards)\n",
             label, lz::grouped(params), lz::grouped(masks), gradient_bytes / 1e6, static_cast<double>(macs) / 1e9, flops_per_gpu / 1e9,
             batch_per_gpu);
  for (const int n : {2, 4, 8}) {
    const double moved = 2.0 * (n - 1) / n * gradient_bytes;
    fmt::print("  N = {}: each GPU sends and receives {:.1f} MB per step (ring: 2(N-1)/N x {:.1f} MB); "
               "{:.0f} FLOP computed per byte moved\n",
               n, moved / 1e6, gradient_bytes / 1e6, flops_per_gpu / moved);
  }
}

int run_all(const settings& s, const std::vector<std::string>& args) {
  const auto dir = fs::temp_directory_path() / fmt::format("dist_bench_{}", ::getpid());
  fs::create_directories(dir);
  std::vector<nlohmann::json> rows;
  for (const int n : s.ranks) {
    const auto file = dir / fmt::format("ranks{}.json", n);
    std::vector<std::string> child = args;
    child.insert(child.end(), {"--ranks", std::to_string(n), "--result", file.string()});
    std::vector<char*> argv;
    for (auto& a : child) argv.push_back(a.data());
    argv.push_back(nullptr);
    fmt::print(stderr, "dist_bench: {} rank(s) ...\n", n);
    const int status = lz::distributed::launch_local(n, static_cast<int>(child.size()), argv.data());
    lz::require(status == 0, "dist_bench: the run on ", n, " rank(s) failed");
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    rows.push_back(nlohmann::json::parse(text.str()));
  }
  fs::remove_all(dir);
  fmt::print("{} (width {:g}) on {}x{}x{} images, global batch {}, {} steps measured after {} warm-up; "
             "BatchNorm {}\n\n",
             s.model, s.width, s.channels, s.size, s.size, s.batch, s.steps, s.warmup,
             s.sync_batchnorm ? "synchronized" : "per rank");
  fmt::print("| ranks | backend | threads per rank | images/s | s per step | communication s per step | "
             "share | MB summed per step per rank |\n|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows)
    fmt::print("| {} | {} | {} | {:.0f} | {:.3f} | {:.4f} | {:.1f}% | {:.2f} |\n", r["ranks"].get<int>(),
               r["backend"].get<std::string>(), r["threads_per_rank"].get<int>(),
               r["images_per_second"].get<double>(), r["seconds_per_step"].get<double>(),
               r["communication_seconds_per_step"].get<double>(),
               100 * r["communication_seconds_per_step"].get<double>() / r["seconds_per_step"].get<double>(),
               r["bytes_per_step"].get<double>() / 1e6);

  fmt::print("\nOn paper, CIFAR-sized inputs (3x32x32, 100 classes), fp32 gradients, batch 128 per GPU:\n");
  torch::manual_seed(1);
  const lz::Network resnet = std::make_shared<lz::models::ResNet18InImpl>(
      lz::models::resnet18_in_options{.classes = 100, .channels = 3, .size = 32, .width = 64});
  on_paper("ResNet18-IN", resnet, {3, 32, 32}, 128);
  const lz::Network wrn = lz::models::make_model("wide_resnet_22_8", {.classes = 100, .channels = 3, .size = 32});
  on_paper("WRN-22-8", wrn, {3, 32, 32}, 128);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::app app{"Data-parallel training throughput on 1, 2, ... local ranks (images/s, communication per "
               "step), and on paper the computation and allreduce volume per step on N GPUs", "dist_bench"};
  settings s;
  std::string ranks = "1,2";
  app.add_option("--ranks", ranks, "rank counts to measure, each a fresh group of processes");
  app.add_option("--model", s.model, "network")->check(cli::one_of(lz::models::model_names()));
  app.add_option("--width", s.width, "the model's width knob")->check(cli::above(0));
  app.add_option("--size", s.size, "image side")->check(cli::at_least<int64_t>(8));
  app.add_option("--channels", s.channels, "image channels")->check(cli::at_least<int64_t>(1));
  app.add_option("--batch", s.batch, "global batch (shared out among the ranks)")->check(cli::at_least<int64_t>(2));
  app.add_option("--warmup", s.warmup, "steps before measuring")->check(cli::at_least<int64_t>(1));
  app.add_option("--steps", s.steps, "steps measured")->check(cli::at_least<int64_t>(1));
  app.add_option("--device", s.device, "cpu, or cuda (each rank its GPU, NCCL where LibTorch has it)")
      ->check(cli::one_of({"cpu", "cuda"}));
  app.add_flag("--sync-batchnorm", s.sync_batchnorm, "BatchNorm over the global batch");
  app.add_option("--result", s.result, "(internal) where rank 0 writes its measurement")->group("");
  return cli::run(app, argc, argv, [&] {
    if (!s.result.empty()) {  // a rank of one configuration
      lz::distributed::init_from_env();
      return measure(s);
    }
    s.ranks.clear();
    std::stringstream in(ranks);
    for (std::string part; std::getline(in, part, ',');) {
      int n = 0;
      lz::require(!part.empty() && part.find_first_not_of("0123456789") == std::string::npos &&
                      (n = std::stoi(part)) >= 1,
                  "--ranks: '", part, "' in '", ranks, "'; expected rank counts >= 1 separated by commas");
      s.ranks.push_back(n);
    }
    std::vector<std::string> args{argv[0], "--model", s.model, "--width", fmt::format("{:g}", s.width),
                                  "--size", std::to_string(s.size), "--channels", std::to_string(s.channels),
                                  "--batch", std::to_string(s.batch), "--warmup", std::to_string(s.warmup),
                                  "--steps", std::to_string(s.steps), "--device", s.device};
    if (s.sync_batchnorm) args.push_back("--sync-batchnorm");
    return run_all(s, args);
  });
}
