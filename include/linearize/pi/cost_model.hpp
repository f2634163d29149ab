#pragma once
// The online cost of one private inference (PI), as a linear model of what the protocol pays
// for: every ReLU that is kept (a garbled circuit, or an OT-based comparison), every position
// where a polynomial replaces a linearized ReLU (core/polynomial.hpp: one multiplication of
// secret values), every multiply-accumulate (MAC) of the convolutions and fully connected layers
// for protocols whose linear layers are not free online, and the communication rounds of each
// layer that needs one. A ReLU linearized to the identity (or to another linear replacement)
// costs nothing, and a slot with no ReLU left costs no round either.
//
//   computation   = seconds_fixed + seconds_per_relu * relus + seconds_per_polynomial * polynomials
//                   + seconds_per_mac * macs
//   communication = bytes_fixed + bytes_per_relu * relus + bytes_per_polynomial * polynomials
//                   + bytes_per_mac * macs
//   rounds        = rounds_per_relu_layer * relu layers + rounds_per_polynomial_layer * polynomial
//                   layers + rounds_per_linear_layer * linear layers
//   latency       = computation + communication / bandwidth + rounds * round trip (network.hpp)
//
// latency(relus, macs, polynomials) and communication(...) give the network-free terms; cost()
// splits the latency on a network into ReLU, polynomial, linear and fixed parts. Presets hold only
// coefficients that a public source supports, or an estimate that says how it was derived; every
// other coefficient is 0 and says so. For another protocol, set the coefficients yourself:
//   linearize::pi::cost_model my{.name = "my-protocol", .seconds_per_relu = 4e-6};
#include <linearize/pi/network.hpp>
#include <linearize/support/error.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace linearize::pi {

/// What one inference evaluates: the counts a cost model charges.
struct workload {
  int64_t relus = 0;              ///< kept ReLUs
  int64_t polynomials = 0;        ///< polynomial positions
  int64_t macs = 0;               ///< linear-layer multiply-accumulates
  int64_t relu_layers = 0;        ///< layers (slots) that still evaluate a ReLU
  int64_t polynomial_layers = 0;  ///< layers that evaluate a polynomial
  int64_t linear_layers = 0;      ///< convolutions and fully connected layers
};

/// A latency split by what it pays for; each part includes its traffic and rounds on the network.
struct cost_breakdown {
  double relu_seconds = 0;
  double polynomial_seconds = 0;
  double linear_seconds = 0;
  double fixed_seconds = 0;
  double seconds = 0;          ///< the sum of the four
  double bytes = 0;            ///< online communication
  double rounds = 0;           ///< online round trips
  double offline_seconds = 0;  ///< preprocessing, before the input is known (not in `seconds`)
  double offline_bytes = 0;
};

