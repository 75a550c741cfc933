// Training jobs of a user: their status and configuration, their sealed checkpoints and the
// metrics they log per step.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/process_identity.h"

namespace hearth::storage {

class Database;
class Keyring;

struct JobRecord {
  int64_t id = 0;
  int64_t user_id = 0;
  std::string kind;    // "train", "ttt", ...
  std::string status;  // queued | running | paused | done | failed | cancelled
  Json config = Json::object();
  int64_t created = 0;
  int64_t updated = 0;
  Json progress = Json::object();  // what the running process last reported
  ProcessIdentity owner;           // the process running it (pid 0 when none)
  int64_t adapter_id = 0;          // the adapter it registered (0 when none)
};

struct CheckpointRecord {
  int64_t id = 0;
  int64_t job_id = 0;
  int64_t step = 0;
  std::string file_path;  // relative to the Hearth home
  std::string sha256;     // of the sealed file
  std::string seal_nonce;  // its seal's nonce, hex ('' for files written before schema 3)
};

struct MetricPoint {
  int64_t step = 0;
  std::string name;
  double value = 0;
};

class JobStore {
 public:
  JobStore(Database& db, Keyring& keyring, std::filesystem::path home)
      : db_(db), keyring_(keyring), home_(std::move(home)) {}

  JobRecord create(int64_t user_id, const std::string& kind, const Json& config);
  JobRecord get(int64_t job_id);  // kNotFound
  std::vector<JobRecord> list(int64_t user_id);
  std::vector<JobRecord> list_all();
  void set_status(int64_t job_id, const std::string& status);

  // Makes `owner` the job's runner (status "running") if the job is queued or paused, or
  // "running" under a process that has died; false when a live process runs it or it has ended.
  bool claim(int64_t job_id, const ProcessIdentity& owner);
  // Ends a run: the new status, no owner.
  void release(int64_t job_id, const std::string& status);
  void set_progress(int64_t job_id, const Json& progress);
  void set_adapter(int64_t job_id, int64_t adapter_id);
  // Jobs left "running" by a process that no longer exists become "paused"; returns how many.
  int64_t reclaim_dead_runs();
  // Deletes the job's checkpoints other than `keep_id` (rows, then files); returns how many.
  int64_t prune_checkpoints(int64_t job_id, int64_t keep_id);

  // Seals the checkpoint bytes into the user's folder and records them, in one transaction.
  CheckpointRecord add_checkpoint(int64_t job_id, int64_t step, std::string_view bytes);
  std::optional<CheckpointRecord> latest_checkpoint(int64_t job_id);
  std::string open_checkpoint(const CheckpointRecord& checkpoint);

  void add_metric(int64_t job_id, int64_t step, const std::string& name, double value);
  std::vector<MetricPoint> metrics(int64_t job_id);

 private:
  Database& db_;
  Keyring& keyring_;
  std::filesystem::path home_;
};

}  // namespace hearth::storage
