#pragma once
// Optimizer recipes as value types, and the torch::optim optimizer they describe. A recipe is a
// plain aggregate so that pipelines can hold it and compare it; the optimizer itself is built
// over the parameters that are trainable when a run starts (hard masks and a frozen teacher are
// left out, so they neither move nor get optimizer state).
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace linearize::train {

/// Stochastic gradient descent with (optionally Nesterov) momentum and L2 weight decay.
struct sgd {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
};

/// Adam (weight decay as an L2 term added to the gradient, as torch::optim::Adam does).
struct adam {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double weight_decay = 0;
};

using optimizer_config = std::variant<sgd, adam>;

/// Members for io/json.hpp (the settings a run's work directory records).
template <class F>
void json_fields(const sgd& c, F&& f) {
  f("lr", c.lr);
  f("momentum", c.momentum);
  f("weight_decay", c.weight_decay);
  f("nesterov", c.nesterov);
}
template <class F>
void json_fields(const adam& c, F&& f) {
  f("lr", c.lr);
  f("beta1", c.beta1);
  f("beta2", c.beta2);
  f("weight_decay", c.weight_decay);
}

// ---- the recipes of the literature (REFERENCES.md) ------------------------------------------
/// Baseline training: SGD lr 0.1, momentum 0.9, wd 5e-4 (with multistep 80/120, x0.1).
inline constexpr sgd baseline_sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
/// SNL's mask search: Adam lr 1e-3 over weights, BN and masks, no weight decay.
inline constexpr adam mask_search_adam{.lr = 1e-3, .weight_decay = 0};
/// Finetuning after binarization (SNL phase 3, coordinate descent): SGD lr 1e-3, momentum 0.9,
/// wd 5e-4 (with cosine).
inline constexpr sgd finetune_sgd{.lr = 1e-3, .momentum = 0.9, .weight_decay = 5e-4};

[[nodiscard]] inline double base_lr(const optimizer_config& config) {
  return std::visit([](const auto& c) { return c.lr; }, config);
}

/// "sgd" or "adam": what a checkpoint records, so that a resume with another kind is refused.
[[nodiscard]] inline std::string optimizer_name(const optimizer_config& config) {
  return std::holds_alternative<sgd>(config) ? "sgd" : "adam";
}

inline void validate(const sgd& c) {
  require(std::isfinite(c.lr) && c.lr > 0, "sgd: learning rate ", c.lr, " must be positive");
  require(c.momentum >= 0 && c.momentum < 1, "sgd: momentum ", c.momentum, " must lie in [0, 1)");
  require(c.weight_decay >= 0, "sgd: weight decay ", c.weight_decay, " must be >= 0");
  require(!c.nesterov || c.momentum > 0, "sgd: Nesterov momentum needs momentum > 0, got ",
          c.momentum);
}
inline void validate(const adam& c) {
  require(std::isfinite(c.lr) && c.lr > 0, "adam: learning rate ", c.lr, " must be positive");
  require(c.beta1 >= 0 && c.beta1 < 1, "adam: beta1 ", c.beta1, " must lie in [0, 1)");
  require(c.beta2 >= 0 && c.beta2 < 1, "adam: beta2 ", c.beta2, " must lie in [0, 1)");
  require(c.weight_decay >= 0, "adam: weight decay ", c.weight_decay, " must be >= 0");
}
inline void validate(const optimizer_config& config) {
  std::visit([](const auto& c) { validate(c); }, config);
}

/// The parameters among `params` that require a gradient, in their order (the order matters:
/// a checkpoint's optimizer state is matched to parameters by position).
[[nodiscard]] inline std::vector<torch::Tensor> trainable(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params)
    if (p.defined() && p.requires_grad()) out.push_back(p);
  return out;
}

/// Builds the optimizer `config` describes over the trainable ones of `params`.
[[nodiscard]] inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const optimizer_config& config, const std::vector<torch::Tensor>& params) {
  validate(config);
  auto chosen = trainable(params);
  require(!chosen.empty(), optimizer_name(config), ": none of the ", params.size(),
          " parameters requires a gradient; expected at least one trainable parameter");
  if (const auto* s = std::get_if<sgd>(&config)) {
    return std::make_unique<torch::optim::SGD>(
        std::move(chosen), torch::optim::SGDOptions(s->lr)
                               .momentum(s->momentum)
                               .weight_decay(s->weight_decay)
                               .nesterov(s->nesterov));
  }
  const auto& a = std::get<adam>(config);
  return std::make_unique<torch::optim::Adam>(
      std::move(chosen), torch::optim::AdamOptions(a.lr)
                             .betas(std::make_tuple(a.beta1, a.beta2))
                             .weight_decay(a.weight_decay));
}

/// Sets the learning rate of every parameter group.
inline void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace linearize::train
