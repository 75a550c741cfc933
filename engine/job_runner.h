// One slice of a personalization job: claim it, decrypt the user's data in memory, resume from
// the last sealed checkpoint, train until the job ends or the slice must stop, then checkpoint
// (or register the finished adapter) durably and release the job. What the Engine calls; kept
// apart so the slice's steps read top to bottom in one place.
#pragma once
#include <atomic>
#include <string>

#include "engine/engine.h"
#include "inference/model_loader.h"
#include "storage/vault.h"

namespace hearth::engine {

struct SliceContext {
  storage::Vault& vault;
  LoadedModel& base;
  const BaseModelSpec& base_spec;
  std::string actor;                       // for the audit log
  const std::atomic<bool>& engine_stop;    // Engine::request_stop()
};

// Runs one slice of job `job_id` (which must be queued or paused, or running under a dead
// process). Exceptions leave the job "failed" with the reason in its progress.
SliceResult run_job_slice(SliceContext& ctx, int64_t job_id, const SliceBudget& budget);

}  // namespace hearth::engine
