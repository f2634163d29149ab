#pragma once
// The training objectives: cross entropy against the labels, and Hinton's knowledge
// distillation against a frozen teacher's logits, as SNL and coordinate descent use it:
//   KD = KL(softmax(t / T) || softmax(s / T)) * T^2, averaged over the batch.
// The T^2 factor keeps the gradient's scale independent of T.
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <cmath>

namespace linearize::train {

/// Knowledge-distillation settings (SNL: T = 4, weight 1). Total loss = CE + weight * KD.
struct distillation {
  double temperature = 4;
  double weight = 1;
};

/// Members for io/json.hpp (a checkpoint records the distillation settings).
template <class F>
void json_fields(const distillation& kd, F&& f) {
  f("temperature", kd.temperature);
  f("weight", kd.weight);
}

inline void validate(const distillation& kd) {
  require(std::isfinite(kd.temperature) && kd.temperature > 0, "distillation: temperature ",
          kd.temperature, " must be positive");
  require(std::isfinite(kd.weight) && kd.weight >= 0, "distillation: weight ", kd.weight,
          " must be >= 0");
}

/// Mean cross entropy of logits [B, K] against int64 labels [B].
[[nodiscard]] inline torch::Tensor cross_entropy(const torch::Tensor& logits,
                                                 const torch::Tensor& labels) {
  require(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
          "cross_entropy: logits of shape ", logits.sizes(), " and labels of shape ",
          labels.sizes(), "; expected [B, classes] and [B]");
  return torch::nn::functional::cross_entropy(logits, labels);
}

/// KL(softmax(teacher / T) || softmax(student / T)) * T^2, summed over classes and averaged
/// over the batch. The teacher's logits get no gradient.
[[nodiscard]] inline torch::Tensor kd_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                                           double temperature) {
  require(std::isfinite(temperature) && temperature > 0, "kd_loss: temperature ", temperature,
          " must be positive");
  require(student.dim() == 2 && student.sizes() == teacher.sizes(),
          "kd_loss: student logits of shape ", student.sizes(), " and teacher logits of shape ",
          teacher.sizes(), "; expected equal shapes [B, classes]");
  const auto log_student = torch::log_softmax(student / temperature, 1);
  const auto target = torch::softmax(teacher.detach().to(student.dtype()) / temperature, 1);
  // kl_div(input = log q, target = p) = sum p * (log p - log q), with 0 * log 0 = 0.
  namespace F = torch::nn::functional;
  return F::kl_div(log_student, target, F::KLDivFuncOptions().reduction(torch::kBatchMean)) *
         (temperature * temperature);
}

/// Attention map of an activation [batch, channels, ...] (Zagoruyko & Komodakis, ICLR 2017):
/// the mean over channels of x^2, flattened per sample and scaled to unit L2 norm: [batch, rest].
[[nodiscard]] inline torch::Tensor attention_map(const torch::Tensor& x) {
  require(x.dim() >= 2 && x.size(0) > 0, "attention_map: activation of shape ", x.sizes(),
          "; expected [batch, channels, ...]");
  namespace F = torch::nn::functional;
  return F::normalize(x.pow(2).mean(1).reshape({x.size(0), -1}), F::NormalizeFuncOptions().dim(1));
}

/// Attention transfer at one layer: the mean squared difference of the student's and the
/// teacher's attention maps (the teacher's carries no gradient). A run weighs the sum over layers
/// by beta / 2 (beta = 1000 in SENet's public code).
[[nodiscard]] inline torch::Tensor attention_loss(const torch::Tensor& student_map, const torch::Tensor& teacher_map) {
  require(student_map.sizes() == teacher_map.sizes(), "attention_loss: student map of shape ",
          student_map.sizes(), " and teacher map of shape ", teacher_map.sizes(), "; expected equal shapes");
  return (student_map - teacher_map.detach().to(student_map.dtype())).pow(2).mean();
}

}  // namespace linearize::train
