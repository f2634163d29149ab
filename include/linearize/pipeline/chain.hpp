#pragma once
// Stages chain: `first | second` runs `second` on the binary mask `first` produced (SNL then
// coordinate descent is the first use). A chain is a type too: a hana::tuple of stages, unrolled
// at compile time when it runs.
#include <linearize/pipeline/pipeline.hpp>

#include <boost/hana/concat.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/unpack.hpp>

#include <string>

namespace linearize {

template <class... Stages>
class chain {
 public:
  constexpr explicit chain(hana::tuple<Stages...> stages) : stages_(std::move(stages)) {}
  [[nodiscard]] constexpr const hana::tuple<Stages...>& stages() const { return stages_; }
  static constexpr std::size_t size = sizeof...(Stages);
  [[nodiscard]] std::string name() const {
    std::string out;
    hana::for_each(stages_, [&](const auto& s) { out += (out.empty() ? "" : " | ") + s.name(); });
    return out;
  }

 private:
  hana::tuple<Stages...> stages_;
};

template <class T>
inline constexpr bool is_chain = false;
template <class... S>
inline constexpr bool is_chain<chain<S...>> = true;

/// A stage or a chain of stages: what run() accepts.
template <class T>
concept method = is_pipeline_stage<T> || is_chain<T>;

namespace detail {
template <class T>
constexpr auto as_stages(const T& m) {
  if constexpr (is_chain<T>)
    return m.stages();
  else
    return hana::make_tuple(m);
}
}  // namespace detail

template <method A, method B>
[[nodiscard]] constexpr auto operator|(const A& first, const B& second) {
  auto all = hana::concat(detail::as_stages(first), detail::as_stages(second));
  return hana::unpack(all, [](auto... s) { return chain<decltype(s)...>(hana::make_tuple(s...)); });
}

/// The stages of a method as a hana::tuple (one element for a single stage).
template <method M>
[[nodiscard]] constexpr auto stages_of(const M& m) {
  return detail::as_stages(m);
}

}  // namespace linearize
