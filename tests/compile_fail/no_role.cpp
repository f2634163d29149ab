// expect: an argument fits no role
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/select/top_k.hpp>

struct not_a_policy {
  double threshold = 0.5;
};
auto bad = linearize::pipeline(linearize::select::top_k{}, not_a_policy{});
