#pragma once
// Umbrella header: everything linearize offers, lowest layer first. Include single headers to
// compile less.

// support: errors, files, seeds, start-up settings
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/checksum.hpp>
#include <linearize/support/error.hpp>
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

// models, data, private-inference cost, files
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

#include <linearize/io/flat_json.hpp>
#include <linearize/io/pi_fold.hpp>
#include <linearize/io/pi_graph.hpp>
#include <linearize/io/pi_trace.hpp>
#include <linearize/io/results.hpp>
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
#include <linearize/train/losses.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/progress.hpp>
#include <linearize/train/trainer.hpp>

// policies and their composition
#include <linearize/finetune/distill.hpp>
#include <linearize/relax/hard_threshold.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/relax/sigmoid_mask.hpp>
#include <linearize/schedule/budget_tracking.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/schedule/lasso_growth.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/block_proposal.hpp>
#include <linearize/select/coordinate_block.hpp>
#include <linearize/select/coordinate_report.hpp>
#include <linearize/select/coordinate_state.hpp>
#include <linearize/select/deepreduce_plan.hpp>
#include <linearize/select/deepreduce_reshape.hpp>
#include <linearize/select/first_order.hpp>
#include <linearize/select/magnitude.hpp>
#include <linearize/select/random.hpp>
#include <linearize/select/scoring.hpp>
#include <linearize/select/stage_criticality.hpp>
#include <linearize/select/top_k.hpp>

#include <linearize/pipeline/baseline_data.hpp>
#include <linearize/pipeline/budget.hpp>
#include <linearize/pipeline/chain.hpp>
#include <linearize/pipeline/criticality.hpp>
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/pipeline/mask_search.hpp>
#include <linearize/pipeline/run.hpp>
#include <linearize/pipeline/run_types.hpp>
#include <linearize/pipeline/stage_context.hpp>
#include <linearize/pipeline/report.hpp>
