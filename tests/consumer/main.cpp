// Built against the installed package only: proves headers, targets and dependencies install
// (LibTorch, and nlohmann-json and fmt, which the library's headers use).
#include <linearize/linearize.hpp>

#include <iostream>

int main() {
  linearize::runtime::configure();
  linearize::ReluSlot slot(linearize::slot_options{.shape = {4, 3, 3}});
  auto y = slot(torch::randn({2, 4, 3, 3}));
  torch::nn::Sequential net(slot);
  const linearize::MaskSet masks(*net);
  if (masks.total_relus() != 36 || y.sizes() != torch::IntArrayRef({2, 4, 3, 3})) {
    std::cerr << "consumer: unexpected count " << masks.total_relus() << "\n";
    return 1;
  }
  // JSON through nlohmann-json, numbers through fmt.
  const linearize::io::result_row row{.method = "consumer", .relu_count = 1'234'567};
  const auto back = linearize::io::parse_json(linearize::io::to_json({row}), "rows");
  const auto count = linearize::grouped(back.at(0).at("relu_count").get<int64_t>());
  if (count != "1,234,567") {
    std::cerr << "consumer: the row read back as " << count << "\n";
    return 1;
  }
  std::cout << "consumer: " << masks.total_relus() << " ReLUs; a row of " << count << " ReLUs read back\n";
  return 0;
}
