#pragma once
// Datasets by name, for programs that take the dataset on the command line.
#include <linearize/data/cifar.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/dataset_files.hpp>
#include <linearize/data/fashion_mnist.hpp>
#include <linearize/data/tiny_imagenet.hpp>
#include <linearize/support/error.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <string>
#include <string_view>

namespace linearize::data {

/// The names load_dataset knows.
inline constexpr std::array<std::string_view, 5> known_datasets{
    "fashion-mnist", "cifar10", "cifar100", "cifar100-coarse", "tinyimagenet"};

/// Reads dataset `name` (one of known_datasets) from `root`. An empty root means the Debian
/// location for fashion-mnist and is an error for the others, whose files have no standard home.
[[nodiscard]] inline image_dataset load_dataset(std::string_view name,
                                                const std::filesystem::path& root, part which) {
  if (name == "fashion-mnist") return load_fashion_mnist(root, which);
  std::string known;
  for (auto k : known_datasets) known += (known.empty() ? "" : ", ") + std::string(k);
  const bool is_known =
      std::find(known_datasets.begin(), known_datasets.end(), name) != known_datasets.end();
  require(is_known, "unknown dataset '", name, "': expected one of ", known);
  require(!root.empty(), "dataset '", name, "' needs the directory that holds its files");
  if (name == "cifar10") return load_cifar10(root, which);
  if (name == "cifar100") return load_cifar100(root, which, cifar100_labels::fine);
  if (name == "cifar100-coarse") return load_cifar100(root, which, cifar100_labels::coarse);
  return load_tiny_imagenet(root, which);
}

/// The same with the part by name: "train", "test" or "val" (a synonym of test).
[[nodiscard]] inline image_dataset load_dataset(std::string_view name,
                                                const std::filesystem::path& root,
                                                std::string_view which) {
  return load_dataset(name, root, parse_part(which));
}

}  // namespace linearize::data