struct cost_model {
  std::string name = "custom";
  double seconds_per_relu = 0;  ///< online computation of one kept ReLU
  double bytes_per_relu = 0;    ///< online communication of one kept ReLU
  double seconds_per_polynomial = 0;  ///< online computation of one polynomial evaluation
  double bytes_per_polynomial = 0;    ///< online communication of one polynomial evaluation
  double seconds_per_mac = 0;   ///< online computation of one linear-layer multiply-accumulate
  double bytes_per_mac = 0;     ///< online communication of one multiply-accumulate
  double seconds_fixed = 0;     ///< per-inference latency independent of the network (intercept)
  double bytes_fixed = 0;       ///< per-inference communication independent of the network
  double rounds_per_relu_layer = 0;        ///< round trips of one layer of ReLUs
  double rounds_per_polynomial_layer = 0;  ///< round trips of one layer of polynomials
  double rounds_per_linear_layer = 0;      ///< round trips of one convolution or FC layer
  double offline_seconds_per_relu = 0;     ///< preprocessing per ReLU (e.g. garbling)
  double offline_bytes_per_relu = 0;       ///< preprocessing traffic per ReLU (e.g. the circuit)
  /// The latencies were fitted end to end on the authors' network: the network is inside them,
  /// and cost() refuses to add one (use no_network()).
  bool network_included = false;
  std::string source{};  ///< where the coefficients come from, in one line

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
        {"bytes_fixed", bytes_fixed},
        {"rounds_per_relu_layer", rounds_per_relu_layer},
        {"rounds_per_polynomial_layer", rounds_per_polynomial_layer},
        {"rounds_per_linear_layer", rounds_per_linear_layer},
        {"offline_seconds_per_relu", offline_seconds_per_relu},
        {"offline_bytes_per_relu", offline_bytes_per_relu}};
    for (const auto& [what, value] : coefficients)
      require(std::isfinite(value) && value >= 0, "cost_model '", name, "': ", what, " = ", value,
              "; expected a finite value >= 0");
  }

  /// Online computation in seconds (no network) of an inference with `relus` kept ReLUs, `macs`
  /// MACs and `polynomials` polynomial positions. For end-to-end fits (network_included), the
  /// latency.
  [[nodiscard]] double latency(int64_t relus, int64_t macs = 0, int64_t polynomials = 0) const {
    check_counts({.relus = relus, .polynomials = polynomials, .macs = macs});
    return seconds_fixed + seconds_per_relu * static_cast<double>(relus) +
           seconds_per_polynomial * static_cast<double>(polynomials) +
           seconds_per_mac * static_cast<double>(macs);
  }
  /// Online communication in bytes of an inference with `relus` kept ReLUs, `macs` MACs and
  /// `polynomials` polynomial positions.
  [[nodiscard]] double communication(int64_t relus, int64_t macs = 0, int64_t polynomials = 0) const {
    check_counts({.relus = relus, .polynomials = polynomials, .macs = macs});
    return bytes_fixed + bytes_per_relu * static_cast<double>(relus) +
           bytes_per_polynomial * static_cast<double>(polynomials) +
           bytes_per_mac * static_cast<double>(macs);
  }

  /// The latency of `w` on `net`, split into ReLU, polynomial, linear and fixed parts; each part
  /// is its computation, its traffic over the bandwidth and its rounds times the round trip.
  [[nodiscard]] cost_breakdown cost(const workload& w, const network& net = no_network()) const {
    check_counts(w);
    net.validate();
    require(!network_included || !net.modelled(), "cost_model '", name, "' was fitted end to end: ",
            "its latencies already contain the network it was measured on; evaluate it with "
            "pi::no_network(), not network '", net.name, "'");
    const auto part = [&](double seconds_each, double bytes_each, int64_t count, double rounds_each,
                          int64_t layers, cost_breakdown& out) {
      const double bytes = bytes_each * static_cast<double>(count);
      const double rounds = rounds_each * static_cast<double>(layers);
      out.bytes += bytes;
      out.rounds += rounds;
      return seconds_each * static_cast<double>(count) + net.seconds(bytes, rounds);
    };
    cost_breakdown c;
    c.relu_seconds = part(seconds_per_relu, bytes_per_relu, w.relus, rounds_per_relu_layer, w.relu_layers, c);
    c.polynomial_seconds = part(seconds_per_polynomial, bytes_per_polynomial, w.polynomials,
                                rounds_per_polynomial_layer, w.polynomial_layers, c);
    c.linear_seconds = part(seconds_per_mac, bytes_per_mac, w.macs, rounds_per_linear_layer, w.linear_layers, c);
    c.fixed_seconds = seconds_fixed + net.seconds(bytes_fixed, 0);
    c.bytes += bytes_fixed;
    c.seconds = c.relu_seconds + c.polynomial_seconds + c.linear_seconds + c.fixed_seconds;
    c.offline_seconds = offline_seconds_per_relu * static_cast<double>(w.relus);
    c.offline_bytes = offline_bytes_per_relu * static_cast<double>(w.relus);
    return c;
  }

  /// What one more kept ReLU adds to the latency on `net` (its computation and its traffic; its
  /// layer's rounds are paid once per layer).
  [[nodiscard]] double seconds_per_extra_relu(const network& net = no_network()) const {
    return seconds_per_relu + net.seconds(bytes_per_relu, 0);
  }

 private:
  void check_counts(const workload& w) const {
    validate();
    require(w.relus >= 0, "cost_model '", name, "': ReLU count ", w.relus, "; expected >= 0");
    require(w.macs >= 0, "cost_model '", name, "': MAC count ", w.macs, "; expected >= 0");
    require(w.polynomials >= 0, "cost_model '", name, "': polynomial count ", w.polynomials,
            "; expected >= 0");
    require(w.relu_layers >= 0 && w.polynomial_layers >= 0 && w.linear_layers >= 0, "cost_model '",
            name, "': negative layer count; expected >= 0");
  }
};

// ---- presets ------------------------------------------------------------------------------------

