// Compile-only: the role concepts accept the stock policies and reject what breaks a contract,
// checked both ways (as mp-units checks its concepts). Nothing here runs; where the message a
// user sees matters, tests/compile_fail/ checks it instead.
#include <linearize/finetune/distill.hpp>
#include <linearize/policy/concepts/finetune.hpp>
#include <linearize/policy/concepts/policy.hpp>
#include <linearize/policy/concepts/relaxation.hpp>
#include <linearize/policy/concepts/scheduler.hpp>
#include <linearize/policy/concepts/selection.hpp>
#include <linearize/relax/hard_threshold.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/relax/sigmoid_mask.hpp>
#include <linearize/schedule/budget_tracking.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/schedule/lasso_growth.hpp>
#include <linearize/schedule/stagewise.hpp>
#include <linearize/select/coordinate_block.hpp>
#include <linearize/select/magnitude.hpp>
#include <linearize/select/random.hpp>
#include <linearize/select/senet.hpp>
#include <linearize/select/stage_criticality.hpp>
#include <linearize/select/top_k.hpp>

#include <string>

namespace {
using namespace linearize;

struct no_role {
  [[nodiscard]] std::string name() const { return "no_role"; }
};
/// select() misspelt.
struct misspelt_selection {
  using role = roles::selection;
  [[nodiscard]] std::string name() const { return "misspelt"; }
  template <class Context>
  [[nodiscard]] torch::Tensor selekt(const Context&) const { return {}; }
};
/// select() returns something that is not a mask.
struct counting_selection {
  using role = roles::selection;
  [[nodiscard]] std::string name() const { return "counting"; }
  template <class Context>
  [[nodiscard]] int select(const Context&) const { return 0; }
};
/// A relaxation without kept().
struct keepless_relaxation {
  using role = roles::relaxation;
  [[nodiscard]] torch::Tensor gate(const torch::Tensor& p) const { return p; }
  [[nodiscard]] torch::Tensor penalty(const torch::Tensor& p) const { return p.abs(); }
  [[nodiscard]] torch::Tensor score(const torch::Tensor& p) const { return p; }
  [[nodiscard]] torch::Tensor from_binary(const torch::Tensor& b) const { return b.to(torch::kFloat); }
  [[nodiscard]] std::string name() const { return "keepless"; }
};
/// A finetune whose run() returns nothing (the composer needs its outcome).
struct silent_finetune {
  using role = roles::finetune;
  int64_t epochs = 1;
  [[nodiscard]] std::string name() const { return "silent"; }
  template <class Context>
  void run(Context&, int64_t, const std::string&) const {}
};

static_assert(!policy<no_role> && policy<select::top_k> && policy<finetune::distill>);

static_assert(relaxation_policy<relax::l1_mix> && relaxation_policy<relax::sigmoid_mask> &&
              relaxation_policy<relax::hard_threshold>);
static_assert(!relaxation_policy<keepless_relaxation> && !relaxation_policy<select::top_k>);

static_assert(selection_policy<select::magnitude> && selection_policy<select::top_k> &&
              selection_policy<select::random> && selection_policy<select::coordinate_block> &&
              selection_policy<select::stage_criticality> && selection_policy<select::senet>);
static_assert(!selection_policy<misspelt_selection> && !selection_policy<counting_selection>);
static_assert(stepping_selection<select::coordinate_block> && stepping_selection<select::stage_criticality>);
static_assert(!stepping_selection<select::magnitude> && !stepping_selection<select::top_k> &&
              !stepping_selection<select::senet>);
static_assert(select::coordinate_block::steps_by == scheduler_kind::step &&
              select::stage_criticality::steps_by == scheduler_kind::stage);

static_assert(finetune_policy<finetune::distill> && !finetune_policy<silent_finetune>);

static_assert(penalty_scheduler<schedule::lasso_growth> && penalty_scheduler<schedule::budget_tracking>);
static_assert(stepwise_penalty_scheduler<schedule::budget_tracking> &&
              !stepwise_penalty_scheduler<schedule::lasso_growth>);
static_assert(step_scheduler<schedule::fixed_step> && !step_scheduler<schedule::stagewise> &&
              !step_scheduler<schedule::lasso_growth>);
static_assert(stage_scheduler<schedule::stagewise> && !stage_scheduler<schedule::fixed_step> &&
              !stage_scheduler<schedule::budget_tracking>);
static_assert(!penalty_scheduler<schedule::fixed_step> && !penalty_scheduler<schedule::stagewise>);
static_assert(scheduler_of_kind<schedule::fixed_step, scheduler_kind::step> &&
              !scheduler_of_kind<schedule::fixed_step, scheduler_kind::stage>);

}  // namespace
