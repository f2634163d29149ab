// expect: a relaxation needs a penalty scheduler
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/select/top_k.hpp>

auto bad = linearize::pipeline(linearize::relax::l1_mix{}, linearize::schedule::fixed_step{},
                               linearize::select::top_k{});
