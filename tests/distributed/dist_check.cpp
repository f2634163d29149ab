// Multi-process checks of data-parallel training, scoring and criticality (ctest starts each
// scenario with --nproc 2: two ranks on 127.0.0.1, one thread each). Every rank also computes
// the one-process reference itself, inside distributed::on_this_rank, so a scenario compares
// the two within one process and fails (exit status 1, a linearize::error) when they differ.
//   equal      training without BatchNorm and with synchronized BatchNorm equals one process on
//              the same global batch (uneven shards included); evaluation too; per-rank
//              BatchNorm: SNL searches reach the same count at the same accuracy within noise;
//              progress lines come from rank 0 only
//   search     coordinate descent keeps the same mask as one process; DeepReDuce's criticality
//              (stages measured on different ranks) gives every rank the same rows as one process
//   resume     with --kill-at K rank 1 kills itself (SIGKILL) after K steps: the other rank must
//              fail with a clear error; run again without it, the run resumes from rank 0's
//              checkpoint and ends with the weights of an uninterrupted run
//   hang       rank 1 stops answering: rank 0 must fail after --dist-timeout, not hang
//   diverge    rank 1 changes a weight: the epoch's replica check must name it
#include "../../examples/cli.hpp"
#include "../unit/train_fixtures.hpp"

#include <linearize/core/mask_set.hpp>
#include <linearize/distributed/group.hpp>
#include <linearize/distributed/replicas.hpp>
#include <linearize/finetune/distill.hpp>
#include <linearize/io/seed_summary.hpp>
#include <linearize/models/batch_norm.hpp>
#include <linearize/pipeline/pipeline.hpp>
#include <linearize/pipeline/run.hpp>
#include <linearize/relax/l1_mix.hpp>
#include <linearize/schedule/budget_tracking.hpp>
#include <linearize/schedule/fixed_step.hpp>
#include <linearize/select/coordinate_block.hpp>
#include <linearize/select/criticality.hpp>
#include <linearize/select/top_k.hpp>
#include <linearize/train/evaluate.hpp>
#include <linearize/train/trainer.hpp>

#include <fmt/format.h>
#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace lz = linearize;
namespace fs = std::filesystem;
using lz::testing::stripes;

namespace {

struct probe_options {
  int64_t width = 4;
  bool batchnorm = false;
  int64_t classes = 3;
};

/// Two stages of conv (+ BatchNorm) + slot on 1x6x6 images, and a linear head.
class ProbeNetImpl : public lz::NetworkFromOptions<ProbeNetImpl> {
 public:
  explicit ProbeNetImpl(probe_options o = {}) : options(o) {
    const int64_t w = o.width;
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, w, 3).padding(1)));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(w, w, 3).padding(1)));
    if (o.batchnorm) {
      bn1 = register_module("bn1", lz::models::BatchNorm2d(w));
      bn2 = register_module("bn2", lz::models::BatchNorm2d(w));
    }
    relu1 = register_module("relu1", lz::ReluSlot(lz::slot_options{.shape = {w, 6, 6}, .stage = "s1"}));
    relu2 = register_module("relu2", lz::ReluSlot(lz::slot_options{.shape = {w, 6, 6}, .stage = "s2"}));
    head = register_module("head", torch::nn::Linear(w * 36, o.classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = conv1(x);
    if (bn1) x = bn1(x);
    x = relu1(x);
    x = conv2(x);
    if (bn2) x = bn2(x);
    return head(relu2(x).flatten(1));
  }
  [[nodiscard]] std::string describe() const override {
    return fmt::format("probe(width={}, batchnorm={})", options.width, options.batchnorm);
  }
  probe_options options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  lz::models::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  lz::ReluSlot relu1{nullptr}, relu2{nullptr};
  torch::nn::Linear head{nullptr};
};

std::shared_ptr<ProbeNetImpl> probe(uint64_t seed, bool batchnorm, int64_t classes = 3) {
  torch::manual_seed(seed);
  return std::make_shared<ProbeNetImpl>(probe_options{.batchnorm = batchnorm, .classes = classes});
}

