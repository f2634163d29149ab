#pragma once
// Shared by the Google Benchmark programs: start-up settings recorded in the report's context,
// and a reporter that prints, after the usual table, the time ratios of named pairs of
// benchmarks measured in the same run (this machine is shared and noisy: ratios, not seconds).
#include <linearize/core/kernels.hpp>
#include <linearize/support/runtime.hpp>

#include <benchmark/benchmark.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace linearize::bench {

/// runtime::configure() and its settings in the benchmark's context; a malformed setting in the
/// environment ends the program with its message and status 1 (main has no handler of its own).
inline void configure_and_describe() {
  linearize::runtime::settings rt;
  try {
    rt = linearize::runtime::configure();
  } catch (const linearize::error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    std::exit(1);
  }
  benchmark::AddCustomContext("linearize_threads", std::to_string(rt.threads));
  benchmark::AddCustomContext("linearize_allocator", rt.allocator_name());
  benchmark::AddCustomContext("linearize_simd", linearize::kernels::simd_name());
}

/// Minor page faults so far: fresh memory shows up here (see runtime.hpp).
inline long page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

/// Runs the benchmark loop body and records page faults per iteration as a counter.
template <class Body>
void timed_loop(benchmark::State& state, Body&& body) {
  const long before = page_faults();
  for (auto _ : state) body();
  state.counters["faults_per_iter"] = benchmark::Counter(
      static_cast<double>(page_faults() - before) / static_cast<double>(state.iterations()));
}

/// A ratio to print: time(numerator) / time(denominator), for benchmark names that contain
/// the given parts and share the rest of their name (e.g. the shape).
struct ratio {
  std::string numerator, denominator, label;
};

class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  explicit ratio_reporter(std::vector<ratio> ratios)
      : ConsoleReporter(isatty(fileno(stdout)) ? OO_ColorTabular : OO_Tabular),
        ratios_(std::move(ratios)) {}

  // With --benchmark_repetitions the ratio is of medians (the machine is noisy; add
  // --benchmark_enable_random_interleaving=true so both sides see the same disturbances).
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      if (r.run_type == Run::RT_Iteration) samples_[r.run_name.str()].push_back(r.GetAdjustedRealTime());
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median")
        medians_[r.run_name.str()] = r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::map<std::string, double> times = medians_;
    for (auto& [name, v] : samples_) {
      if (times.count(name) != 0 || v.empty()) continue;
      std::sort(v.begin(), v.end());
      const size_t h = v.size() / 2;
      times[name] = v.size() % 2 == 1 ? v[h] : (v[h - 1] + v[h]) / 2;
    }
    std::printf("\nRatios (same run; real time; %s):\n",
                linearize::runtime::current().allocator_name().c_str());
    for (const auto& q : ratios_) {
      for (const auto& [name, t] : times) {
        const auto at = name.find(q.numerator);
        if (at == std::string::npos) continue;
        std::string other = name;
        other.replace(at, q.numerator.size(), q.denominator);
        const auto it = times.find(other);
        if (it == times.end() || it->second <= 0) continue;
        std::printf("  %-40s %-16s %6.2f\n", name.substr(0, name.find("/min_warmup")).c_str(),
                    q.label.c_str(), t / it->second);
      }
    }
  }

 private:
  std::vector<ratio> ratios_;
  std::map<std::string, std::vector<double>> samples_;  // real time of each repetition
  std::map<std::string, double> medians_;                 // Google Benchmark's own medians
};

}  // namespace linearize::bench
