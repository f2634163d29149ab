// expect: more than one selection policy
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/select/magnitude.hpp>
#include <linearize/select/top_k.hpp>

auto bad = linearize::pipeline(linearize::select::top_k{}, linearize::select::magnitude{});