/// `n` noisy 1x6x6 images of two classes that no linear function separates: a bright band in
/// the top rows, one in the bottom rows, both or neither; the class says whether exactly one.
lz::data::image_dataset xor_bands(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto top = torch::randint(0, 2, {n}, gen, torch::kLong);
  const auto bottom = torch::randint(0, 2, {n}, gen, torch::kLong);
  auto images = torch::randint(0, 140, {n, 1, 6, 6}, gen, torch::kLong);
  images.slice(2, 0, 2) += (top * 110).view({n, 1, 1, 1});
  images.slice(2, 4, 6) += (bottom * 110).view({n, 1, 1, 1});
  lz::data::image_dataset d;
  d.name = "xor_bands";
  d.images = images.clamp(0, 255).to(torch::kByte).contiguous();
  d.labels = top.logical_xor(bottom).to(torch::kLong);
  d.classes = 2;
  d.mean = {0.4};
  d.stdev = {0.3};
  return d;
}

template <class... Parts>
void check(bool ok, Parts&&... parts) {
  if (!ok) lz::fail("dist_check: ", std::forward<Parts>(parts)...);
}

int rank() { return lz::distributed::world().rank(); }

void say(const std::string& line) {
  if (rank() == 0) fmt::print("{}\n", line);
}

/// The largest difference between same-named parameters and buffers, relative to the largest
/// magnitude in each tensor.
double largest_difference(const torch::nn::Module& a, const torch::nn::Module& b) {
  double worst = 0;
  using tensors = torch::OrderedDict<std::string, torch::Tensor>;
  const auto compare = [&](const tensors& x, const tensors& y) {
    for (const auto& item : x) {
      const auto* other = y.find(item.key());
      check(other != nullptr, "tensor '", item.key(), "' missing");
      const auto p = item.value().to(torch::kDouble), q = other->to(torch::kDouble);
      const double scale = std::max(1e-3, p.abs().max().item<double>());
      worst = std::max(worst, (p - q).abs().max().item<double>() / scale);
    }
  };
  compare(a.named_parameters(true), b.named_parameters(true));
  const auto ba = a.named_buffers(true), bb = b.named_buffers(true);
  compare(ba, bb);
  return worst;
}

lz::train::options training(const lz::data::image_dataset& held_out) {
  lz::train::options o;
  o.epochs = 3;
  o.batch_size = 32;  // 203 samples: 6 batches of 32 and one of 11 (shards of 6 and 5)
  o.optimizer = lz::train::sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  o.schedule = lz::train::cosine{};
  o.held_out = held_out;
  o.seed = 7;
  o.progress.mode = lz::train::progress_mode::silent;
  return o;
}

/// One process (this rank alone) and all ranks train copies of the same network; their results
/// must agree within `tolerance` (relative), and their held-out accuracies exactly.
void compare_training(const std::string& what, bool batchnorm, bool sync, double tolerance) {
  const auto train = xor_bands(203, 1), held_out = xor_bands(61, 2);
  auto opts = training(held_out);
  opts.epochs = 6;
  opts.sync_batchnorm = sync;
  const lz::Network one = probe(3, batchnorm, 2);
  const lz::Network many = one->copy();
  lz::train::history h1;
  {
    const lz::distributed::on_this_rank alone;
    h1 = lz::train::fit(*one, train, opts);
  }
  const auto h2 = lz::train::fit(*many, train, opts);
  const double diff = largest_difference(*one, *many);
  double loss_diff = 0;
  for (size_t e = 0; e < h1.rows.size(); ++e)
    loss_diff = std::max(loss_diff, std::abs(h1.rows[e].train_loss - h2.rows[e].train_loss) / h1.rows[e].train_loss);
  say(fmt::format("{}: largest relative difference of a weight {:.2e}, of an epoch's loss {:.2e}; "
                  "held-out top-1 {:.4f} (one process) and {:.4f} ({} ranks)",
                  what, diff, loss_diff, h1.rows.back().eval->top1, h2.rows.back().eval->top1,
                  lz::distributed::world().size()));
  check(h1.rows.size() == h2.rows.size(), what, ": ", h1.rows.size(), " and ", h2.rows.size(), " epochs");
  check(diff <= tolerance, what, ": weights differ by ", diff, " (relative), above ", tolerance);
  check(loss_diff <= tolerance, what, ": losses differ by ", loss_diff, " (relative), above ", tolerance);
  for (size_t e = 0; e < h1.rows.size(); ++e) {
    check(h1.rows[e].train_top1 == h2.rows[e].train_top1, what, ": epoch ", e, " training accuracy ",
          h1.rows[e].train_top1, " against ", h2.rows[e].train_top1);
    check(h1.rows[e].eval->top1 == h2.rows[e].eval->top1, what, ": epoch ", e, " held-out accuracy ",
          h1.rows[e].eval->top1, " against ", h2.rows[e].eval->top1);
  }
  // Evaluation shared out among the ranks gives the whole set's metrics on every rank.
  lz::train::metrics m1;
  {
    const lz::distributed::on_this_rank alone;
    m1 = lz::train::evaluate(*many, train, 48);
  }
  const auto m2 = lz::train::evaluate(*many, train, 48);
  check(m1.samples == m2.samples && m1.top1 == m2.top1 && m1.top5 == m2.top5 &&
            std::abs(m1.loss - m2.loss) <= 1e-6 * std::abs(m1.loss),
        what, ": evaluation of ", m2.samples, " samples gave top-1 ", m2.top1, " loss ", m2.loss,
        " where one process gets ", m1.samples, " samples, top-1 ", m1.top1, " loss ", m1.loss);
}

