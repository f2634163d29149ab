#pragma once
// The online cost of one private inference (PI), as a linear model of what the protocol pays
// for: every ReLU that is kept (a garbled-circuit evaluation in DELPHI-style protocols), every
// position where a polynomial replaces a linearized ReLU (core/polynomial.hpp: one
// multiplication of secret values), and, for protocols whose linear layers are not free online,
// every multiply-accumulate (MAC) of the convolutions and fully connected layers. A ReLU
// linearized to the identity (or to another linear replacement) costs nothing.
//
//   latency       = seconds_fixed + seconds_per_relu * relus + seconds_per_polynomial * polynomials
//                   + seconds_per_mac * macs
//   communication = bytes_fixed + bytes_per_relu * relus + bytes_per_polynomial * polynomials
//                   + bytes_per_mac * macs
//
// Presets hold only coefficients that a published source supports (see each preset); every
// coefficient without one is 0 and says so. For another protocol, set the coefficients yourself:
//   linearize::pi::cost_model my{.name = "my-protocol", .seconds_per_relu = 4e-6};
#include <linearize/support/error.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace linearize::pi {

struct cost_model {
  std::string name = "custom";
  double seconds_per_relu = 0;  ///< online latency of one kept ReLU
  double bytes_per_relu = 0;    ///< online communication of one kept ReLU
  double seconds_per_polynomial = 0;  ///< online latency of one polynomial evaluation
  double bytes_per_polynomial = 0;    ///< online communication of one polynomial evaluation
  double seconds_per_mac = 0;   ///< online latency of one linear-layer multiply-accumulate
  double bytes_per_mac = 0;     ///< online communication of one multiply-accumulate
  double seconds_fixed = 0;     ///< per-inference latency independent of the network (intercept)
  double bytes_fixed = 0;       ///< per-inference communication independent of the network

  /// Every coefficient finite and >= 0, or a linearize::error naming the first that is not.
  void validate() const {
    const std::pair<const char*, double> coefficients[] = {
        {"seconds_per_relu", seconds_per_relu},
        {"bytes_per_relu", bytes_per_relu},
        {"seconds_per_polynomial", seconds_per_polynomial},
        {"bytes_per_polynomial", bytes_per_polynomial},
        {"seconds_per_mac", seconds_per_mac},
        {"bytes_per_mac", bytes_per_mac},
        {"seconds_fixed", seconds_fixed},
        {"bytes_fixed", bytes_fixed}};
    for (const auto& [what, value] : coefficients)
      require(std::isfinite(value) && value >= 0, "cost_model '", name, "': ", what, " = ", value,
              "; expected a finite value >= 0");
  }

  /// Online latency in seconds of an inference with `relus` kept ReLUs, `macs` MACs and
  /// `polynomials` polynomial positions.
  [[nodiscard]] double latency(int64_t relus, int64_t macs = 0, int64_t polynomials = 0) const {
    check_counts(relus, macs, polynomials);
    return seconds_fixed + seconds_per_relu * static_cast<double>(relus) +
           seconds_per_polynomial * static_cast<double>(polynomials) +
           seconds_per_mac * static_cast<double>(macs);
  }
  /// Online communication in bytes of an inference with `relus` kept ReLUs, `macs` MACs and
  /// `polynomials` polynomial positions.
  [[nodiscard]] double communication(int64_t relus, int64_t macs = 0, int64_t polynomials = 0) const {
    check_counts(relus, macs, polynomials);
    return bytes_fixed + bytes_per_relu * static_cast<double>(relus) +
           bytes_per_polynomial * static_cast<double>(polynomials) +
           bytes_per_mac * static_cast<double>(macs);
  }

 private:
  void check_counts(int64_t relus, int64_t macs, int64_t polynomials) const {
    validate();
    require(relus >= 0, "cost_model '", name, "': ReLU count ", relus, "; expected >= 0");
    require(macs >= 0, "cost_model '", name, "': MAC count ", macs, "; expected >= 0");
    require(polynomials >= 0, "cost_model '", name, "': polynomial count ", polynomials,
            "; expected >= 0");
  }
};

// ---- presets ------------------------------------------------------------------------------------

