#pragma once
// The finetuning recipe shared by SNL and coordinate descent: knowledge distillation from the
// frozen original network (KD at temperature 4, weight 1, plus cross entropy), SGD lr 1e-3,
// momentum 0.9, weight decay 5e-4, cosine schedule. The checkpoint kept is the one with the best
// accuracy on held-out training data, never on the test set (SNL's public code selects on test).
#include <linearize/pipeline/roles.hpp>

#include <cstdint>
#include <string>

namespace linearize::finetune {

struct distill {
  using role = roles::finetune;
  int64_t epochs = 100;
  double temperature = 4;
  double kd_weight = 1;
  double lr = 1e-3;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  /// Re-estimate BatchNorm statistics on training data right after binarization (a cheap remedy
  /// for the accuracy collapse at SNL's binarization step) before finetuning starts.
  bool recalibrate_bn = true;
  /// Keep the epoch with the best held-out accuracy (else the last epoch).
  bool select_on_held_out = true;

  [[nodiscard]] std::string name() const { return "distill"; }
};

}  // namespace linearize::finetune
