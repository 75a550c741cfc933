// The Hearth engine: what apps and the command line call. One Engine is opened on a Hearth home
// with its key; it owns the unlocked vault, the base model (loaded once, memory-mapped), the
// queue of personalization jobs and the loaded adapters. Every pipeline of the product is one
// call here (ingest, train in slices, register, load an adapter, generate); `cli/` and `capi/`
// are thin layers over it.
//
// Threads: an Engine may be called from several threads; calls are serialized internally,
// except job() / jobs() (they read through their own connection, so progress stays readable
// while a slice runs) and request_stop() (how another thread preempts a running slice). Errors are thrown as hearth::Error (core/error.h)
// with a message that says what to do.
#pragma once
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/device_policy.h"
#include "engine/job_spec.h"
#include "engine/local_update.h"
#include "engine/test_time_training.h"
#include "inference/generator.h"
#include "inference/model_loader.h"
#include "privacy/master_key.h"
#include "storage/adapter_registry.h"
#include "storage/erasure.h"
#include "storage/ingest.h"
#include "storage/job_store.h"
#include "storage/record_store.h"
#include "storage/training_example.h"
#include "storage/user_store.h"

namespace hearth {
class Adapter;
}

namespace hearth::engine {

struct EngineOptions {
  std::filesystem::path home;    // created with mode 0700 if missing
  // Passphrase, key file, or raw bytes from the host keystore. Unset: open an existing home
  // without its key, for what needs none (list users and records, delete, forget, job status).
  std::optional<privacy::MasterKeySource> key;
  std::string actor;             // who the audit log names ("" = the OS account)
  // Enter the no-network sandbox (seccomp: no sockets) once the home and database are open.
  bool sandbox = false;
};

// How a slice may run: a wall-time and step budget, a cancel flag, and the device's state
// (read before every step; a slice stops when its job's policy no longer allows it).
struct SliceBudget {
  double seconds = 0;                              // 0: no limit
  int64_t steps = 0;                               // 0: no limit
  std::function<bool()> cancelled;                 // the host's preemption flag, polled often (cheap)
  std::function<DeviceState()> device;             // empty: the device always allows
  bool progress_bar = false;                       // draw the trainer's progress bar on stderr (foreground runs)
};

// What one slice did.
struct SliceResult {
  int64_t job_id = 0;
  // "finished" (adapter registered) | "paused" (budget, cancel, signal or policy: checkpointed,
  // resumable) | "waiting" (the policy does not allow the job now; nothing ran) | "failed"
  std::string outcome;
  std::string reason;          // why it paused / waited / failed, in words
  int64_t steps_done = 0;      // total steps of the job after the slice
  int64_t steps_this_slice = 0;
  double seconds = 0;
  double stop_latency_seconds = 0;  // from the stop request to the durable checkpoint (0: none)
  std::optional<storage::AdapterRecord> adapter;  // set when finished
};

// One request to generate: a prompt (or a chat turn), sampling, and optionally a user's adapter.
struct GenerateRequest {
  std::string prompt;
  bool chat = false;            // wrap the prompt as a user turn with the model's chat template
  std::string system;           // with chat: a system message
  GenerationOptions options;
  std::string user;             // with adapter: whose adapter
  std::string adapter;          // a registry name (its newest version unless pinned) or ""
  int64_t version = 0;          // 0: newest (or the user's pinned version); else that version
  // Test-time training (engine/test_time_training.h): with ttt.steps > 0 a short-lived adapter,
  // initialized from the request's adapter if it names one, first learns `context`; the answer
  // comes from it and it is dropped afterwards. `ttt_report` (if set) receives what it did.
  TttSettings ttt;
  std::string context;
  TttReport* ttt_report = nullptr;
};

class Engine {
 public:
  // Opens (creating if needed) the home and its database, unlocks the vault with the key
  // (kAuthentication for a wrong one), marks jobs left "running" by a process that died as
  // paused and removes sealed files a killed write left unnamed. Nothing else is loaded yet.
  explicit Engine(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const std::filesystem::path& home() const;

  // ---- The base model: loaded once, shared by every job and request of this engine.
  // Loading another spec replaces it (and unloads the adapters loaded over the old one).
  void load_base(const BaseModelSpec& spec);
  bool has_base() const;
  const LoadedModel& base() const;  // kInvalidArgument before load_base

  // ---- Users and their data (redacted and sealed on the way in; one transaction per call).
  storage::IngestReport ingest_files(const std::string& user, const std::vector<std::filesystem::path>& files,
                                     std::optional<privacy::RedactionMode> redaction = std::nullopt);
  // Data an app hands over in memory (a document's text, or JSONL lines of chat or
  // prompt/completion examples) instead of files; the same checks and single transaction.
  storage::IngestReport ingest_texts(const std::string& user, const std::vector<storage::IngestItem>& items,
                                     std::optional<privacy::RedactionMode> redaction = std::nullopt);
  std::vector<storage::UserRecord> users();
  std::vector<storage::RecordInfo> list_data(const std::string& user);
  int64_t count_data(const std::string& user, storage::RecordKind kind);
  // Decrypts one record for its owner to read (audited as "show").
  std::string show_document(const std::string& user, int64_t id);
  storage::TrainingExample show_example(const std::string& user, int64_t id);
  // Deletes the records (all or none); kNotFound naming a missing one.
  void delete_data(const std::string& user, storage::RecordKind kind, const std::vector<int64_t>& ids);
  // Erases the user: rows, adapters, checkpoints, jobs and their data key.
  storage::ForgetReport forget(const std::string& user);

  // ---- Personalization jobs (background training in slices).
  // Validates and queues a job for spec.user over the loaded base; returns its id.
  int64_t submit_job(const JobSpec& spec);
  JobInfo job(int64_t job_id);
  std::vector<JobInfo> jobs(const std::string& user = "");  // all users when empty
  // The job's logged curve: "loss" per step and "eval_loss" at evaluations.
  std::vector<storage::MetricPoint> job_metrics(int64_t job_id);
  // Runs job `job_id` for one slice: resumes from its last checkpoint, trains until the job is
  // done or the budget, the cancel flag, request_stop(), SIGINT/SIGTERM or the policy stops it,
  // then checkpoints durably (sealed, recorded in the same transaction as the job's progress)
  // and returns. A finished job registers a new adapter version (older ones beyond the job's
  // keep_versions are erased).
  SliceResult run_slice(int64_t job_id, const SliceBudget& budget);
  // Runs one slice of the job that ran least recently among those that can run now (queued or
  // paused, policy allows): several users' jobs take turns. std::nullopt when there is none.
  std::optional<SliceResult> run_next(const SliceBudget& budget);
  // Stops the running slice (if any) at its next interruption point; callable from any thread.
  void request_stop();
  // A queued or paused job becomes "cancelled" (its checkpoints are erased); a running one is
  // stopped first. kInvalidArgument for a finished one.
  void cancel_job(int64_t job_id);

  // ---- Adapters.
  std::vector<storage::AdapterRecord> adapter_versions(const std::string& user, const std::string& name = "");
  // Pins the version serving uses for (user, name); 0 unpins (newest again).
  void pin_adapter(const std::string& user, const std::string& name, int64_t version);
  // Decrypts (in memory) and loads the adapter into the engine's adapter set, ready for
  // generate(); returns the key it is loaded under ("user/name@vN"). Loading a key again is free.
  std::string load_adapter(const std::string& user, const std::string& name, int64_t version = 0);
  void unload_adapter(const std::string& key);
  // A loaded adapter's layers and tensors (kNotFound for a key that is not loaded).
  std::shared_ptr<Adapter> loaded_adapter(const std::string& key) const;
  std::vector<std::string> loaded_adapters() const;

  // ---- Federated personalization: one client's local round (engine/federated_client.h runs
  // the rounds). Trains a copy of `start` (a LoRA adapter over the loaded base, e.g. the
  // population adapter) on the user's stored data, decrypted in memory, for spec.steps, and
  // returns how its update s·B·A changed. Nothing is written: no data, adapter or checkpoint.
  LocalUpdate train_local_update(const std::string& user, const Adapter& start, const TrainingSpec& spec);

  // ---- Generation: streams text through on_text; `cancel` stops it between tokens
  // (stop_reason "cancelled"). Loads the request's adapter if needed.
  GenerationResult generate(const GenerateRequest& request, const TextCallback& on_text = nullptr,
                            const std::atomic<bool>* cancel = nullptr);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::engine
