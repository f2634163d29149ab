// expect: selection needs a step scheduler
#include <linearize/pipeline/run.hpp>
#include <linearize/schedule/lasso_growth.hpp>
#include <linearize/select/coordinate_block.hpp>

// Coordinate descent steps by a fixed number of ReLUs; a penalty scheduler cannot drive it.
linearize::run_result bad(const linearize::Network& net, const linearize::run_data& data) {
  const auto method = linearize::pipeline(linearize::select::coordinate_block{},
                                          linearize::schedule::lasso_growth{});
  return linearize::run(method, net, nullptr, data, linearize::budget(10));
}
