#pragma once
// Umbrella header: everything linearize offers, lowest layer first. Include single headers to
// compile less.

// support: errors, files, seeds, start-up settings, digit groups
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/checksum.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/format.hpp>
#include <linearize/support/runtime.hpp>
#include <linearize/support/seed.hpp>

// core: the ReLU slot and everything about masks
#include <linearize/core/granularity.hpp>
#include <linearize/core/kernels.hpp>
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/polynomial.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/core/replace_linearized.hpp>
#include <linearize/core/replacement.hpp>
#include <linearize/core/slot_capture.hpp>

// models, data, private-inference cost, files. Each model header registers its model by name
// (models/registry.hpp); a user's model registers by being included.
#include <linearize/models/layers.hpp>
#include <linearize/models/mobilenet_v1.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/models/resnet18_in.hpp>
#include <linearize/models/wide_resnet.hpp>

#include <linearize/data/augment.hpp>
#include <linearize/data/cifar.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/dataset_files.hpp>
#include <linearize/data/fashion_mnist.hpp>
#include <linearize/data/jpeg.hpp>
#include <linearize/data/loader.hpp>
#include <linearize/data/registry.hpp>
#include <linearize/data/tiny_imagenet.hpp>

#include <linearize/pi/cost_model.hpp>
#include <linearize/pi/cost_report.hpp>
#include <linearize/pi/mac_count.hpp>
#include <linearize/pi/network.hpp>

#include <linearize/io/json.hpp>
#include <linearize/io/json_difference.hpp>
#include <linearize/io/markdown_section.hpp>
#include <linearize/io/pi_fold.hpp>
#include <linearize/io/pi_graph.hpp>
#include <linearize/io/pi_trace.hpp>
#include <linearize/io/results.hpp>
#include <linearize/io/seed_summary.hpp>
#include <linearize/io/svg_plot.hpp>
#include <linearize/io/torch_export.hpp>
// Not here: the export's writers, io/pi_export.hpp, io/onnx_export.hpp, io/onnx_relu_count.hpp
// and io/pi_manifest.hpp. They pull in protobuf, ONNX and nlohmann-json (about 6 s more per
// translation unit); include them where a program exports.

// train: trainer, evaluation, losses, checkpoints
#include <linearize/train/baseline.hpp>
#include <linearize/train/batchnorm.hpp>
#include <linearize/train/checkpoint.hpp>
#include <linearize/train/device.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/history.hpp>
#include <linearize/train/keep_best.hpp>
#include <linearize/train/losses.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/progress.hpp>
#include <linearize/train/trainer.hpp>

// the contracts policies are written against
#include <linearize/policy/budget.hpp>
#include <linearize/policy/concepts/finetune.hpp>
#include <linearize/policy/concepts/policy.hpp>
#include <linearize/policy/concepts/relaxation.hpp>
#include <linearize/policy/concepts/scheduler.hpp>
#include <linearize/policy/concepts/selection.hpp>
#include <linearize/policy/progress.hpp>
#include <linearize/policy/roles.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/policy/selected.hpp>
#include <linearize/policy/stage_context.hpp>
#include <linearize/policy/stand_in.hpp>

// the policies
#include <linearize/finetune/distill.hpp>
#include <linearize/relax/autorep.hpp>
#include <linearize/relax/hard_threshold.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/relax/polynomial_fit.hpp>
#include <linearize/relax/sigmoid_mask.hpp>
#include <linearize/schedule/budget_tracking.hpp>
#include <linearize/schedule/density_hinge.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/schedule/lasso_growth.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/block_proposal.hpp>
#include <linearize/select/budget_fill.hpp>
#include <linearize/select/coordinate_block.hpp>
#include <linearize/select/coordinate_report.hpp>
#include <linearize/select/coordinate_state.hpp>
#include <linearize/select/criticality.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/select/deepreduce_report.hpp>
#include <linearize/select/deepreduce_reshape.hpp>
#include <linearize/select/first_order.hpp>
#include <linearize/select/magnitude.hpp>
#include <linearize/select/random.hpp>
#include <linearize/select/scoring.hpp>
#include <linearize/select/senet.hpp>
#include <linearize/select/sensitivity.hpp>
#include <linearize/select/stage_criticality.hpp>
#include <linearize/select/top_k.hpp>

// the composer: pipelines, chains, run(), reports
#include <linearize/pipeline/baseline_data.hpp>
#include <linearize/pipeline/chain.hpp>
#include <linearize/pipeline/mask_search.hpp>
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/pipeline/report.hpp>
#include <linearize/pipeline/run.hpp>
