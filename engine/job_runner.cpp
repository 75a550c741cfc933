#include "engine/job_runner.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <mutex>

#include "adapters/adapter.h"
#include "adapters/adapter_bundle.h"
#include "adapters/adapter_set.h"
#include "core/error.h"
#include "core/process_identity.h"
#include "engine/training_plan.h"
#include "engine/user_rows.h"
#include "privacy/secret_key.h"
#include "storage/adapter_registry.h"
#include "storage/audit_log.h"
#include "storage/backup.h"
#include "storage/database.h"
#include "storage/job_store.h"
#include "storage/orphan_files.h"
#include "trainer/packing.h"
#include "trainer/stop_signal.h"
#include "trainer/trainer.h"

namespace hearth::engine {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Everything one slice keeps while it runs, and the steps it takes, in order.
class Slice {
 public:
  Slice(SliceContext& ctx, int64_t job_id, const SliceBudget& budget)
      : ctx_(ctx),
        budget_(budget),
        jobs_(ctx.vault.db(), ctx.vault.keyring(), ctx.vault.home()),
        record_(jobs_.get(job_id)),
        spec_(JobSpec::from_json(record_.config, "job " + std::to_string(job_id))) {
    result_.job_id = job_id;
    progress_ = JobProgress::from_json(record_.progress);
  }

  SliceResult run() {
    require(record_.status != "done" && record_.status != "cancelled" && record_.status != "failed",
            ErrorCode::kInvalidArgument,
            "job " + std::to_string(result_.job_id) + " is " + record_.status + "; submit a new job to train again");
    if (budget_.device) {
      const std::string refusal = spec_.policy.refusal(budget_.device());
      if (!refusal.empty()) return waiting(refusal);
    }
    require(jobs_.claim(result_.job_id, ProcessIdentity::current()), ErrorCode::kInvalidArgument,
            "job " + std::to_string(result_.job_id) + " is already being run by another process");
    try {
      train();
    } catch (const std::exception& e) {
      progress_.last_reason = e.what();
      jobs_.set_progress(result_.job_id, progress_.to_json());
      jobs_.release(result_.job_id, "failed");
      throw;
    }
    result_.seconds = seconds_between(start_, Clock::now());
    return result_;
  }

 private:
  SliceResult waiting(const std::string& refusal) {
    result_.outcome = "waiting";
    result_.reason = refusal;
    result_.steps_done = progress_.step;
    return result_;
  }

  void train() {
    Decoder& decoder = *ctx_.base.decoder;
    const UserRows data = load_user_rows(ctx_.vault, spec_.user, spec_.training, *ctx_.base.tokenizer);
    const AdapterConfig adapter = adapter_config_of(spec_.training);
    const MemoryPlan plan = plan_memory(decoder.config(), decoder.weight_bytes(), spec_.training,
                                        adapter_parameter_count(decoder.config(), adapter));
    trainer::TrainConfig cfg = train_config_of(spec_.training, plan);
    cfg.progress = budget_.progress_bar;
    const std::optional<storage::CheckpointRecord> last = jobs_.latest_checkpoint(result_.job_id);
    cfg.resume = last.has_value();
    if (budget_.steps > 0) cfg.stop_after_steps = (last ? last->step : 0) + budget_.steps;
    cfg.save_checkpoint = [this](int64_t step, const std::string& bytes) { save_checkpoint(step, bytes); };
    cfg.load_checkpoint = [this, last] { return jobs_.open_checkpoint(*last); };
    cfg.should_stop = [this] { return should_stop(); };
    cfg.on_step = [this](const Json& line) { on_step(line); };
    spdlog::info("job {}: {} over {} training rows ({})", result_.job_id, last ? "resuming at step " + std::to_string(last->step) : "starting",
                 data.train.rows(), plan.describe());
    progress_.steps = spec_.training.steps;
    progress_.slices += 1;
    const int64_t steps_before = last ? last->step : 0;

    trainer::Trainable trainable = trainer::Trainable::adapter(decoder, adapter);
    trainer::TrainResult r;
    try {
      r = trainer::train(decoder, trainable, data.train, data.eval, cfg, {ctx_.base_spec.path, ctx_.base.fingerprint});
    } catch (...) {
      detach_adapters(decoder);
      throw;
    }
    detach_adapters(decoder);
    progress_.peak_rss_mb = r.peak_rss_mb;
    progress_.eval_loss_before = r.eval_loss_before != 0 ? r.eval_loss_before : progress_.eval_loss_before;
    result_.steps_done = r.steps_done;
    result_.steps_this_slice = r.steps_done - steps_before;
    if (r.completed) return finish(trainable, r, plan);
    pause(r);
  }

  bool should_stop() {
    const bool stop = (budget_.cancelled && budget_.cancelled()) || ctx_.engine_stop.load() ||
                      (budget_.seconds > 0 && seconds_between(start_, Clock::now()) >= budget_.seconds) ||
                      policy_refuses_.load();
    if (stop && !stop_seen_) stop_seen_ = Clock::now();
    return stop;
  }

  std::string stop_reason() const {
    if (budget_.cancelled && budget_.cancelled()) return "cancelled by the host";
    if (ctx_.engine_stop.load()) return "stop requested";
    if (trainer::stop_requested()) return "stopped by a signal (SIGINT or SIGTERM)";
    if (policy_refuses_.load()) return "device policy: " + policy_reason_;
    if (budget_.seconds > 0 && seconds_between(start_, Clock::now()) >= budget_.seconds) return "slice time budget used";
    return "step budget used";
  }

