// expect: selection needs a stage-wise scheduler
#include <linearize/pipeline/run.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/select/stage_criticality.hpp>

// DeepReDuce's selection works in culling and thinning steps; coordinate descent's fixed_step
// says nothing about them.
linearize::run_result bad(const linearize::Network& net, const linearize::run_data& data) {
  const auto method = linearize::pipeline(linearize::select::stage_criticality{},
                                          linearize::schedule::fixed_step{});
  return linearize::run(method, net, net->copy(), data, linearize::budget(100));
}
