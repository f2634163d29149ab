// Built against the installed package only: proves headers, targets and dependencies install.
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
  std::cout << "consumer: " << masks.total_relus() << " ReLUs\n";
  return 0;
}