/// A ProbeNet trained for a few epochs by this process alone (the same on every rank).
std::shared_ptr<ProbeNetImpl> trained_probe(uint64_t seed, bool batchnorm = false) {
  const lz::distributed::on_this_rank alone;
  auto net = probe(seed, batchnorm, 2);
  auto o = training(xor_bands(160, 2));
  o.epochs = 8;
  (void)lz::train::fit(*net, xor_bands(512, 1), o);
  return net;
}

int scenario_equal() {
  compare_training("no BatchNorm", false, false, 1e-4);
  compare_training("synchronized BatchNorm", true, true, 1e-4);

  // Per-rank BatchNorm normalizes each shard by itself: not the same arithmetic, so SNL searches
  // are compared by what they reach, paired by seed. On this tiny task one run's accuracy is noise
  // (at 100 of 288 ReLUs single runs ranged 55-100% on either side), so the budget leaves room
  // (150) and the check is on the mean paired difference against its standard error.
  const lz::run_data data{.train = xor_bands(512, 1), .held_out = xor_bands(96, 2), .test = xor_bands(200, 3)};
  const auto snl = lz::pipeline(lz::relax::l1_mix{}, lz::schedule::budget_tracking{.epochs = 8, .check_every = 2},
                                lz::select::top_k{}, lz::finetune::distill{.epochs = 1});
  std::vector<double> differences;
  for (const uint64_t seed : {11, 12, 13}) {
    const lz::Network one = trained_probe(seed, true);
    const lz::Network many = one->copy();
    lz::run_result r1;
    {
      const lz::distributed::on_this_rank alone;
      r1 = lz::run(snl, one, one->copy(), data, lz::budget(150), lz::testing::quick_options());
    }
    const auto r2 = lz::run(snl, many, many->copy(), data, lz::budget(150), lz::testing::quick_options());
    say(fmt::format("per-rank BatchNorm, seed {}, SNL to 150 of 288 ReLUs: {} ReLUs at test top-1 {:.4f} "
                    "(one process), {} at {:.4f} (two ranks)",
                    seed, r1.relu_count, r1.test_accuracy_after_finetune, r2.relu_count,
                    r2.test_accuracy_after_finetune));
    check(r1.relu_count == 150 && r2.relu_count == 150, "SNL counts ", r1.relu_count, " and ", r2.relu_count);
    lz::distributed::check_replicas(lz::distributed::world(), *many, "the end of the SNL run");
    differences.push_back(r2.test_accuracy_after_finetune - r1.test_accuracy_after_finetune);
  }
  const auto d = lz::io::summarize(differences);
  say(fmt::format("per-rank BatchNorm: two ranks minus one process {:+.4f} +- {:.4f} (s.e., 3 seeds)", d.mean, d.se));
  check(std::fabs(d.mean) <= std::max(0.05, 3 * d.se), "SNL with per-rank BatchNorm: two ranks minus one process ",
        d.mean, " +- ", d.se, " (3 seeds), beyond 5 points and 3 standard errors");

  // Progress: only rank 0 prints.
  std::ostringstream out;
  auto opts = training(stripes(61, 2));
  opts.epochs = 1;
  opts.progress = {.mode = lz::train::progress_mode::lines, .out = &out};
  (void)lz::train::fit(*probe(5, false), stripes(203, 1), opts);
  auto printed = torch::tensor(out.str().empty() ? 0L : 1L);
  const auto all = lz::distributed::world().gather(printed);
  check(all[0].item<int64_t>() == 1 && all.slice(0, 1).sum().item<int64_t>() == 0,
        "progress lines printed by ranks ", all, "; expected rank 0 only");
  say("progress: rank 0 printed, the others did not");
  return 0;
}

