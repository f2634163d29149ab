// expect: does not satisfy linearize::selection_policy
#include <linearize/pipeline/pipeline.hpp>

#include <string>

// A user's selection rule whose select() is misspelt: pipeline() says so, at the call.
struct my_rule {
  using role = linearize::roles::selection;
  [[nodiscard]] std::string name() const { return "my_rule"; }
  template <class Context>
  [[nodiscard]] torch::Tensor selct(const Context& ctx) const { return ctx.kept; }
};

constexpr auto method = linearize::pipeline(my_rule{});
