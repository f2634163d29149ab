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
// (core/polynomial.hpp): `prepare` puts one on every slot that has no replacement yet. It starts
// at the identity (c2 = c0 = 0, c1 = 1; the public code's automatic-polynomial start, c2 and c0
// uniform in (0, 1e-4)) and learns its curvature in the search. `fit_batches` > 0 fits it
// instead to relu over the slot's measured inputs (polynomial_fit.hpp; the public code's DaPa
// start, c2 about 0.2 to 0.4 here). Measured (pareto, ResNet18 width 16, 1%, 3 search epochs):
// fitted, the logits of a network of ~95,000 such quadratics reached 300-1,600 once most masks
// had crossed and 4 of 11 searches collapsed to chance; from the identity the logits stayed
// below 27, c2 grew to 0.07 on average, and none of 3 searches collapsed (2 of those seeds had).
// The penalty counts kept ReLUs (the gate itself); AutoReP's hinge on the density, lambda *
// max(0, density - budget / total), is its scheduler's (schedule/density_hinge.hpp).
//
// Removed entries start at -init; kept ones spread evenly over (threshold + band, init]
// (`stagger` = 1; 0: all at init; relax/stagger.hpp says why), as AutoReP draws them uniform in
// (0, 1); the first entry at init, so the mask geometry's travel is the farthest. `band` is this
// library's choice (the public code's value is not documented); the threshold is the public
// code's.
#include <linearize/policy/roles.hpp>
#include <linearize/relax/polynomial_fit.hpp>
#include <linearize/relax/stagger.hpp>
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
  /// Kept entries start spread over this fraction of (threshold + band, init], below init.
  double stagger = 1.0;
  /// Put a polynomial where a ReLU goes (false: the identity, a plain linearized ReLU).
  bool polynomial = true;
  /// Batches of training images measured to fit the polynomials of a fresh search to relu
  /// (0: they start at the identity; see the top for why that is the default).
  int64_t fit_batches = 0;

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
    require(stagger >= 0 && stagger <= 1, "autorep: stagger ", stagger,
            "; expected a fraction in [0, 1] of (threshold + band, init]");
    const auto kept_entry = binary.to(torch::kFloat);
    const auto u = evenly_spread(kept_entry.numel());
    const double span = stagger * (init - (threshold + band));
    const auto kept_start = (init - span * u).to(torch::kFloat).reshape(kept_entry.sizes());
    return kept_entry * kept_start - (1 - kept_entry) * init;
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
  f("stagger", p.stagger);
  f("polynomial", p.polynomial);
  f("fit_batches", p.fit_batches);
}

}  // namespace linearize::relax
