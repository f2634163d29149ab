#pragma once
// The network between client and server in a private inference: its bandwidth, which turns a
// protocol's traffic into time, and its round-trip time, paid once per communication round. A
// ReLU layer takes several rounds where a linear layer takes one (CrypTen's maintainers, see
// REFERENCES.md), so the same ReLU count costs far more on a WAN than on a LAN, and linearizing a
// whole layer saves its rounds too. cost_model (cost_model.hpp) charges
//   seconds = computation + bytes / bytes_per_second + rounds * round_trip_seconds.
//
// Presets: the settings OpenCheetah's benchmark script imposes with Linux tc
// (github.com/Alibaba-Gemini-Lab/OpenCheetah, scripts/throttle.sh, taken from emp-toolkit's):
//   LAN  about 3 Gbit/s and 0.3 ms ping (tbf rate 3000mbit, netem delay 0.15 ms each way);
//   WAN  about 400 Mbit/s and 40 ms ping (tbf rate 400mbit, netem delay 20 ms each way),
// the settings under which Cheetah (USENIX Security 2022) reports its LAN and WAN results.
#include <linearize/support/error.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace linearize::pi {

struct network {
  std::string name = "none";
  /// Payload bandwidth; infinity: transfers take no time.
  double bytes_per_second = std::numeric_limits<double>::infinity();
  double round_trip_seconds = 0;

  /// Whether it adds anything: false for no_network(), the "computation only" view.
  [[nodiscard]] bool modelled() const {
    return std::isfinite(bytes_per_second) || round_trip_seconds > 0;
  }

  void validate() const {
    require(bytes_per_second > 0 && !std::isnan(bytes_per_second), "network '", name,
            "': bytes_per_second = ", bytes_per_second, "; expected a positive number (or infinity)");
    require(std::isfinite(round_trip_seconds) && round_trip_seconds >= 0, "network '", name,
            "': round_trip_seconds = ", round_trip_seconds, "; expected a finite value >= 0");
  }

  /// Time to move `bytes` and make `rounds` round trips.
  [[nodiscard]] double seconds(double bytes, double rounds) const {
    validate();
    require(bytes >= 0 && rounds >= 0, "network '", name, "': ", bytes, " bytes and ", rounds,
            " rounds; expected both >= 0");
    const double transfer = std::isfinite(bytes_per_second) ? bytes / bytes_per_second : 0.0;
    return transfer + rounds * round_trip_seconds;
  }
};

/// No network time: computation only, or a cost model whose latencies were measured end to end
/// and so already contain their network (pi::delphi()).
[[nodiscard]] inline network no_network() { return {}; }

/// OpenCheetah's LAN: 3 Gbit/s, 0.3 ms round trip.
[[nodiscard]] inline network lan() {
  return {.name = "lan", .bytes_per_second = 3e9 / 8, .round_trip_seconds = 0.3e-3};
}

/// OpenCheetah's WAN: 400 Mbit/s, 40 ms round trip.
[[nodiscard]] inline network wan() {
  return {.name = "wan", .bytes_per_second = 400e6 / 8, .round_trip_seconds = 40e-3};
}

[[nodiscard]] inline std::vector<std::string> network_names() { return {"none", "lan", "wan"}; }

/// A network preset by name.
[[nodiscard]] inline network network_preset(std::string_view name) {
  if (name == "none") return no_network();
  if (name == "lan") return lan();
  if (name == "wan") return wan();
  fail("pi::network_preset: unknown network '", name, "'; expected one of: none, lan, wan");
}

}  // namespace linearize::pi