  void on_step(const Json& line) {
    const int64_t step = line.value("step", int64_t(0));
    if (line.contains("eval_loss")) {
      jobs_.add_metric(result_.job_id, step, "eval_loss", line["eval_loss"].get<double>());
      return;
    }
    progress_.step = step;
    progress_.loss = line.value("loss", 0.0);
    progress_.tokens_per_s = line.value("tokens_per_s", 0.0);
    progress_.eta_seconds = line.value("eta_seconds", 0.0);
    storage::Transaction tx(ctx_.vault.db());
    jobs_.add_metric(result_.job_id, step, "loss", progress_.loss);
    jobs_.set_progress(result_.job_id, progress_.to_json());
    tx.commit();
    if (budget_.device) {
      const std::string refusal = spec_.policy.refusal(budget_.device());
      if (!refusal.empty()) {
        policy_reason_ = refusal;
        policy_refuses_ = true;
      }
    }
  }

  // The checkpoint and the progress that points at it commit together; older checkpoints go after.
  void save_checkpoint(int64_t step, const std::string& bytes) {
    int64_t id = 0;
    {
      storage::SealedWriteLock writing(ctx_.vault.home());
      storage::Transaction tx(ctx_.vault.db());
      id = jobs_.add_checkpoint(result_.job_id, step, bytes).id;
      progress_.step = step;
      jobs_.set_progress(result_.job_id, progress_.to_json());
      tx.commit();
    }
    if (stop_seen_) result_.stop_latency_seconds = seconds_between(*stop_seen_, Clock::now());
    jobs_.prune_checkpoints(result_.job_id, id);
  }

  void pause(const trainer::TrainResult& r) {
    result_.outcome = "paused";
    result_.reason = stop_reason();
    progress_.last_reason = result_.reason;
    const bool resumable = r.checkpoint_saved || jobs_.latest_checkpoint(result_.job_id).has_value();
    storage::Transaction tx(ctx_.vault.db());
    jobs_.set_progress(result_.job_id, progress_.to_json());
    jobs_.release(result_.job_id, resumable ? "paused" : "queued");
    tx.commit();
  }

  // Seals the adapter as the next version, marks the job done and records what it made, in one
  // transaction; then drops the job's checkpoints and versions beyond the retention.
  void finish(const trainer::Trainable& trainable, const trainer::TrainResult& r, const MemoryPlan& plan) {
    Json summary = r.to_json();
    summary["method"] = trainable.method();
    summary["trainable_parameters"] = trainable.parameter_count();
    summary["job_id"] = result_.job_id;
    summary["memory_plan"] = plan.describe();
    std::string bundle = adapter_to_bundle(*trainable.adapter_ptr(), ctx_.base_spec.path, ctx_.base.fingerprint, summary);
    storage::AdapterRecord meta;
    meta.user_id = record_.user_id;
    meta.name = spec_.training.adapter_name;
    meta.method = trainable.method();
    meta.rank = spec_.training.rank;
    meta.targets = trainable.adapter_ptr()->config().targets;
    meta.base_fingerprint = ctx_.base.fingerprint;
    meta.metrics = summary;
    progress_.step = r.steps_done;
    progress_.eval_loss_after = r.eval_loss_after;
    progress_.eta_seconds = 0;
    progress_.last_reason = "finished";
    storage::AdapterRegistry registry(ctx_.vault.db(), ctx_.vault.keyring(), ctx_.vault.home());
    {
      storage::SealedWriteLock writing(ctx_.vault.home());
      storage::Transaction tx(ctx_.vault.db());
      result_.adapter = registry.add(meta, bundle);
      jobs_.set_adapter(result_.job_id, result_.adapter->id);
      jobs_.set_progress(result_.job_id, progress_.to_json());
      jobs_.release(result_.job_id, "done");
      storage::AuditLog(ctx_.vault.db())
          .append(ctx_.actor, "train", record_.user_id, r.trained_tokens,
                  "job=" + std::to_string(result_.job_id) + " adapter=" + std::to_string(result_.adapter->id) +
                      " steps=" + std::to_string(r.steps_done));
      tx.commit();
    }
    privacy::wipe(bundle);
    jobs_.prune_checkpoints(result_.job_id, 0);
    registry.keep_newest(record_.user_id, meta.name, spec_.training.keep_versions);
    storage::back_up_after_job(ctx_.vault.db());  // the last good state, for `hearth doctor --restore`
    result_.outcome = "finished";
    result_.reason = "finished";
  }

  SliceContext& ctx_;
  const SliceBudget& budget_;
  storage::JobStore jobs_;
  storage::JobRecord record_;
  JobSpec spec_;
  JobProgress progress_;
  SliceResult result_;
  const Clock::time_point start_ = Clock::now();
  std::optional<Clock::time_point> stop_seen_;
  std::atomic<bool> policy_refuses_{false};
  std::string policy_reason_;
};

}  // namespace

SliceResult run_job_slice(SliceContext& ctx, int64_t job_id, const SliceBudget& budget) {
  return Slice(ctx, job_id, budget).run();
}

}  // namespace hearth::engine
