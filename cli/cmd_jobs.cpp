// `hearth jobs submit|list|status|cancel|run` and `hearth daemon`: background personalization
// jobs. submit queues a job for a user over a base model; run executes queued jobs in slices
// (a time and step budget each); daemon waits for work and for the device conditions a host
// writes to a JSON state file. SIGTERM / SIGINT stop a slice with a sealed checkpoint.
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli/command.h"
#include "cli/engine_options.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "core/atomic_file.h"
#include "engine/engine.h"
#include "trainer/loss_curve_svg.h"
#include "trainer/stop_signal.h"

namespace hearth::cli {
namespace {

struct JobsArgs {
  ModelOptions model;
  engine::JobSpec spec;
  std::string key_file;
  int64_t job_id = 0;
  double slice_seconds = 0;
  int64_t slice_steps = 0;
  int64_t max_slices = 0;
  std::string device_state;  // JSON file the host keeps current
  std::string plot;          // jobs status: write the loss curves here (SVG)
  double poll_seconds = 2;
  bool exit_when_idle = false;
  bool sandbox = true;

  JobsArgs() {
    spec.policy = engine::JobPolicy{};
  }
};

engine::SliceBudget budget_of(const JobsArgs& a) {
  engine::SliceBudget b;
  b.seconds = a.slice_seconds;
  b.steps = a.slice_steps;
  if (!a.device_state.empty()) {
    const std::string path = a.device_state;
    b.device = [path] { return engine::read_device_state(path); };
  }
  return b;
}

void print_slice(const engine::SliceResult& r) {
  std::printf("job %lld: %s after %lld step(s) this slice (%lld in all, %.1f s)%s%s\n", static_cast<long long>(r.job_id),
              r.outcome.c_str(), static_cast<long long>(r.steps_this_slice), static_cast<long long>(r.steps_done), r.seconds,
              r.reason.empty() || r.reason == r.outcome ? "" : ": ", r.reason == r.outcome ? "" : r.reason.c_str());
  if (r.adapter) {
    std::printf("job %lld registered adapter \"%s\" version %lld\n", static_cast<long long>(r.job_id), r.adapter->name.c_str(),
                static_cast<long long>(r.adapter->version));
  }
  std::fflush(stdout);
}

Json slice_json(const engine::SliceResult& r) {
  Json j{{"job_id", r.job_id},       {"outcome", r.outcome}, {"reason", r.reason}, {"steps_done", r.steps_done},
         {"steps_this_slice", r.steps_this_slice}, {"seconds", r.seconds}, {"stop_latency_seconds", r.stop_latency_seconds}};
  if (r.adapter) j["adapter_version"] = r.adapter->version;
  return j;
}

void run_submit(JobsArgs& a) {
  engine::Engine e(engine_options(a.key_file, /*with_key=*/false, false));
  a.spec.base = a.model.base_spec();
  const int64_t id = e.submit_job(a.spec);
  std::printf("queued job %lld for user \"%s\" (%s, rank %lld, %s, %lld steps)\n", static_cast<long long>(id),
              a.spec.user.c_str(), a.spec.training.method.c_str(), static_cast<long long>(a.spec.training.rank),
              a.spec.training.optimizer.c_str(), static_cast<long long>(a.spec.training.steps));
  print_json_result(Json{{"job_id", id}}.dump());
}

void run_list(const JobsArgs& a) {
  engine::Engine e(engine_options("", /*with_key=*/false, false));
  Json all = Json::array();
  for (const engine::JobInfo& j : e.jobs(a.spec.user)) {
    std::printf("job %-5lld %-10s user %-16s step %lld/%lld  loss %.4f\n", static_cast<long long>(j.id), j.status.c_str(),
                j.user.c_str(), static_cast<long long>(j.progress.step), static_cast<long long>(j.progress.steps),
                j.progress.loss);
    all.push_back(j.to_json());
  }
  print_json_result(Json{{"jobs", all}}.dump());
}

void run_status(const JobsArgs& a) {
  engine::Engine e(engine_options("", /*with_key=*/false, false));
  const engine::JobInfo j = e.job(a.job_id);
  Json out = j.to_json();
  Json curve = Json::array();
  trainer::CurvePoints train_points, eval_points;
  for (const storage::MetricPoint& p : e.job_metrics(a.job_id)) {
    if (p.name == "eval_loss") {
      curve.push_back(Json{{"step", p.step}, {"eval_loss", p.value}});
      eval_points.emplace_back(double(p.step), p.value);
    } else if (p.name == "loss") {
      train_points.emplace_back(double(p.step), p.value);
    }
  }
  out["eval_curve"] = curve;
  if (!a.plot.empty()) {
    write_file_atomic(a.plot, trainer::loss_curve_svg(train_points, eval_points,
                                                      "job " + std::to_string(j.id) + " of " + j.user));
    out["plot"] = a.plot;
  }
  const engine::JobProgress& p = j.progress;
  std::printf("job %lld (%s) of user \"%s\": %s, step %lld of %lld, loss %.4f, %.0f tokens/s, ETA %.0f s%s%s\n",
              static_cast<long long>(j.id), j.spec.training.adapter_name.c_str(), j.user.c_str(), j.status.c_str(),
              static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, p.tokens_per_s, p.eta_seconds,
              p.last_reason.empty() ? "" : "; last slice: ", p.last_reason.c_str());
  print_json_result(out.dump());
}

void run_cancel(const JobsArgs& a) {
  engine::Engine e(engine_options("", /*with_key=*/false, false));
  e.cancel_job(a.job_id);
  std::printf("cancelled job %lld\n", static_cast<long long>(a.job_id));
  print_json_result(Json{{"job_id", a.job_id}, {"status", "cancelled"}}.dump());
}

// Slices until no job is left (or --max-slices); a signal ends the current slice and the loop.
void run_jobs(const JobsArgs& a) {
  engine::Engine e(engine_options(a.key_file, /*with_key=*/true, a.sandbox));
  trainer::install_stop_signal_handlers();
  Json slices = Json::array();
  for (int64_t n = 0; a.max_slices == 0 || n < a.max_slices; ++n) {
    std::optional<engine::SliceResult> r =
        a.job_id != 0 ? std::optional<engine::SliceResult>(e.run_slice(a.job_id, budget_of(a))) : e.run_next(budget_of(a));
    if (!r) break;
    print_slice(*r);
    slices.push_back(slice_json(*r));
    if (trainer::stop_requested() || r->outcome == "waiting" || (a.job_id != 0 && r->outcome == "finished")) break;
  }
  if (slices.empty()) std::printf("no job can run now\n");
  print_json_result(Json{{"slices", slices}}.dump());
}

// Waits for work and for the device to allow it; runs slices; exits on SIGTERM / SIGINT.
void run_daemon(const JobsArgs& a) {
  require(!a.device_state.empty(), ErrorCode::kInvalidArgument,
          "hearth daemon needs --device-state FILE (the JSON the host keeps current: charging, battery_percent, "
          "temperature_c, screen_on, idle)");
  engine::Engine e(engine_options(a.key_file, /*with_key=*/true, a.sandbox));
  trainer::install_stop_signal_handlers();
  std::printf("daemon: waiting for jobs (device state from %s)\n", a.device_state.c_str());
  std::fflush(stdout);
  while (!trainer::stop_requested()) {
    std::optional<engine::SliceResult> r = e.run_next(budget_of(a));
    if (r) {
      print_slice(*r);
      continue;
    }
    if (a.exit_when_idle) {
      bool pending = false;
      for (const engine::JobInfo& j : e.jobs()) pending |= j.status == "queued" || j.status == "paused";
      if (!pending) break;
    }
    for (double waited = 0; waited < a.poll_seconds && !trainer::stop_requested(); waited += 0.1)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("daemon: stopped\n");
}

void add_training_options(CLI::App* cmd, engine::TrainingSpec& t) {
  cmd->add_option("--method", t.method, "adapter kind")->check(CLI::IsMember({"lora", "dora"}))->capture_default_str();
  cmd->add_option("--rank", t.rank, "adapter rank")->capture_default_str();
  cmd->add_option("--alpha", t.alpha, "adapter alpha")->capture_default_str();
  cmd->add_option("--targets", t.targets, "projections: q,k,v,o,gate,up,down or all")->capture_default_str();
  cmd->add_option("--optim", t.optimizer, "optimizer (apollo-mini keeps almost no state)")
      ->check(CLI::IsMember({"adamw", "apollo", "apollo-mini"}))
      ->capture_default_str();
  cmd->add_option("--steps", t.steps, "optimizer updates")->capture_default_str();
  cmd->add_option("--seq-len", t.seq_len, "positions per packed row")->capture_default_str();
  cmd->add_option("--batch", t.batch, "rows per step")->capture_default_str();
  cmd->add_option("--lr", t.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", t.warmup, "warm-up steps (-1: 10% of --steps)")->capture_default_str();
  cmd->add_option("--eval-fraction", t.eval_fraction, "share of the user's data held out")->capture_default_str();
  cmd->add_option("--eval-every", t.eval_every, "steps between held-out evaluations (0: before and after)")->capture_default_str();
  cmd->add_option("--seed", t.seed, "seed of data order, adapter init and APOLLO")->capture_default_str();
  cmd->add_option("--checkpoint-every", t.checkpoint_every, "also checkpoint every N steps inside a slice")->capture_default_str();
  cmd->add_option("--max-memory-mb", t.max_memory_mb, "memory ceiling; the job plans micro-batches and checkpointing (0: none)")
      ->capture_default_str();
  cmd->add_option("--name", t.adapter_name, "the adapter's name in the registry")->capture_default_str();
  cmd->add_option("--keep-versions", t.keep_versions, "registered versions kept (older ones are erased)")->capture_default_str();
  cmd->add_option("--dp-epsilon", t.dp.epsilon, "DP-SGD: target epsilon (turns DP-SGD on)");
  cmd->add_option("--dp-noise", t.dp.noise, "DP-SGD: noise multiplier (turns DP-SGD on)");
  cmd->add_option("--dp-clip", t.dp.clip, "DP-SGD: per-row clip norm")->capture_default_str();
}

void add_policy_options(CLI::App* cmd, engine::JobPolicy& p) {
  cmd->add_flag("!--on-battery-too,--charging-only", p.run_on_battery, "run only while charging");
  cmd->add_option("--min-battery", p.min_battery_percent, "on battery, run only at or above this percent")->capture_default_str();
  cmd->add_option("--max-temperature", p.max_temperature_c, "run only at or below this temperature (C)")->capture_default_str();
  cmd->add_flag("!--screen-on-ok,--run-with-screen-on", p.require_screen_off, "also run while the screen is on");
  cmd->add_flag("--require-idle", p.require_idle, "run only while the device is idle");
}

void add_run_options(CLI::App* cmd, JobsArgs& a) {
  cmd->add_option("--key-file", a.key_file, "unlock with this key file instead of a passphrase");
  cmd->add_option("--slice-seconds", a.slice_seconds, "wall-time budget of one slice (0: none)")->capture_default_str();
  cmd->add_option("--slice-steps", a.slice_steps, "step budget of one slice (0: none)")->capture_default_str();
  cmd->add_option("--device-state", a.device_state, "JSON file with the device's state (charging, battery_percent, ...)");
  cmd->add_flag("!--no-sandbox", a.sandbox, "allow sockets (by default jobs run with socket creation forbidden)");
}

const CommandRegistration jobs_command("jobs", [](CLI::App& app) {
  auto a = std::make_shared<JobsArgs>();
  CLI::App* jobs = app.add_subcommand("jobs", "background personalization jobs: submit, list, status, cancel, run");
  jobs->require_subcommand(1);

  CLI::App* submit = jobs->add_subcommand("submit", "queue a training job for a user");
  a->model.add_to(*submit, /*with_adapter=*/false);
  submit->add_option("--user", a->spec.user, "whose data")->required();
  add_training_options(submit, a->spec.training);
  add_policy_options(submit, a->spec.policy);
  submit->callback([a] { run_submit(*a); });

  CLI::App* list = jobs->add_subcommand("list", "list jobs (no key needed)");
  list->add_option("--user", a->spec.user, "only this user's jobs");
  list->callback([a] { run_list(*a); });

  CLI::App* status = jobs->add_subcommand("status", "a job's state, progress and held-out loss curve (no key needed)");
  status->add_option("job", a->job_id, "job id")->required();
  status->add_option("--plot", a->plot, "write the training and held-out loss curves to this SVG file");
  status->callback([a] { run_status(*a); });

  CLI::App* cancel = jobs->add_subcommand("cancel", "cancel a queued or paused job");
  cancel->add_option("job", a->job_id, "job id")->required();
  cancel->callback([a] { run_cancel(*a); });

  CLI::App* run = jobs->add_subcommand("run", "run queued jobs in slices until none is left");
  run->add_option("--job", a->job_id, "only this job");
  run->add_option("--max-slices", a->max_slices, "stop after N slices (0: until no job is left)")->capture_default_str();
  add_run_options(run, *a);
  run->callback([a] { run_jobs(*a); });

  CLI::App* daemon = app.add_subcommand("daemon", "wait for jobs and device conditions and run them in slices");
  add_run_options(daemon, *a);
  daemon->add_option("--poll-seconds", a->poll_seconds, "how often to look for work and read the device state")->capture_default_str();
  daemon->add_flag("--exit-when-idle", a->exit_when_idle, "exit once no job is queued or paused");
  daemon->callback([a] { run_daemon(*a); });
});

}  // namespace
}  // namespace hearth::cli
