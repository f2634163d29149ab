#pragma once
// The record of a run in its work directory (run.json): every setting that changes what the run
// computes — each stage's policies with their settings, the budgets, the run options, the data
// sizes. Checkpoints alone check seed, batching and optimizer kind, so a work directory reused
// with, say, another search length would resume the old run's checkpoints silently. run()
// writes the record when it starts in a directory and compares it when it finds one, refusing
// with the setting that differs and both values.
//
// A policy's settings are what its json_fields(policy, f) lists (beside each shipped policy,
// io/json.hpp's convention); a policy without one is recorded by name only, and says so in the
// record. Knobs that only interrupt or report (stop_after_*, progress, checkpoint_every) are
// not settings of the run.
#include <linearize/io/json.hpp>
#include <linearize/io/json_difference.hpp>
#include <linearize/pipeline/chain.hpp>
#include <linearize/policy/run_types.hpp>
#include <linearize/support/error.hpp>

#include <boost/hana/for_each.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>

namespace linearize {

namespace detail {

inline constexpr const char* run_settings_format = "linearize-run 1";

/// {"name": ..., and each member its json_fields lists}.
template <class Policy>
[[nodiscard]] io::json policy_settings(const Policy& p) {
  io::json out = io::json::object();
  out["name"] = p.name();
  if constexpr (io::json_record<const Policy>)
    json_fields(p, [&](const char* key, const auto& value) { out[key] = io::to_json_value(value); });
  else
    out["settings"] = "not recorded: the policy has no json_fields(policy, f)";
  return out;
}

template <class Stage>
[[nodiscard]] io::json stage_settings(const Stage& stage) {
  io::json out = io::json::object();
  if constexpr (Stage::has_relaxation) out["relaxation"] = policy_settings(stage.relaxation());
  out["scheduler"] = policy_settings(stage.scheduler());
  out["selection"] = policy_settings(stage.selection());
  out["finetune"] = policy_settings(stage.finetune());
  return out;
}

/// The run options that change what a run computes (not progress or checkpoint cadence).
[[nodiscard]] inline io::json options_settings(const run_options& options, const run_data& data) {
  io::json o = io::json::object();
  o["seed"] = options.seed;
  o["batch_size"] = options.batch_size;
  const auto augment = options.augment ? options.augment : data.augment;
  o["crop_padding"] = augment ? io::json(augment->crop_padding) : io::json(nullptr);
  o["horizontal_flip"] = augment ? io::json(augment->horizontal_flip) : io::json(nullptr);
  std::visit(
      [&](const auto& c) {
        o["search_optimizer"] = train::optimizer_name(options.search_optimizer);
        o["search_optimizer_settings"] = io::to_json_value(c);
      },
      options.search_optimizer);
  o["search_kd_temperature"] = io::real_to_json(options.search_kd_temperature);
  o["search_kd_weight"] = io::real_to_json(options.search_kd_weight);
  o["eval_batch_size"] = options.eval_batch_size;
  o["sync_batchnorm"] = options.sync_batchnorm;
  return o;
}

[[nodiscard]] inline io::json data_sizes(const run_data& data) {
  return {{"train", data.train.size()}, {"held_out", data.held_out.size()}, {"test", data.test.size()}};
}

}  // namespace detail

/// The settings of running `m` to `budget_count` ReLUs (stage budgets resolved against
/// `total_relus`) with `options` on `data`.
template <method Method>
[[nodiscard]] io::json run_settings(const Method& m, int64_t total_relus, int64_t budget_count,
                                    const run_options& options, const run_data& data) {
  io::json out = io::json::object();
  out["format"] = detail::run_settings_format;
  out["method"] = m.name();
  out["total_relus"] = total_relus;
  out["budget"] = budget_count;
  io::json stage_budgets = io::json::array();
  for (const auto& b : options.stage_budgets) stage_budgets.push_back(b.resolve(total_relus));
  out["stage_budgets"] = stage_budgets;
  io::json stages = io::json::array();
  boost::hana::for_each(detail::as_stages(m), [&](const auto& stage) { stages.push_back(detail::stage_settings(stage)); });
  out["stages"] = stages;
  out["options"] = detail::options_settings(options, data);
  out["data"] = detail::data_sizes(data);
  return out;
}

/// The settings of finetuning a network that keeps `relu_count` ReLUs with `finetune`, as
/// run_finetune() does (recorded as <phase>.json beside run()'s run.json).
template <class Finetune>
[[nodiscard]] io::json finetune_settings(const Finetune& finetune, int64_t relu_count, const run_options& options,
                                         const run_data& data) {
  io::json out = io::json::object();
  out["format"] = detail::run_settings_format;
  out["finetune"] = detail::policy_settings(finetune);
  out["relu_count"] = relu_count;
  out["options"] = detail::options_settings(options, data);
  out["data"] = detail::data_sizes(data);
  return out;
}

/// Records `settings` in `work_dir`/`record` (run.json for run()), or, when the directory holds
/// that record already, checks that it is the same run: another one is a linearize::error naming
/// the setting. `write`: whether this process writes (rank 0 of a data-parallel run).
inline void claim_work_dir(const std::filesystem::path& work_dir, const io::json& settings, bool write = true,
                           const std::string& record = "run.json") {
  const auto file = work_dir / record;
  if (std::filesystem::exists(file)) {
    const auto there = io::read_json_file(file);
    if (const auto differ = io::json_differences(there, settings, {}, 1); !differ.empty())
      fail("work directory '", work_dir.string(), "' holds a run with other settings (", differ.front(),
           "); resuming it would continue that run, not this one. Use another work directory, or "
           "delete this one to start afresh");
    return;
  }
  if (write) io::write_json_file(file, settings);
}

}  // namespace linearize