/// DELPHI (Mishra et al., USENIX Security 2020), garbled-circuit ReLUs, fitted to ResNet18 on
/// CIFAR-100 as published in the ReLU-reduction literature (SNL's tables; see REFERENCES.md):
///   12.9K ReLUs -> 0.291 s, 49.9K -> 1.066 s, 120K -> 2.802 s, 180K -> 4.054 s.
/// Latency: least squares through the origin gives 22.70 us per ReLU; with an intercept,
/// 22.84 us and -0.018 s (i.e. none to speak of). We use the literature's rounded 22.5 us and no
/// intercept: within 5.4% of each of the four points (the largest gap, +5.3%, at 49.9K). These
/// are end-to-end latencies on the authors' network: network_included, evaluate with no_network().
/// Communication: 1184 bytes per ReLU online, from CryptoNite's measurements of the DELPHI code
/// (Garimella et al., arXiv 2111.02583; public data in github.com/kvgarimella/cryptonite,
/// simulator/experiments/utils/cifar10_server_garbler_utils_r18.py): the server sends exactly
/// 1184 bytes per ReLU of each ReLU layer online (e.g. 77,594,630 bytes for a 64x32x32 layer of
/// 65,536 ReLUs); the garbled circuits themselves, 17,072 bytes per ReLU in the same data, go
/// offline. Not modelled: the client's share of each linear layer's input sent online (about 9
/// bytes per activation element there, not a per-MAC cost).
/// Linear layers: 0 per MAC. DELPHI precomputes them offline with homomorphic encryption, and the
/// published latencies above are explained by the ReLU count alone (the intercept is ~0).
/// Polynomials: an estimate, not a measurement. DELPHI evaluates a quadratic activation with a
/// Beaver multiplication triple made offline; online, each party opens its shares of two masked
/// values, 4 field elements in all, taken as 8-byte words: 32 bytes (delphi_polynomial_bytes). No
/// published per-polynomial latency is at hand, so the latency is the ReLU's scaled by the ratio
/// of online bytes, 32 / 1184 (about 0.61 us): it assumes a polynomial's online time follows its
/// traffic as the ReLU's does. Either way about 37x below a ReLU.
inline constexpr double delphi_polynomial_bytes = 32;
/// Garbled-circuit bytes per ReLU that DELPHI sends offline (CryptoNite's data, as above).
inline constexpr double delphi_garbled_circuit_bytes = 17072;

[[nodiscard]] inline cost_model delphi() {
  constexpr double relu_seconds = 22.5e-6, relu_bytes = 1184;
  return {.name = "delphi",
          .seconds_per_relu = relu_seconds,
          .bytes_per_relu = relu_bytes,
          .seconds_per_polynomial = relu_seconds * delphi_polynomial_bytes / relu_bytes,
          .bytes_per_polynomial = delphi_polynomial_bytes,
          .offline_bytes_per_relu = delphi_garbled_circuit_bytes,
          .network_included = true,
          .source = "DELPHI end to end, ResNet18/CIFAR-100 fit (22.5 us per ReLU, network included)"};
}

/// DELPHI as above, fitted to the published ResNet18 TinyImageNet latencies (REFERENCES.md):
/// 59.4K -> 1.265 s, 99.6K -> 2.12 s, 298.8K -> 6.28 s, 488.8K -> 10.28 s. Least squares through
/// the origin: 21.04 us per ReLU, within 1.3% of each point. Communication and the polynomial
/// estimate as delphi().
[[nodiscard]] inline cost_model delphi_tiny_imagenet() {
  constexpr double relu_seconds = 21.04e-6, relu_bytes = 1184;
  auto m = delphi();
  m.name = "delphi-tinyimagenet";
  m.seconds_per_relu = relu_seconds;
  m.seconds_per_polynomial = relu_seconds * delphi_polynomial_bytes / relu_bytes;
  m.source = "DELPHI end to end, ResNet18/TinyImageNet fit (21.04 us per ReLU, network included)";
  return m;
}

/// A garbled-circuit ReLU as public benchmarks of DELPHI's GC library measure it on one thread of
/// an AMD EPYC 7502 server (REFERENCES.md, "What a ReLU costs"): about 102 us to garble and 52 us
/// to evaluate per ReLU (0.57-0.68 ms and 0.28-0.35 ms on a low-power client). Garbling happens
/// in preprocessing (offline_seconds_per_relu), evaluation online (seconds_per_relu). Traffic per
/// ReLU as delphi(): 1184 bytes online, the 17,072-byte circuit offline. Rounds: an estimate of
/// one round trip per ReLU layer (the server's input labels go out, the masked result comes back
/// for the next linear layer). Linear layers: 0 online (homomorphic encryption offline, as in
/// DELPHI). Polynomials: the delphi() estimate (32 bytes, one Beaver multiplication, one round),
/// latency scaled from this preset's ReLU by traffic. Computation only: add a network (lan(),
/// wan()).
[[nodiscard]] inline cost_model garbled_circuits() {
  constexpr double evaluate = 52e-6, relu_bytes = 1184;
  return {.name = "garbled-circuits",
          .seconds_per_relu = evaluate,
          .bytes_per_relu = relu_bytes,
          .seconds_per_polynomial = evaluate * delphi_polynomial_bytes / relu_bytes,
          .bytes_per_polynomial = delphi_polynomial_bytes,
          .rounds_per_relu_layer = 1,
          .rounds_per_polynomial_layer = 1,
          .offline_seconds_per_relu = 102e-6,
          .offline_bytes_per_relu = delphi_garbled_circuit_bytes,
          .source = "GC ReLU on one EPYC 7502 thread: 52 us evaluate online, 102 us garble offline"};
}

