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

constexpr const char* usage = R"(usage: custom_scheduler [options]
  --budget B            ReLUs to keep (count, 3%, 0.03)                                  [5%]
  --epochs N            search epochs of the linear path                                  [6]
  --finetune-epochs N   KD finetuning epochs                                              [3]
  --data-dir DIR        Fashion-MNIST directory (Debian's by default)
  --help
)";

}  // namespace

int main(int argc, char** argv) {
  return cli::main(argc, argv, usage, [](cli::arguments& args) {
    const auto budget = linearize::parse_budget(args.text("budget", "5%"));
    const auto epochs = args.number<int64_t>("epochs", 6, cli::positive, "a positive count");
    const auto finetune_epochs = args.number<int64_t>("finetune-epochs", 3, cli::non_negative, "a count >= 0");
    linearize::train::baseline_spec spec;
    spec.data_dir = args.text("data-dir", "");
    args.finish();
    linearize::runtime::configure();

    auto base = linearize::train::load_or_train_baseline(spec);
    const auto data = linearize::baseline_run_data(base.record, spec.data_dir);
    // The user's scheduler next to the library's relaxation, selection and finetuning:
    const auto method = linearize::pipeline(linearize::relax::l1_mix{}, linear_budget{.epochs = epochs},
                                            linearize::select::top_k{},
                                            linearize::finetune::distill{.epochs = finetune_epochs});
    linearize::run_options options;
    options.work_dir = "runs/custom_scheduler";
    auto net = base.net->copy();
    const auto result = linearize::run(method, net, base.net, data, budget, options);
    linearize::report(std::cout, result, linearize::MaskSet(*net), linearize::pi::delphi());
    return 0;
  });
}
