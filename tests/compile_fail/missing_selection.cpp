// expect: no selection policy
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/relax/l1_mix.hpp>

auto bad = linearize::pipeline(linearize::relax::l1_mix{});