/// OT-based ReLUs and HE-based linear layers (the Cheetah / CrypTFlow2 family), from one public
/// run of Cheetah on ResNet50 (github.com/Alibaba-Gemini-Lab/OpenCheetah, issue 26, a maintainer's
/// log; REFERENCES.md):
///   ReLU: 50,176 / 100,352 / 200,704 ReLUs in 0.049 / 0.099 / 0.207 s; least squares through the
///     origin, 1.02 us per ReLU (within 4.5% of each point).
///   Linear layers, derived here: three homomorphic 1x1 convolutions of that log,
///     14x14x256 -> 1024 (51,380,224 MACs) in 1.375 s, 26.8 ns per MAC;
///     14x14x1024 -> 2048, stride 2 (102,760,448 MACs) in 2.74 s, 26.7 ns;
///     14x14x1024 -> 512 (102,760,448 MACs) in 2.306 s, 22.4 ns;
///   in all 6.421 s for 256,901,120 MACs: 25.0 ns per MAC. A per-MAC rate is a first-order
///   model: HE convolution time follows ciphertext counts, which grow with MACs but also with
///   padding and channel packing; these three convolutions lie within 11% of the rate. Their
///   traffic, 0.77, 0.77 and 3.10 MB, does not follow MACs (4.64 MB over all: 0.018 bytes per
///   MAC, kept as a rough rate).
///   The log does not state its network: the times are taken as computation, and a network adds
///   to them.
/// Estimates, not measurements: 44 bytes per ReLU, the Cheetah paper's comparison cost as quoted
/// in secretflow/spu issue 666 (11 bits per bit of a 32-bit value; the multiplexer that makes the
/// ReLU adds more, and Cheetah's whole ResNet50 inference, 2.3 GB for about 9.6 million ReLUs with
/// linear layers and truncations, bounds it by 240 bytes); 5 rounds per ReLU layer (the comparison
/// tree over 4-bit leaves of a 32-bit value, log2(32 / 4) = 3 rounds, one for the leaf OTs, one for
/// the multiplexer); 1 round per linear layer (the encrypted share out, the result back).
/// Polynomials: one Beaver-style multiplication, 32 bytes and one round, latency scaled from the
/// ReLU by traffic as in delphi(): here a polynomial costs nearly what a ReLU does.
[[nodiscard]] inline cost_model cheetah() {
  constexpr double relu_seconds = 1.02e-6, relu_bytes = 44;
  return {.name = "cheetah",
          .seconds_per_relu = relu_seconds,
          .bytes_per_relu = relu_bytes,
          .seconds_per_polynomial = relu_seconds * delphi_polynomial_bytes / relu_bytes,
          .bytes_per_polynomial = delphi_polynomial_bytes,
          .seconds_per_mac = 25.0e-9,
          .bytes_per_mac = 0.018,
          .rounds_per_relu_layer = 5,
          .rounds_per_polynomial_layer = 1,
          .rounds_per_linear_layer = 1,
          .source = "Cheetah (OpenCheetah issue 26): 1.02 us per OT ReLU, 25 ns per HE-convolution MAC"};
}

/// Names accepted by preset().
[[nodiscard]] inline std::vector<std::string> preset_names() {
  return {"delphi", "delphi-tinyimagenet", "garbled-circuits", "cheetah"};
}

/// A preset by name (for command lines and config files).
[[nodiscard]] inline cost_model preset(std::string_view name) {
  if (name == "delphi") return delphi();
  if (name == "delphi-tinyimagenet") return delphi_tiny_imagenet();
  if (name == "garbled-circuits") return garbled_circuits();
  if (name == "cheetah") return cheetah();
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  fail("pi::preset: unknown cost model '", name, "'; expected one of: ", known,
       " (or a cost_model with your own coefficients)");
}

}  // namespace linearize::pi
