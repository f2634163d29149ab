#pragma once
// BatchNorm2d whose batch statistics can span the ranks of a data-parallel run. In a data-
// parallel step each rank holds a shard of the global batch; plain BatchNorm normalizes each
// shard by its own mean and variance ("per rank", the default, as in PyTorch's DDP). When
// `synchronized` is set and the run has several ranks, a training forward sums each channel's
// count, sum and sum of squares over the ranks, normalizes by the statistics of the whole
// global batch, and the backward sums the two per-channel reductions it needs the same way: the
// step then equals one process's step on the global batch (up to float rounding). Everything
// else (eval mode, one process, on_this_rank) is torch's BatchNorm2d (its base class, options,
// parameter and buffer names and arithmetic), so checkpoints and PyTorch state dicts do not
// change. average_batchnorm_statistics brings per-rank running statistics together.
//
// train::options::sync_batchnorm sets `synchronized` on a network's layers while it trains
// (synchronize_batchnorm below); a layer of plain torch::nn::BatchNorm2d cannot be synchronized
// and is named in the error.
#include <linearize/distributed/buckets.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace linearize::models {

namespace detail {

/// y = (x - mean) * invstd * weight + bias with the statistics of all ranks' inputs.
struct synchronized_batch_norm : torch::autograd::Function<synchronized_batch_norm> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               torch::Tensor running_mean, torch::Tensor running_var,
                               double momentum, double eps) {
    const auto g = distributed::world();
    const std::vector<int64_t> dims{0, 2, 3};
    const int64_t channels = x.size(1);
    // Sums in double: sum of squares minus the squared mean cancels in float.
    auto stats = torch::cat({x.sum(dims, false, torch::kDouble), x.square().sum(dims, false, torch::kDouble),
                             torch::full({1}, static_cast<double>(x.numel() / channels),
                                         x.options().dtype(torch::kDouble))});
    g.sum(stats);
    const double count = stats[2 * channels].item<double>();
    const auto mean = stats.slice(0, 0, channels) / count;
    const auto var = (stats.slice(0, channels, 2 * channels) / count - mean.square()).clamp_min(0);
    const auto invstd = (var + eps).rsqrt();
    if (running_mean.defined()) {
      torch::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      const double unbiased = count > 1 ? count / (count - 1) : 1.0;
      running_var.mul_(1 - momentum).add_((var * unbiased).to(running_var.scalar_type()), momentum);
    }
    const auto shape = std::vector<int64_t>{1, channels, 1, 1};
    const auto m = mean.to(x.scalar_type()).view(shape), s = invstd.to(x.scalar_type()).view(shape);
    const auto xhat = (x - m) * s;
    ctx->save_for_backward({xhat, invstd, weight});
    ctx->saved_data["count"] = count;
    auto y = weight.defined() ? xhat * weight.view(shape) : xhat;
    return bias.defined() ? y + bias.view(shape) : y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& xhat = saved[0];
    const auto& invstd = saved[1];
    const auto& weight = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    const auto dy = grads[0];
    const std::vector<int64_t> dims{0, 2, 3};
    const int64_t channels = xhat.size(1);
    // This rank's sums give the parameters' gradients (the gradient sum adds the ranks'); the
    // sums over all ranks give the input's.
    const auto sum_dy = dy.sum(dims, false, torch::kDouble);
    const auto sum_dy_xhat = (dy * xhat).sum(dims, false, torch::kDouble);
    auto all = torch::cat({sum_dy, sum_dy_xhat});
    distributed::world().sum(all);
    const auto shape = std::vector<int64_t>{1, channels, 1, 1};
    const auto mean_dy = (all.slice(0, 0, channels) / count).to(dy.scalar_type()).view(shape);
    const auto mean_dy_xhat = (all.slice(0, channels, 2 * channels) / count).to(dy.scalar_type()).view(shape);
    auto scale = invstd.to(dy.scalar_type()).view(shape);
    if (weight.defined()) scale = scale * weight.view(shape);
    const auto dx = scale * (dy - mean_dy - xhat * mean_dy_xhat);
    torch::Tensor dweight, dbias;
    if (weight.defined()) dweight = sum_dy_xhat.to(weight.scalar_type());
    if (weight.defined()) dbias = sum_dy.to(weight.scalar_type());
    return {dx, dweight, dbias, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace detail

/// Torch's BatchNorm2d (same options, parameters, buffers and arithmetic) that can synchronize.
class BatchNorm2dImpl : public torch::nn::BatchNormImplBase<2, BatchNorm2dImpl> {
 public:
  using torch::nn::BatchNormImplBase<2, BatchNorm2dImpl>::BatchNormImplBase;

  /// Use the statistics of every rank's shard while training (see the top of this file).
  bool synchronized = false;

  torch::Tensor forward(const torch::Tensor& input) {
    if (!synchronized || !is_training() || distributed::world().alone())
      return torch::nn::BatchNormImplBase<2, BatchNorm2dImpl>::forward(input);
    _check_input_dim(input);
    double momentum = options.momentum().value_or(0.0);
    if (options.track_running_stats() && num_batches_tracked.defined()) {
      num_batches_tracked += 1;
      if (!options.momentum()) momentum = 1.0 / num_batches_tracked.item<double>();
    }
    const bool track = options.track_running_stats() && running_mean.defined();
    return detail::synchronized_batch_norm::apply(input, options.affine() ? weight : torch::Tensor(),
                                                  options.affine() ? bias : torch::Tensor(),
                                                  track ? running_mean : torch::Tensor(),
                                                  track ? running_var : torch::Tensor(), momentum,
                                                  options.eps());
  }

 protected:
  void _check_input_dim(const torch::Tensor& input) override {
    require(input.dim() == 4, "BatchNorm2d: expected a 4-D input [batch, channels, height, width], got shape ",
            input.sizes());
  }
};
TORCH_MODULE(BatchNorm2d);

/// Calls `f(layer)` when `m` is a BatchNorm layer (torch's BatchNorm1d/2d/3d or BatchNorm2d
/// above: they share options, parameters and buffers, not a base class); returns whether it is.
template <class F>
bool visit_batchnorm(torch::nn::Module* m, F&& f) {
  if (auto* a = dynamic_cast<BatchNorm2dImpl*>(m)) return f(*a), true;
  if (auto* b = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m)) return f(*b), true;
  if (auto* c = dynamic_cast<torch::nn::BatchNorm1dImpl*>(m)) return f(*c), true;
  if (auto* d = dynamic_cast<torch::nn::BatchNorm3dImpl*>(m)) return f(*d), true;
  return false;
}

/// BatchNorm's running means and variances in `module`, each rank's multiplied by `weight` and
/// summed over the ranks: with weight 1 / size, their mean. Per-rank BatchNorm updates them from
/// each rank's own shard; this brings the replicas together again. Nothing on one process.
inline void average_batchnorm_statistics(const distributed::group& g, torch::nn::Module& module,
                                         double weight) {
  if (g.alone()) return;
  std::vector<torch::Tensor> stats;
  for (const auto& m : module.modules(/*include_self=*/false))
    visit_batchnorm(m.get(), [&](auto& bn) {
      if (!bn.running_mean.defined()) return;
      stats.push_back(bn.running_mean);
      stats.push_back(bn.running_var);
    });
  if (stats.empty()) return;
  distributed::flat_buckets buckets(stats);
  buckets.sum(g, stats, {}, weight);
}

/// Sets `synchronized` on every BatchNorm2d of `net` (and clears it again when it goes out of
/// scope). With `on`, a BatchNorm layer of another type is an error naming it.
class synchronize_batchnorm {
 public:
  synchronize_batchnorm(torch::nn::Module& net, bool on) {
    if (!on) return;
    for (const auto& item : net.named_modules("", /*include_self=*/false)) {
      auto* m = item.value().get();
      if (auto* bn = dynamic_cast<BatchNorm2dImpl*>(m)) {
        bn->synchronized = true;
        layers_.push_back(std::dynamic_pointer_cast<BatchNorm2dImpl>(item.value()));
        continue;
      }
      if (visit_batchnorm(m, [](auto&) {})) {
        release();
        fail("sync_batchnorm: module '", item.key(), "' is a ", m->name(), ", which cannot synchronize "
             "its statistics over the ranks; build the network with linearize::models::BatchNorm2d "
             "(models/batch_norm.hpp), or train with per-rank BatchNorm (sync_batchnorm = false)");
      }
    }
  }
  synchronize_batchnorm(const synchronize_batchnorm&) = delete;
  synchronize_batchnorm& operator=(const synchronize_batchnorm&) = delete;
  ~synchronize_batchnorm() { release(); }

 private:
  void release() {
    for (auto& l : layers_) l->synchronized = false;
    layers_.clear();
  }
  std::vector<std::shared_ptr<BatchNorm2dImpl>> layers_;
};

}  // namespace linearize::models

// LibTorch defines BatchNormImplBase::pretty_print in its library for its own layers only.
template <>
inline void torch::nn::BatchNormImplBase<2, linearize::models::BatchNorm2dImpl>::pretty_print(
    std::ostream& stream) const {
  stream << "linearize::models::BatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=";
  if (options.momentum())
    stream << *options.momentum();
  else
    stream << "None";
  stream << ", affine=" << options.affine() << ", track_running_stats=" << options.track_running_stats()
         << ", synchronized=" << static_cast<const linearize::models::BatchNorm2dImpl&>(*this).synchronized
         << ")";
}