int scenario_search(const fs::path& work) {
  const lz::run_data data{.train = xor_bands(512, 1), .held_out = xor_bands(160, 2), .test = xor_bands(200, 3)};
  auto opts = lz::testing::quick_options();
  const auto bcd = lz::pipeline(
      lz::select::coordinate_block{.tries = 4, .adt = 0.5, .scoring_batch = 32,
                                   .rejection = {.z = 2.0, .min_samples = 32},
                                   .gradient_samples = 64, .finetune_epochs = 1},
      lz::schedule::fixed_step{.drc = 20}, lz::finetune::distill{.epochs = 1});
  const auto base = trained_probe(41);
  const lz::Network one = base->copy();
  const lz::Network many = base->copy();
  lz::run_result r1;
  {
    const lz::distributed::on_this_rank alone;
    r1 = lz::run(bcd, one, base, data, lz::budget(200), opts);
  }
  const auto r2 = lz::run(bcd, many, base, data, lz::budget(200), opts);
  const auto& b1 = lz::select::coordinate_report::of(r1.stages.at(0));
  const auto& b2 = lz::select::coordinate_report::of(r2.stages.at(0));
  say(fmt::format("coordinate descent 288 -> 200 ReLUs: one process {} tries ({} rejected early, {} fallbacks), "
                  "test top-1 {:.4f}; two ranks {} tries ({} rejected early, {} fallbacks), test top-1 {:.4f}; "
                  "masks {}",
                  b1.tries, b1.early_rejections, b1.fallbacks, r1.test_accuracy_after_finetune, b2.tries,
                  b2.early_rejections, b2.fallbacks, r2.test_accuracy_after_finetune,
                  torch::equal(r1.mask, r2.mask) ? "equal" : "DIFFERENT"));
  check(torch::equal(r1.mask, r2.mask), "coordinate descent kept different masks on one process and two ranks");
  check(b1.tries == b2.tries && b1.early_rejections == b2.early_rejections && b1.fallbacks == b2.fallbacks,
        "coordinate descent took different decisions");
  check(b1.early_rejections > 0, "no candidate was rejected early: the test does not exercise the shared prefix");

  // Criticality: stage s1 measured by rank 0, s2 by rank 1; every rank gets both rows.
  const auto how = lz::select::criticality_options{.mode = lz::select::criticality_mode::finetune, .epochs = 1};
  auto o1 = opts, o2 = opts;
  o1.work_dir = work / ("reference_rank" + std::to_string(rank()));
  o2.work_dir = work / "ranks";
  lz::select::criticality_measurement c1;
  {
    const lz::distributed::on_this_rank alone;
    c1 = lz::select::measure_criticality(base, base, data, o1, how, lz::finetune::distill{.epochs = 1});
  }
  const auto c2 = lz::select::measure_criticality(base, base, data, o2, how, lz::finetune::distill{.epochs = 1});
  check(c1.rows.size() == 2 && c2.rows.size() == 2, "criticality rows: ", c1.rows.size(), " and ", c2.rows.size());
  for (size_t i = 0; i < c1.rows.size(); ++i)
    check(c1.rows[i].accuracy == c2.rows[i].accuracy && c1.rows[i].rank == c2.rows[i].rank,
          "criticality of stage ", c1.rows[i].name, ": ", c1.rows[i].accuracy, " (rank ", c1.rows[i].rank,
          ") on one process, ", c2.rows[i].accuracy, " (rank ", c2.rows[i].rank, ") on two ranks");
  check(c1.images_forwarded == c2.images_forwarded, "criticality forwarded ", c1.images_forwarded, " and ",
        c2.images_forwarded, " images");
  check(c1.ranking == c2.ranking, "criticality rankings differ");
  say(fmt::format("criticality: held-out top-1 with only s1 kept {:.4f}, only s2 {:.4f}, on one process and "
                  "on two ranks alike; {} images forwarded",
                  c2.rows[0].accuracy, c2.rows[1].accuracy, c2.images_forwarded));
  return 0;
}

