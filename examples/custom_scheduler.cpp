// A user-written budget scheduler composed with the library's stock policies, without touching
// the library: the ReLU count is driven down a *linear* path (the stock budget_tracking uses a
// log-linear one) from the full count to the budget over a fixed number of epochs.
//
// A penalty scheduler is any type with `using role = linearize::roles::scheduler;`, name(),
// start(scalars&), after_epoch(scalars&, const search_progress&) -> bool (true: stop) and
// max_epochs(); every_steps() and after_step(...) are optional (found at compile time). The
// penalty weight lives in the named scalars under linearize::penalty_weight_key, which the
// search checkpoints, so the scheduler itself stays a plain value.
#include "cli.hpp"

#include <linearize/linearize.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace {

struct linear_budget {
  using role = linearize::roles::scheduler;
  int64_t epochs = 6;
  double lambda0 = 1e-5;
  int64_t check_every = 20;

  [[nodiscard]] std::string name() const { return "linear_budget"; }
  [[nodiscard]] int64_t max_epochs() const { return epochs + 2; }
  [[nodiscard]] int64_t every_steps() const { return check_every; }

  void start(linearize::scalars& s) const { s.try_emplace(linearize::penalty_weight_key, lambda0); }

  // Behind the line: push harder; ahead of it: ease off.
  void after_step(linearize::scalars& s, const linearize::search_progress& p) const {
    const double done = (static_cast<double>(p.epoch) + static_cast<double>(p.step + 1) /
                                                            static_cast<double>(p.steps_per_epoch)) /
                        static_cast<double>(epochs);
    const double target = static_cast<double>(p.start_count) -
                          std::min(done, 1.0) * static_cast<double>(p.start_count - p.budget);
    auto& w = s[linearize::penalty_weight_key];
    w *= static_cast<double>(p.count) > target ? 1.25 : 0.8;
  }

  [[nodiscard]] bool after_epoch(linearize::scalars&, const linearize::search_progress& p) const {
    return p.count <= p.budget || p.epoch + 1 >= max_epochs();
  }
};
static_assert(linearize::stepwise_penalty_scheduler<linear_budget>);

}  // namespace

int main(int argc, char** argv) {
  cli::app app{"A user-written budget scheduler (a linear path to the budget) composed with the library's "
               "stock relaxation, selection and finetuning.", "custom_scheduler"};
  std::string budget_text = "5%";
  linear_budget scheduler{};  // its defaults are the command line's
  linearize::finetune::distill finetune{.epochs = 3};
  linearize::train::baseline_spec spec;
  app.add_option("--budget", budget_text, "ReLUs to keep (count, 3%, 0.03)")->check(cli::budget());
  app.add_option("--epochs", scheduler.epochs, "search epochs of the linear path")->check(cli::at_least<int64_t>(1));
  app.add_option("--finetune-epochs", finetune.epochs, "KD finetuning epochs")->check(cli::at_least<int64_t>(0));
  app.add_option("--data-dir", spec.data_dir, "Fashion-MNIST directory (Debian's when not given)")->default_str("");
  return cli::run(app, argc, argv, [&] {
    const auto budget = linearize::parse_budget(budget_text);
    linearize::runtime::configure();

    auto base = linearize::train::load_or_train_baseline(spec);
    const auto data = linearize::baseline_run_data(base.record, spec.data_dir);
    // The user's scheduler next to the library's relaxation, selection and finetuning:
    const auto method = linearize::pipeline(linearize::relax::l1_mix{}, scheduler, linearize::select::top_k{}, finetune);
    linearize::run_options options;
    options.work_dir = "runs/custom_scheduler";
    auto net = base.net->copy();
    const auto result = linearize::run(method, net, base.net, data, budget, options);
    linearize::report(std::cout, result, linearize::MaskSet(*net), linearize::pi::delphi());
    return 0;
  });
}