/// DELPHI (Mishra et al., USENIX Security 2020), garbled-circuit ReLUs, fitted to ResNet18 on
/// CIFAR-100 as published in the ReLU-reduction literature (SNL's tables; see REFERENCES.md):
///   12.9K ReLUs -> 0.291 s, 49.9K -> 1.066 s, 120K -> 2.802 s, 180K -> 4.054 s.
/// Latency: least squares through the origin gives 22.70 us per ReLU; with an intercept,
/// 22.84 us and -0.018 s (i.e. none to speak of). We use the literature's rounded 22.5 us and no
/// intercept: within 5.4% of each of the four points (the largest gap, +5.3%, at 49.9K).
/// Communication: 1184 bytes per ReLU online, from CryptoNite's measurements of the DELPHI code
/// (Garimella et al., arXiv 2111.02583; public data in github.com/kvgarimella/cryptonite,
/// simulator/experiments/utils/cifar10_server_garbler_utils_r18.py): the server sends exactly
/// 1184 bytes per ReLU of each ReLU layer online (e.g. 77,594,630 bytes for a 64x32x32 layer of
/// 65,536 ReLUs). Not modelled: the garbled circuits themselves, sent offline (17,072 bytes per
/// ReLU in the same data), and the client's share of each linear layer's input sent online
/// (about 9 bytes per activation element there, not a per-MAC cost).
/// Linear layers: 0 per MAC. DELPHI precomputes them offline with homomorphic encryption, and the
/// published latencies above are explained by the ReLU count alone (the intercept is ~0); no
/// source gives us a per-MAC figure for this protocol, so we do not invent one.
/// Polynomials: an estimate, not a measurement. DELPHI evaluates a quadratic activation with a
/// Beaver multiplication triple made offline; online, each party opens its shares of two masked
/// values, 4 field elements in all, taken as 8-byte words: 32 bytes (delphi_polynomial_bytes). No
/// published per-polynomial latency is at hand, so the latency is the ReLU's scaled by the ratio
/// of online bytes, 32 / 1184 (about 0.61 us): it assumes a polynomial's online time follows its
/// traffic as the ReLU's does. Either way about 37x below a ReLU.
inline constexpr double delphi_polynomial_bytes = 32;

[[nodiscard]] inline cost_model delphi() {
  constexpr double relu_seconds = 22.5e-6, relu_bytes = 1184;
  return {.name = "delphi",
          .seconds_per_relu = relu_seconds,
          .bytes_per_relu = relu_bytes,
          .seconds_per_polynomial = relu_seconds * delphi_polynomial_bytes / relu_bytes,
          .bytes_per_polynomial = delphi_polynomial_bytes};
}

/// DELPHI as above, fitted to the published ResNet18 TinyImageNet latencies (REFERENCES.md):
/// 59.4K -> 1.265 s, 99.6K -> 2.12 s, 298.8K -> 6.28 s, 488.8K -> 10.28 s. Least squares through
/// the origin: 21.04 us per ReLU, within 1.3% of each point. Communication and the polynomial
/// estimate as delphi().
[[nodiscard]] inline cost_model delphi_tiny_imagenet() {
  constexpr double relu_seconds = 21.04e-6, relu_bytes = 1184;
  return {.name = "delphi-tinyimagenet",
          .seconds_per_relu = relu_seconds,
          .bytes_per_relu = relu_bytes,
          .seconds_per_polynomial = relu_seconds * delphi_polynomial_bytes / relu_bytes,
          .bytes_per_polynomial = delphi_polynomial_bytes};
}

/// Names accepted by preset().
[[nodiscard]] inline std::vector<std::string> preset_names() {
  return {"delphi", "delphi-tinyimagenet"};
}

/// A preset by name (for command lines and config files).
[[nodiscard]] inline cost_model preset(std::string_view name) {
  if (name == "delphi") return delphi();
  if (name == "delphi-tinyimagenet") return delphi_tiny_imagenet();
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  fail("pi::preset: unknown cost model '", name, "'; expected one of: ", known,
       " (or a cost_model with your own coefficients)");
}

}  // namespace linearize::pi