lz::train::options resumable(const fs::path& checkpoint) {
  auto o = training(stripes(61, 2));
  o.checkpoint = checkpoint;
  o.checkpoint_every = 2;
  return o;
}

int scenario_resume(const fs::path& work, int kill_at) {
  const auto train = stripes(203, 1);
  const auto file = work / "run.ckpt";
  auto net = probe(9, true);
  if (kill_at > 0) {  // rank 1 dies as a kill -9 would leave it
    (void)lz::train::fit(*net, train, resumable(file), lz::train::hooks{.after_step = [&](lz::train::step_context& c) {
                           if (rank() == 1 && c.global_step + 1 == kill_at) std::raise(SIGKILL);
                         }});
    lz::fail("dist_check: rank ", rank(), " finished, though rank 1 was killed at step ", kill_at);
  }
  check(fs::exists(file), "no checkpoint '", file.string(), "' to resume from (run with --kill-at first)");
  const auto resumed = lz::train::fit(*net, train, resumable(file));
  const auto reference = probe(9, true);
  fs::remove(work / "reference.ckpt");
  const auto uninterrupted = lz::train::fit(*reference, train, resumable(work / "reference.ckpt"));
  const bool same = lz::testing::same_state(*net, *reference);
  say(fmt::format("resumed from rank 0's checkpoint: {} epochs, weights and buffers {} those of an "
                  "uninterrupted run", resumed.rows.size(), same ? "equal to" : "DIFFERENT from"));
  check(same, "the resumed run ended with other weights than the uninterrupted one");
  return 0;
}

int scenario_hang() {
  (void)lz::train::fit(*probe(9, false), stripes(203, 1), training(stripes(61, 2)),
                       lz::train::hooks{.after_step = [&](lz::train::step_context& c) {
                         if (rank() == 1 && c.global_step == 2) std::this_thread::sleep_for(std::chrono::minutes(5));
                       }});
  lz::fail("dist_check: rank ", rank(), " finished, though rank 1 stopped answering");
}

int scenario_diverge() {
  (void)lz::train::fit(*probe(9, false), stripes(203, 1), training(stripes(61, 2)),
                       lz::train::hooks{.after_step = [&](lz::train::step_context& c) {
                         if (rank() == 1 && c.global_step == 0) {
                           torch::NoGradGuard no_grad;
                           c.net.parameters().front().add_(1e-3);
                         }
                       }});
  lz::fail("dist_check: the replicas diverged but no check noticed");
}

}  // namespace

int main(int argc, char** argv) {
  cli::app app{"Multi-process checks of data-parallel training, scoring and criticality "
               "(run with --nproc 2)", "dist_check"};
  std::string scenario;
  std::string work = "dist_check_work";
  int kill_at = 0;
  cli::parallel_options parallel;
  app.add_option("scenario", scenario, "what to check")
      ->required()
      ->check(cli::one_of({"equal", "search", "resume", "hang", "diverge"}));
  app.add_option("--work", work, "directory for checkpoints");
  app.add_option("--kill-at", kill_at, "resume: rank 1 kills itself after this many steps (0: resume)")
      ->check(cli::at_least(0));
  cli::add_parallel(app, parallel);
  return cli::run(app, parallel, argc, argv, [&] {
    lz::runtime::configure();
    const auto g = lz::distributed::world();
    check(g.size() >= 2, "run with --nproc 2 (or more): this process is alone");
    say(fmt::format("{} ranks ({}), {} thread(s) each", g.size(), g.backend(), torch::get_num_threads()));
    fs::create_directories(work);
    if (scenario == "equal") return scenario_equal();
    if (scenario == "search") return scenario_search(work);
    if (scenario == "resume") return scenario_resume(work, kill_at);
    if (scenario == "hang") return scenario_hang();
    return scenario_diverge();
  });
}
