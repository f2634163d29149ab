#pragma once
// The data of a run that starts from a cached baseline: the same held-out split the baseline
// selected its epoch on (rebuilt from the record's fraction and seed), the rest of the training
// set, the test set, and the augmentation the baseline trained with. Methods therefore never decide on images the baseline trained on
// differently, and never on the test set.
#include <linearize/data/dataset.hpp>
#include <linearize/data/registry.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/train/baseline.hpp>

#include <filesystem>

namespace linearize {

[[nodiscard]] inline run_data baseline_run_data(const train::baseline_record& record,
                                                const std::filesystem::path& data_dir = {}) {
  const auto full = data::load_dataset(record.dataset, data_dir, data::part::train);
  auto parts = data::split(full, record.recipe.held_out_fraction, record.recipe.seed);
  return {.train = std::move(parts.train),
          .held_out = std::move(parts.held_out),
          .test = data::load_dataset(record.dataset, data_dir, data::part::test),
          .augment = record.recipe.augment};
}

}  // namespace linearize
