// The masked ReLU on ResNet18's activation shapes (32x32 input) at batch 128, all cores:
//   fused     linearize's one-pass kernel (ReluSlot's CPU path)
//   composed  the formula as the SNL code writes it: relu(x) * a + (1 - a) * x, plain ops
//   memcpy    copying the same input bytes into an existing output buffer (the floor)
// forward (no autograd) and forward_backward (soft element mask, gradients for x and mask).
// A fully kept hard slot's relu with the convention's slope 1 at 0 (kernels::relu: torch::relu
// forward, fused backward) against torch::relu itself, forward and backward (relu_*).
// Run (ratios of medians over interleaved repetitions; the machine is noisy):
//   ./build/benchmarks/relu_slot_bench --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true
//   LINEARIZE_ALLOCATOR=default in the environment measures with glibc's default allocator settings
#include "bench_support.hpp"

#include <linearize/core/kernels.hpp>

#include <array>

namespace {

constexpr int64_t batch = 128;
const std::array<std::array<int64_t, 3>, 4> shapes{{{64, 32, 32}, {128, 16, 16}, {256, 8, 8}, {512, 4, 4}}};

std::string shape_name(const std::array<int64_t, 3>& s) {
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}

struct inputs {
  torch::Tensor x, a, g;
  explicit inputs(const std::array<int64_t, 3>& s) {
    x = torch::randn({batch, s[0], s[1], s[2]});
    a = torch::rand({s[0] * s[1] * s[2]});
    g = torch::randn_like(x);
  }
};

void memcpy_forward(benchmark::State& state, std::array<int64_t, 3> s) {
  inputs in(s);
  auto out = torch::empty_like(in.x);
  linearize::bench::timed_loop(state, [&] {
    out.copy_(in.x);
    benchmark::DoNotOptimize(out.data_ptr());
  });
  state.SetBytesProcessed(state.iterations() * in.x.nbytes());
}

template <bool Fused>
void forward(benchmark::State& state, std::array<int64_t, 3> s) {
  inputs in(s);
  torch::NoGradGuard no_grad;
  linearize::bench::timed_loop(state, [&] {
    auto y = Fused ? linearize::kernels::masked_relu(in.x, in.a)
                   : linearize::kernels::composed_masked_relu(in.x, in.a);
    benchmark::DoNotOptimize(y.data_ptr());
  });
  state.SetBytesProcessed(state.iterations() * in.x.nbytes());
}

template <bool Fused>
void forward_backward(benchmark::State& state, std::array<int64_t, 3> s) {
  inputs in(s);
  auto x = in.x.requires_grad_(true);
  auto a = in.a.requires_grad_(true);
  linearize::bench::timed_loop(state, [&] {
    auto y = Fused ? linearize::kernels::masked_relu(x, a)
                   : linearize::kernels::composed_masked_relu(x, a);
    auto grads = torch::autograd::grad({y}, {x, a}, {in.g});
    benchmark::DoNotOptimize(grads[0].data_ptr());
  });
  state.SetBytesProcessed(state.iterations() * in.x.nbytes());
}

// A fully kept slot: kernels::relu (slope 1 at 0) or torch::relu (slope 0 at 0), with autograd.
template <bool Convention>
void relu_forward_backward(benchmark::State& state, std::array<int64_t, 3> s) {
  inputs in(s);
  auto x = in.x.requires_grad_(true);
  linearize::bench::timed_loop(state, [&] {
    auto y = Convention ? linearize::kernels::relu(x) : torch::relu(x);
    auto grads = torch::autograd::grad({y}, {x}, {in.g});
    benchmark::DoNotOptimize(grads[0].data_ptr());
  });
  state.SetBytesProcessed(state.iterations() * in.x.nbytes());
}

}  // namespace

int main(int argc, char** argv) {
  linearize::bench::configure_and_describe();
  // Warm-up: the first iterations grow the heap (page faults); steady state is what a training
  // loop sees.
  const auto add = [](const std::string& name, auto fn, const std::array<int64_t, 3>& s) {
    benchmark::RegisterBenchmark(name.c_str(), fn, s)->UseRealTime()->MinWarmUpTime(0.5);
  };
  for (const auto& s : shapes) {
    const auto n = shape_name(s);
    add("memcpy_forward/" + n, memcpy_forward, s);
    add("fused_forward/" + n, forward<true>, s);
    add("composed_forward/" + n, forward<false>, s);
    add("fused_forward_backward/" + n, forward_backward<true>, s);
    add("composed_forward_backward/" + n, forward_backward<false>, s);
    add("relu_slope1_forward_backward/" + n, relu_forward_backward<true>, s);
    add("relu_torch_forward_backward/" + n, relu_forward_backward<false>, s);
  }
  benchmark::Initialize(&argc, argv);
  linearize::bench::ratio_reporter reporter({
      {"composed_forward_backward", "fused_forward_backward", "composed/fused"},
      {"fused_forward/", "memcpy_forward/", "fused/memcpy"},
      {"composed_forward/", "fused_forward/", "composed/fused"},
      {"relu_slope1_forward_backward/", "relu_torch_forward_backward/", "kernels/torch relu"},
  });
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
