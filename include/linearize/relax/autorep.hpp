#pragma once
// AutoReP's relaxation (Peng et al., ICCV 2023; REFERENCES.md): the mask is hard 0/1 in the
// forward pass, so the network trains as it will be deployed, and it learns through a
// straight-through estimate to an auxiliary parameter: d gate / d aux = softplus(aux), as the
// public code does. The hard value has hysteresis: an entry turns off only once its parameter
// falls below threshold - band and back on only once it rises above threshold + band, so masks
// near the threshold do not flip back and forth at every step (a hysteretic relaxation: the
// search keeps each slot's last gate as state, and its checkpoints save it).
//
// Where a ReLU goes, a trainable per-channel polynomial c2 x^2 + c1 x + c0 takes its place
// (core/polynomial.hpp): `prepare` puts one on every slot that has no replacement yet and, for
// a fresh search, fits it to relu over the slot's measured inputs (polynomial_fit.hpp). The
// penalty counts kept ReLUs (the gate itself); AutoReP's hinge on the density, lambda *
// max(0, density - budget / total), is its scheduler's (schedule/density_hinge.hpp).
//
// Parameters start at +init (kept) and -init (removed); AutoReP draws them uniform in (0, 1),
// which staggers when masks cross over a search of hundreds of epochs; here the scheduler's
// measured weight decides which go first. `band` is this library's choice (the public code's
// value is not documented); the threshold is the public code's.
#include <linearize/policy/roles.hpp>
#include <linearize/relax/polynomial_fit.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace linearize::relax {

struct autorep {
  using role = roles::relaxation;
  double threshold = 0.003;  ///< an entry is kept while its parameter exceeds it (public code)
  double band = 0.05;        ///< half-width of the hysteresis band around the threshold
  double init = 1.0;         ///< parameter of a kept entry when a search starts (removed: -init)
  /// Put a polynomial where a ReLU goes (false: the identity, a plain linearized ReLU).
  bool polynomial = true;
  /// Batches of training images measured to fit the polynomials of a fresh search (0: they
  /// start at the identity).
  int64_t fit_batches = 8;

  /// Value `value` (0/1), gradient softplus(param) times the incoming gradient.
  [[nodiscard]] static torch::Tensor straight_through(const torch::Tensor& value, const torch::Tensor& param) {
    const auto t = param * torch::softplus(param).detach();
    return value + (t - t.detach());
  }
  /// Without a previous state: kept above the threshold.
  [[nodiscard]] torch::Tensor gate(const torch::Tensor& param) const {
    return straight_through(kept(param).to(param.dtype()), param);
  }
  /// With hysteresis: changes only where the parameter has left the band.
  [[nodiscard]] torch::Tensor gate(const torch::Tensor& param, const torch::Tensor& previous) const {
    if (!previous.defined()) return gate(param);
    torch::Tensor state;
    {
      torch::NoGradGuard no_grad;
      const auto on = param.gt(threshold + band), off = param.lt(threshold - band);
      state = on.logical_or(previous.detach().reshape(param.sizes()).ne(0).logical_and(off.logical_not()))
                  .to(param.dtype());
    }
    return straight_through(state, param);
  }
  /// Each kept ReLU counts 1: summed over slots and divided by the total, the density.
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& param) const { return gate(param); }
  [[nodiscard]] torch::Tensor kept(const torch::Tensor& param) const { return param.gt(threshold); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& param) const { return param; }
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& binary) const {
    require(std::isfinite(init) && init > std::abs(threshold) + band && band >= 0, "autorep: init ",
            init, " must exceed |threshold| + band = ", std::abs(threshold) + band,
            " (band ", band, " >= 0), so that kept and removed entries start outside the band");
    return binary.to(torch::kFloat) * (2 * init) - init;
  }
  [[nodiscard]] std::string name() const { return "autorep"; }

  /// Before the search: polynomials on the slots that have no replacement (a resumed search
  /// needs them before its checkpoint restores their coefficients), fitted when it is fresh.
  /// Returns the images the fit forwarded.
  template <class Context>
  int64_t prepare(Context& ctx, bool fresh) const {
    require(fit_batches >= 0, "autorep: fit_batches ", fit_batches, "; expected >= 0");
    if (!polynomial) return 0;
    bool installed = false;
    for (size_t i = 0; i < ctx.masks.size(); ++i)
      if (!ctx.masks[i].has_replacement()) {
        ctx.masks[i].set_replacement(polynomial_replacement{});
        installed = true;
      }
    // A slot that came with a replacement keeps its kind; a fresh search fits every polynomial.
    if (!fresh || !installed || fit_batches == 0) return 0;
    return fit_polynomials(ctx.net, ctx.data.train,
                           {.batches = fit_batches, .batch_size = ctx.options.batch_size, .seed = ctx.seed(0xf17u)});
  }
};

/// Its settings, for the record of a run's work directory (pipeline/run_settings.hpp): a
/// resume with other values is refused, naming the setting.
template <class F>
void json_fields(const autorep& p, F&& f) {
  f("threshold", p.threshold);
  f("band", p.band);
  f("init", p.init);
  f("polynomial", p.polynomial);
  f("fit_batches", p.fit_batches);
}

}  // namespace linearize::relax
