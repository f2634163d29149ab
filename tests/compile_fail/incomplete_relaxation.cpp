// expect: does not satisfy linearize::relaxation_policy
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/select/top_k.hpp>

struct half_relaxation {  // declares the role but has no gate/penalty/kept/score
  using role = linearize::roles::relaxation;
  std::string name() const { return "half"; }
};
auto bad = linearize::pipeline(half_relaxation{}, linearize::select::top_k{});
