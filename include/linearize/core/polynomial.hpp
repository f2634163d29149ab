#pragma once
// AutoReP's replacement of a linearized ReLU: a degree-2 polynomial with trainable coefficients
// per channel,  r(x) = c2 * x^2 + c1 * x + c0  (channel = the activation's first dimension, so
// x[n, c, h, w] uses c2[c], c1[c], c0[c]). Put it on every slot of a network with
//   linearize::replace_linearized(*net, linearize::polynomial_replacement{});
// The coefficients start at the identity (c2 = 0, c1 = 1, c0 = 0), so that a network changes
// nothing until they train; a fit (AutoReP's from BatchNorm statistics) sets them afterwards
// through set_coefficients, reached with slot.replacement_as<linearize::PolynomialImpl>().
// In private inference each evaluation costs one multiplication of secret values (x * x): the
// cost model counts it as a polynomial position.
#include <linearize/core/replacement.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <utility>
#include <vector>

namespace linearize {

/// Initial coefficients of every channel.
struct polynomial_coefficients {
  double c2 = 0;
  double c1 = 1;
  double c0 = 0;
};

class PolynomialImpl : public torch::nn::Cloneable<PolynomialImpl> {
 public:
  /// `channels` coefficients of each degree, for inputs [batch, channels, ...] of `sample_dims`
  /// per-sample dimensions.
  PolynomialImpl(int64_t channels, int64_t sample_dims, polynomial_coefficients init = {},
                 torch::TensorOptions options = {})
      : channels_(channels), sample_dims_(sample_dims), init_(init), options_(options) {
    require(channels > 0, "Polynomial: ", channels, " channels; expected at least 1");
    require(sample_dims > 0, "Polynomial: ", sample_dims,
            " per-sample dimensions; expected at least 1 (the channels)");
    require(std::isfinite(init.c2) && std::isfinite(init.c1) && std::isfinite(init.c0),
            "Polynomial: initial coefficients c2 = ", init.c2, ", c1 = ", init.c1, ", c0 = ",
            init.c0, "; expected finite values");
    reset();
  }

  void reset() override {
    const auto make = [&](double v) {
      return torch::full({channels_}, v, options_.requires_grad(false));
    };
    c2 = register_parameter("c2", make(init_.c2));
    c1 = register_parameter("c1", make(init_.c1));
    c0 = register_parameter("c0", make(init_.c0));
  }

  /// r(x) = (c2 * x + c1) * x + c0, channel by channel.
  torch::Tensor forward(const torch::Tensor& x) {
    require(x.dim() == sample_dims_ + 1 && x.size(1) == channels_, "Polynomial: input of shape ",
            x.sizes(), "; expected [batch, ", channels_, ", ...] with ", sample_dims_,
            " per-sample dimensions");
    std::vector<int64_t> view(static_cast<size_t>(sample_dims_), 1);
    view[0] = channels_;
    return (c2.view(view) * x + c1.view(view)) * x + c0.view(view);
  }

  [[nodiscard]] replacement_cost cost() const { return replacement_cost::polynomial; }

  /// Sets the coefficients: each a tensor of `channels` values (or one value for all), e.g. from
  /// a fit. Keeps the parameters (and so an optimizer's hold on them).
  void set_coefficients(const torch::Tensor& c2_values, const torch::Tensor& c1_values,
                        const torch::Tensor& c0_values) {
    torch::NoGradGuard no_grad;
    const std::pair<torch::Tensor*, const torch::Tensor*> pairs[] = {
        {&c2, &c2_values}, {&c1, &c1_values}, {&c0, &c0_values}};
    for (const auto& [target, source] : pairs)
      require(source->numel() == channels_ || source->numel() == 1, "Polynomial: ",
              source->numel(), " coefficient values; expected ", channels_, " (one per channel) or 1");
    for (const auto& [target, source] : pairs)
      target->copy_(source->reshape({-1}).expand({channels_}));
  }

  [[nodiscard]] int64_t channels() const { return channels_; }

  void pretty_print(std::ostream& out) const override {
    out << "Polynomial(degree 2, " << channels_ << " channels)";
  }

  torch::Tensor c2, c1, c0;

 private:
  int64_t channels_;
  int64_t sample_dims_;
  polynomial_coefficients init_;
  torch::TensorOptions options_;
};

TORCH_MODULE(Polynomial);

/// The spec: a per-channel polynomial on every slot it is given to (replace_linearized.hpp).
struct polynomial_replacement {
  polynomial_coefficients init{};

  [[nodiscard]] std::shared_ptr<PolynomialImpl> make(const replacement_site& site) const {
    return std::make_shared<PolynomialImpl>(site.channels(),
                                            static_cast<int64_t>(site.shape.size()), init,
                                            site.options);
  }
};

}  // namespace linearize
