#pragma once
// Progress of a long run: epoch, step/steps, loss, accuracy, images/s and ETA. On a terminal a
// single live line is redrawn with a carriage return; in a log (CI, nohup, a pipe) plain lines
// are written now and then, so the log stays readable. Updates are rate-limited: the training
// loop calls step() every step and pays for a clock read, nothing more, between redraws.
// In a data-parallel run only rank 0 prints (the others' meters are silent).
#include <linearize/distributed/group.hpp>
#include <linearize/support/error.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <ostream>
#include <string>

namespace linearize::train {

enum class progress_mode {
  automatic,  ///< live when stderr is a terminal, lines otherwise
  live,       ///< one line, redrawn in place
  lines,      ///< a plain line every `line_interval_s` seconds and at each epoch end
  silent,
};

struct progress_options {
  progress_mode mode = progress_mode::automatic;
  double live_interval_s = 0.25;   ///< at most 4 redraws per second
  double line_interval_s = 30;     ///< plain lines: one every half minute
  std::ostream* out = nullptr;     ///< nullptr: std::cerr
};

/// Formats seconds as "1h02m", "3m07s" or "12s".
[[nodiscard]] inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

class progress_meter {
 public:
  using clock = std::chrono::steady_clock;

  explicit progress_meter(progress_options options = {}) : options_(options) {
    require(options_.live_interval_s >= 0 && options_.line_interval_s >= 0,
            "progress: intervals (", options_.live_interval_s, ", ", options_.line_interval_s,
            ") must not be negative");
    if (!options_.out) options_.out = &std::cerr;
    if (distributed::process_rank() != 0) options_.mode = progress_mode::silent;
    if (options_.mode == progress_mode::automatic)
      options_.mode = (options_.out == &std::cerr && ::isatty(::fileno(stderr)))
                          ? progress_mode::live
                          : progress_mode::lines;
  }
  progress_meter(const progress_meter&) = delete;
  progress_meter& operator=(const progress_meter&) = delete;
  ~progress_meter() { end_line(); }

  [[nodiscard]] progress_mode mode() const { return options_.mode; }

  /// A run of `epochs` epochs of `steps` steps starts (or resumes) at (epoch, step).
  void start(int64_t epochs, int64_t steps, int64_t epoch, int64_t step) {
    epochs_ = epochs;
    steps_ = steps;
    steps_left_at_start_ = (epochs - epoch) * steps - step;
    steps_done_ = 0;
    started_ = last_draw_ = clock::now();
  }

  /// Step `step` (0-based) of epoch `epoch` (0-based) is done. `loss` and `accuracy` are the
  /// epoch's running means; `images_per_second` its throughput.
  void step(int64_t epoch, int64_t step, double loss, double accuracy, double images_per_second) {
    ++steps_done_;
    if (options_.mode == progress_mode::silent) return;
    const auto now = clock::now();
    const double interval =
        options_.mode == progress_mode::live ? options_.live_interval_s : options_.line_interval_s;
    if (seconds(last_draw_, now) < interval) return;
    last_draw_ = now;
    draw(status(epoch, step, loss, accuracy, images_per_second, now));
  }

  /// An epoch ended: always one plain line (`summary`, e.g. with evaluation results).
  void epoch_end(const std::string& summary) {
    if (options_.mode == progress_mode::silent) return;
    end_line();
    *options_.out << summary << '\n' << std::flush;
  }

  /// A free-standing message (resume notice, ...), on its own line.
  void note(const std::string& message) {
    if (options_.mode == progress_mode::silent) return;
    end_line();
    *options_.out << message << '\n' << std::flush;
  }

 private:
  static double seconds(clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }

  [[nodiscard]] std::string status(int64_t epoch, int64_t step, double loss, double accuracy,
                                   double images_per_second, clock::time_point now) const {
    const double elapsed = seconds(started_, now);
    const int64_t left = steps_left_at_start_ - steps_done_;
    const double eta = steps_done_ > 0 ? elapsed / static_cast<double>(steps_done_) *
                                             static_cast<double>(left)
                                       : NAN;
    return fmt::format("epoch {}/{}  step {}/{}  loss {:.4f}  acc {:.2f}%  {:.0f} img/s  ETA {}",
                       epoch + 1, epochs_, step + 1, steps_, loss, 100 * accuracy,
                       images_per_second, format_duration(eta));
  }

  void draw(const std::string& line) {
    auto& out = *options_.out;
    if (options_.mode == progress_mode::live) {
      // Pad over the remains of a longer previous line.
      out << '\r' << line;
      if (line.size() < drawn_) out << std::string(drawn_ - line.size(), ' ');
      out << std::flush;
      drawn_ = line.size();
    } else {
      out << line << '\n' << std::flush;
    }
  }

  void end_line() {
    if (drawn_ > 0) *options_.out << '\n' << std::flush;
    drawn_ = 0;
  }

  progress_options options_;
  int64_t epochs_ = 0, steps_ = 0, steps_left_at_start_ = 0, steps_done_ = 0;
  clock::time_point started_{}, last_draw_{};
  size_t drawn_ = 0;
};

}  // namespace linearize::train
