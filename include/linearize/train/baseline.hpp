#pragma once
// The baseline every linearization method starts from: a network trained with all its ReLUs,
// cached on disk so that SNL, coordinate descent, DeepReDuce and the demo load it instead of
// training it again.
//
//   auto base = linearize::train::load_or_train_baseline({.data = "fashion-mnist"}, {});
//   base.net        // resnet18_in at width 16, the epoch with the best held-out accuracy
//   base.record     // what it is: model, dataset, recipe, held-out and test accuracy, ReLUs
//
// Files, for weights at `out` (e.g. runs/baseline/fashion-mnist_resnet18_in_w16.pt):
//   out                      weights + masks, io::export_state (Python: torch.load)
//   out with .json           the record (JSON); "complete": true once `out` is final
//   out with .ckpt           the trainer's checkpoint while training (removed at the end)
//   out with .best.pt        the best epoch's weights while training (removed at the end)
// The record is written first with "complete": false (it holds the recipe, so a resume with
// another recipe is refused) and rewritten last with the results, so a record that says
// complete always describes the weights beside it (their checksum is in it too). In a
// data-parallel run (distributed/) the ranks train together, rank 0 writes these files and
// every rank returns the same baseline.
//
// Model selection uses a held-out part of the training set (never the test set): the weights
// kept are those of the epoch with the best held-out top-1. The split is data::split(train,
// held_out_fraction, seed); the record holds both, so later programs can rebuild the same
// split (e.g. to select their own epochs on images the baseline never trained on).
//
// Masks are frozen while the baseline trains (it is a plain ReLU network: a trainable mask with
// weight decay would drift from 1): every slot is hardened to its current binary mask, and the
// slots that were soft are softened again at the end.
#include <linearize/core/mask_set.hpp>
#include <linearize/core/network.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/data/augment.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/registry.hpp>
#include <linearize/io/json.hpp>
#include <linearize/io/results.hpp>
#include <linearize/io/torch_export.hpp>
#include <linearize/models/registry.hpp>
#include <linearize/models/resnet18_in.hpp>  // baseline_spec's default model: registered here too
#include <linearize/distributed/group.hpp>
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/seed.hpp>
#include <linearize/train/checkpoint.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/keep_best.hpp>
#include <linearize/train/lr_schedule.hpp>
#include <linearize/train/optimizer.hpp>
#include <linearize/train/progress.hpp>
#include <linearize/train/trainer.hpp>

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace linearize::train {

/// How a baseline is trained: SGD with momentum and weight decay, a cosine learning rate from
/// `lr` to 0 over `epochs`, random crop + horizontal flip. The defaults are the Fashion-MNIST
/// recipe measured for examples/pretrain.cpp (see there); SNL's CIFAR recipe is
/// {.epochs = 160, .batch_size = 256, .augment = data::cifar_augmentation} with multistep, which
/// this cosine recipe replaces.
struct baseline_recipe {
  int64_t epochs = 6;
  int64_t batch_size = 128;
  double lr = 0.05;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  data::augmentation augment{.crop_padding = 2, .horizontal_flip = true};
  /// Fraction of the training set held out for model selection, in (0, 1).
  double held_out_fraction = 0.1;
  /// Seeds the initial weights (spec overload), the held-out split, batch order, augmentation.
  uint64_t seed = 0;
};

struct baseline_options {
  baseline_recipe recipe{};
  /// The weights file. Empty: default_baseline_path(spec) (spec overload; required otherwise).
  std::filesystem::path out{};
  /// Use the cached baseline, or continue an interrupted run, when there is one. false: train
  /// afresh, deleting the cached files first.
  bool resume = true;
  /// Checkpoint every this many steps (and at each epoch end): what an interruption loses.
  int64_t checkpoint_every = 100;
  int64_t eval_batch_size = 256;
  progress_options progress{};
  /// Ends training after this many optimizer steps in total, as a kill would (tests).
  std::optional<int64_t> stop_after_steps{};
  /// Data-parallel runs: BatchNorm over the whole global batch (train::options::sync_batchnorm).
  bool sync_batchnorm = false;
};

/// What a baseline is and how good it is; the record file's content. Accuracies are fractions
/// in [0, 1].
struct baseline_record {
  bool complete = false;          ///< false while training: weights not final yet
  std::string model;              ///< the network's describe()
  std::string dataset;            ///< e.g. "fashion-mnist"
  int64_t classes = 0, channels = 0, image_height = 0, image_width = 0;
  baseline_recipe recipe{};
  int64_t train_samples = 0, held_out_samples = 0, test_samples = 0;
  int64_t best_epoch = 0;         ///< 1-based: the epoch whose weights were kept
  double held_out_top1 = io::missing;
  double test_top1 = io::missing;
  double test_top5 = io::missing; ///< NaN for fewer than 5 classes
  int64_t relu_count = 0;
  double seconds_per_epoch = io::missing;  ///< training only (held-out evaluation excluded)
  double images_per_second = io::missing;
  int64_t threads = 0;            ///< intra-op threads of the run that finished it
  std::string weights;            ///< file name of the weights, beside the record
  std::string weights_fnv1a;      ///< checksum of the weights file, hexadecimal
};

struct baseline {
  Network net;
  baseline_record record;
  bool trained = false;  ///< false: loaded from the cache
};

// ---- files ----------------------------------------------------------------------------------
[[nodiscard]] inline std::filesystem::path baseline_record_path(std::filesystem::path weights) {
  return weights.replace_extension(".json");
}
[[nodiscard]] inline std::filesystem::path baseline_checkpoint_path(std::filesystem::path weights) {
  return weights.replace_extension(".ckpt");
}
[[nodiscard]] inline std::filesystem::path baseline_best_path(std::filesystem::path weights) {
  return weights.replace_extension(".best.pt");
}

namespace detail {
inline constexpr const char* baseline_format = "linearize-baseline 1";
}  // namespace detail

// The record file's members in file order: the one list that writing and reading both walk
// (io/json.hpp), so the two cannot drift apart. The recipe's optimizer and schedule are fixed
// texts, written as given and checked on reading: they are not options.
template <class Recipe, class F>
  requires std::same_as<std::remove_const_t<Recipe>, baseline_recipe>
void json_fields(Recipe& r, F&& f) {
  f("epochs", r.epochs);
  f("batch_size", r.batch_size);
  f("optimizer", io::fixed_text{"sgd"});
  f("lr", r.lr);
  f("schedule", io::fixed_text{"cosine"});
  f("momentum", r.momentum);
  f("weight_decay", r.weight_decay);
  f("crop_padding", r.augment.crop_padding);
  f("horizontal_flip", r.augment.horizontal_flip);
  f("held_out_fraction", r.held_out_fraction);
  f("seed", r.seed);
}

template <class Record, class F>
  requires std::same_as<std::remove_const_t<Record>, baseline_record>
void json_fields(Record& r, F&& f) {
  f("format", io::fixed_text{detail::baseline_format});
  f("complete", r.complete);
  f("model", r.model);
  f("dataset", r.dataset);
  f("classes", r.classes);
  f("channels", r.channels);
  f("image_height", r.image_height);
  f("image_width", r.image_width);
  json_fields(r.recipe, f);  // flat: the recipe's members sit beside the others
  f("train_samples", r.train_samples);
  f("held_out_samples", r.held_out_samples);
  f("test_samples", r.test_samples);
  f("best_epoch", r.best_epoch);
  f("held_out_top1", r.held_out_top1);
  f("test_top1", r.test_top1);
  f("test_top5", r.test_top5);
  f("relu_count", r.relu_count);
  f("seconds_per_epoch", r.seconds_per_epoch);
  f("images_per_second", r.images_per_second);
  f("threads", r.threads);
  f("weights", r.weights);
  f("weights_fnv1a", r.weights_fnv1a);
}

namespace detail {

inline std::string file_checksum(const std::filesystem::path& path) {
  return fmt::format("{:016x}", fnv1a(read_file(path)));
}

/// "fashion-mnist/train" -> "fashion-mnist": the dataset, not the part.
inline std::string dataset_family(const std::string& name) {
  const auto slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(0, slash);
}

/// The recipe as "name value" words, for comparing two recipes and saying how they differ.
inline std::string recipe_text(const baseline_recipe& r) {
  return io::describe_members(io::to_json_value(r));
}

inline void validate(const baseline_recipe& r) {
  require(r.epochs >= 1, "baseline: epochs = ", r.epochs, "; expected at least 1");
  require(r.held_out_fraction > 0 && r.held_out_fraction < 1, "baseline: held-out fraction ",
          r.held_out_fraction, " must lie in (0, 1): model selection needs held-out data");
}

inline baseline_record read_record(const std::filesystem::path& file) {
  baseline_record r;
  io::read_json_value(io::read_json_file(file), file.string(), r);
  return r;
}

inline void write_record(const std::filesystem::path& file, const baseline_record& r) {
  io::write_json_file(file, io::to_json_value(r));
}

/// The cached baseline's record when `options` says to use the cache and a complete record for
/// this dataset and recipe is there; a record for another dataset or recipe is an error.
inline std::optional<baseline_record> cached_record(const baseline_options& options,
                                                    const std::string& dataset) {
  const auto file = baseline_record_path(options.out);
  if (!options.resume || !std::filesystem::exists(file)) return std::nullopt;
  auto record = read_record(file);
  const char* hint = "; delete it, train afresh (resume = false, --fresh) or choose another out path";
  require(record.dataset == dataset, "baseline '", file.string(), "' is for dataset '",
          record.dataset, "'; expected '", dataset, "'", hint);
  require(recipe_text(record.recipe) == recipe_text(options.recipe), "baseline '", file.string(),
          "' was trained with (", recipe_text(record.recipe), "); this call asks for (",
          recipe_text(options.recipe), ")", hint);
  if (!record.complete) return std::nullopt;  // an interrupted run of this recipe: continue it
  return record;
}

/// Softens its slots when it goes out of scope (also on an exception).
struct frozen_masks {
  std::vector<std::shared_ptr<ReluSlotImpl>> slots;
  frozen_masks() = default;
  frozen_masks(const frozen_masks&) = delete;
  frozen_masks& operator=(const frozen_masks&) = delete;
  ~frozen_masks() {
    for (const auto& s : slots) s->soften();
  }
};

inline void remove_baseline_files(const std::filesystem::path& weights) {
  for (const auto& f : {baseline_record_path(weights), weights, baseline_checkpoint_path(weights),
                        baseline_best_path(weights)}) {
    std::error_code ec;
    std::filesystem::remove(f, ec);
    require(!ec, "cannot remove '", f.string(), "': ", ec.message());
  }
}

}  // namespace detail

/// Reads the record beside the weights file `weights`; a missing or malformed one is a
/// linearize::error naming the file.
[[nodiscard]] inline baseline_record read_baseline_record(const std::filesystem::path& weights) {
  return detail::read_record(baseline_record_path(weights));
}

/// Whether `weights` holds a finished baseline: the weights file and a record marked complete
/// (a record that cannot be read counts as not finished; loading it then reports why).
[[nodiscard]] inline bool baseline_complete(const std::filesystem::path& weights) {
  if (!std::filesystem::exists(weights) || !std::filesystem::exists(baseline_record_path(weights)))
    return false;
  try {
    return read_baseline_record(weights).complete;
  } catch (const error&) {
    return false;
  }
}

/// Loads the baseline at `weights` into `net` and returns its record. Refuses an incomplete
/// record, a network other than the one recorded (by describe()), and weights whose checksum
/// differs from the record's (a corrupt or replaced file).
inline baseline_record load_baseline(NetworkImpl& net, const std::filesystem::path& weights) {
  const auto record = read_baseline_record(weights);
  const auto where = baseline_record_path(weights).string();
  require(record.complete, "baseline '", where, "' is not complete (its training was interrupted); "
          "run the training again to finish it");
  require(record.model == net.describe(), "baseline '", where, "' holds ", record.model,
          "; this network is ", net.describe());
  require(std::filesystem::exists(weights), "baseline weights '", weights.string(),
          "' are missing (the record '", where, "' is there)");
  const auto sum = detail::file_checksum(weights);
  require(sum == record.weights_fnv1a, "baseline weights '", weights.string(),
          "' are corrupt or were replaced: checksum ", sum, ", the record says ",
          record.weights_fnv1a, "; train the baseline afresh");
  io::import_state(net, weights);
  return record;
}

/// Trains `net` on `train` (less a held-out part) as `options.recipe` says, keeps the epoch with
/// the best held-out accuracy, measures it on `test`, and writes the weights and record to
/// `options.out`. With `options.resume`, an interrupted run of the same recipe is continued
/// from its checkpoint (a complete cached baseline is not looked at: see load_or_train_baseline).
inline baseline train_baseline(const Network& net, const data::image_dataset& train,
                               const data::image_dataset& test, const baseline_options& options) {
  require(net != nullptr, "train_baseline: the network is null");
  require(!options.out.empty(), "train_baseline: options.out is empty; expected the weights path");
  require(options.out.extension() != ".json" && options.out.extension() != ".ckpt",
          "train_baseline: weights path '", options.out.string(),
          "' has the extension of the record or checkpoint beside it; use e.g. '.pt'");
  detail::validate(options.recipe);
  train.validate();
  test.validate();
  const auto& recipe = options.recipe;
  const auto dataset = detail::dataset_family(train.name);
  const auto record_file = baseline_record_path(options.out);
  const auto checkpoint_file = baseline_checkpoint_path(options.out);
  const auto best_file = baseline_best_path(options.out);

  // A resumable run needs its record (the recipe) and its checkpoint; anything else starts over.
  bool resuming = options.resume && std::filesystem::exists(checkpoint_file) &&
                  std::filesystem::exists(record_file);
  if (resuming) {
    const auto record = detail::cached_record(options, dataset);  // refuses another recipe
    resuming = !record;  // a complete record with a stray checkpoint: retrain
  }
  // Data-parallel: rank 0 writes the files, the others wait until they are there.
  const auto group = distributed::world();
  if (!resuming && group.writer()) detail::remove_baseline_files(options.out);

  baseline_record record;
  record.model = net->describe();
  record.dataset = dataset;
  record.classes = train.classes;
  record.channels = train.channels();
  record.image_height = train.height();
  record.image_width = train.width();
  record.recipe = recipe;
  record.weights = options.out.filename().string();
  if (!resuming && group.writer()) detail::write_record(record_file, record);
  group.barrier();

  const auto parts = data::split(train, recipe.held_out_fraction, recipe.seed);
  record.train_samples = parts.train.size();
  record.held_out_samples = parts.held_out.size();
  record.test_samples = test.size();

  // Freeze the masks: a baseline trains weights only. The slots that were soft are softened
  // again however this function ends.
  detail::frozen_masks frozen;
  for (const auto& [name, slot] : detail::slots_of(*net)) {
    require(slot->materialized(), "train_baseline: slot '", name, "' of ", net->describe(),
            " has no shape yet; give slot_options::shape or run one forward pass first");
    if (slot->is_hard()) continue;
    const auto m = slot->mask().detach();
    require(m.eq(0).logical_or(m.eq(1)).all().item<bool>(), "train_baseline: slot '", name,
            "' has a soft mask with values other than 0 and 1; a baseline trains the weights "
            "with binary masks (a fresh network's are all ones)");
    slot->harden(m.clone());
    frozen.slots.push_back(slot);
  }

  train::options run{.epochs = recipe.epochs,
                     .batch_size = recipe.batch_size,
                     .augment = recipe.augment,
                     .optimizer = sgd{.lr = recipe.lr,
                                      .momentum = recipe.momentum,
                                      .weight_decay = recipe.weight_decay},
                     .schedule = cosine{},
                     .held_out = parts.held_out,
                     .eval_batch_size = options.eval_batch_size,
                     .checkpoint = checkpoint_file,
                     .checkpoint_every = options.checkpoint_every,
                     .resume = resuming,
                     .seed = recipe.seed,
                     .stop_after_steps = options.stop_after_steps,
                     .progress = options.progress,
                     .sync_batchnorm = options.sync_batchnorm};
  keep_best_held_out best(best_file);
  const auto result = fit(*net, parts.train, run,
                          hooks{.after_epoch = [&](epoch_context& c) { best.after_epoch(c); }});

  if (result.end != run_end::completed) return {net, record, true};  // record stays incomplete

  const auto kept = best.restore(*net, result);
  require(kept.has_value(), "train_baseline: no epoch was evaluated on held-out data (held_out_fraction ",
          recipe.held_out_fraction, ")");
  record.best_epoch = kept->epoch + 1;
  record.held_out_top1 = kept->held_out_top1;
  const auto on_test = evaluate(*net, test, options.eval_batch_size);
  record.test_top1 = on_test.top1;
  record.test_top5 = on_test.top5.value_or(io::missing);
  record.relu_count = MaskSet(*net).relu_count();
  double seconds = 0, rate = 0;
  for (const auto& row : result.rows) {
    seconds += row.seconds;
    rate += row.images_per_second;
  }
  record.seconds_per_epoch = seconds / static_cast<double>(result.rows.size());
  record.images_per_second = rate / static_cast<double>(result.rows.size());
  record.threads = torch::get_num_threads();

  if (group.writer()) io::export_state(*net, options.out);
  group.barrier();
  record.weights_fnv1a = detail::file_checksum(options.out);
  record.complete = true;
  if (group.writer()) {
    detail::write_record(record_file, record);  // from here on, the cache is valid
    std::error_code ec;
    std::filesystem::remove(checkpoint_file, ec);
    std::filesystem::remove(best_file, ec);
  }
  group.barrier();
  return {net, record, true};
}

/// The cached baseline at `options.out` when there is a complete one for this dataset and
/// recipe (loaded into `net`), else train_baseline. A cache for another dataset, recipe or
/// network, or a corrupt one, is a linearize::error naming the file.
inline baseline load_or_train_baseline(const Network& net, const data::image_dataset& train,
                                       const data::image_dataset& test,
                                       const baseline_options& options) {
  require(net != nullptr, "load_or_train_baseline: the network is null");
  require(!options.out.empty(), "load_or_train_baseline: options.out is empty; expected the "
          "weights path");
  detail::validate(options.recipe);
  if (auto cached = detail::cached_record(options, detail::dataset_family(train.name))) {
    auto record = load_baseline(*net, options.out);
    return {net, std::move(record), false};
  }
  return train_baseline(net, train, test, options);
}

// ---- by name: the programs' entry point -------------------------------------------------------

/// A baseline by dataset and model name, as programs take them from the command line.
struct baseline_spec {
  std::string data = "fashion-mnist";
  /// Where the dataset's files are; empty: the dataset's default (fashion-mnist only).
  std::filesystem::path data_dir{};
  std::string model = "resnet18_in";
  /// The model's width knob (models::model_spec::width); empty: baseline_width(model).
  std::optional<double> width{};
};

/// The width a baseline of `model` has by default: the model's registered baseline_width
/// (16 for resnet18_in), else its own default (empty). An unknown model is an error.
[[nodiscard]] inline std::optional<double> baseline_width(const std::string& model) {
  return models::model_info_of(model).baseline_width;
}

/// runs/baseline/<data>_<model>_w<width>.pt, relative to the working directory.
[[nodiscard]] inline std::filesystem::path default_baseline_path(const baseline_spec& spec) {
  const auto width = spec.width ? spec.width : baseline_width(spec.model);
  const std::string w = width ? fmt::format("{}", *width) : std::string("default");  // 16, 0.5
  return std::filesystem::path("runs") / "baseline" / (spec.data + "_" + spec.model + "_w" + w + ".pt");
}

/// Loads the cached baseline for `spec` or trains it (reading the dataset only then). The
/// initial weights come from the recipe's seed.
inline baseline load_or_train_baseline(const baseline_spec& spec, baseline_options options = {}) {
  if (options.out.empty()) options.out = default_baseline_path(spec);
  detail::validate(options.recipe);
  const auto width = spec.width ? spec.width : baseline_width(spec.model);
  if (auto cached = detail::cached_record(options, spec.data)) {
    auto net = models::make_model(spec.model, {.classes = cached->classes,
                                               .channels = cached->channels,
                                               .size = cached->image_height,
                                               .width = width});
    auto record = load_baseline(*net, options.out);
    return {net, std::move(record), false};
  }
  const auto train = data::load_dataset(spec.data, spec.data_dir, data::part::train);
  const auto test = data::load_dataset(spec.data, spec.data_dir, data::part::test);
  require(train.height() == train.width(), "baseline: dataset '", spec.data, "' has ",
          train.height(), "x", train.width(), " images; the models expect square ones");
  torch::manual_seed(derive_seed(options.recipe.seed, {0xba5e11e5u}));
  auto net = models::make_model(spec.model, {.classes = train.classes,
                                             .channels = train.channels(),
                                             .size = train.height(),
                                             .width = width});
  return train_baseline(net, train, test, options);
}

}  // namespace linearize::train
