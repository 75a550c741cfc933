#include "storage/job_store.h"

#include "core/error.h"
#include "storage/damaged_record.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/keyring.h"
#include "storage/orphan_files.h"
#include "storage/sealed_blob_file.h"

namespace fs = std::filesystem;

namespace hearth::storage {

namespace {

constexpr const char* kJobColumns =
    "SELECT id, user_id, kind, status, config, created, updated, progress, owner_pid, owner_start, adapter_id FROM jobs ";

JobRecord read_job(const Statement& s) {
  JobRecord j{s.column_int(0), s.column_int(1), s.column_text(2), s.column_text(3),
              parse_json(s.column_text(4), "job config"), s.column_int(5), s.column_int(6)};
  j.progress = parse_json(s.column_text(7), "job progress");
  j.owner = {s.column_is_null(8) ? 0 : s.column_int(8), s.column_is_null(9) ? 0 : s.column_int(9)};
  j.adapter_id = s.column_is_null(10) ? 0 : s.column_int(10);
  return j;
}

std::vector<JobRecord> read_jobs(Statement& s) {
  std::vector<JobRecord> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

}  // namespace

JobRecord JobStore::create(int64_t user_id, const std::string& kind, const Json& config) {
  int64_t now = unix_now();
  db_.prepare("INSERT INTO jobs (user_id, kind, status, config, created, updated) VALUES (?1, ?2, 'queued', ?3, ?4, ?4)")
      .bind(1, user_id).bind_text(2, kind).bind_text(3, config.dump()).bind(4, now).run();
  return get(db_.last_insert_id());
}

JobRecord JobStore::get(int64_t job_id) {
  Statement s = db_.prepare((std::string(kJobColumns) + "WHERE id = ?1").c_str());
  s.bind(1, job_id);
  require(s.step(), ErrorCode::kNotFound, "job " + std::to_string(job_id) + " does not exist");
  return read_job(s);
}

std::vector<JobRecord> JobStore::list(int64_t user_id) {
  Statement s = db_.prepare((std::string(kJobColumns) + "WHERE user_id = ?1 ORDER BY id").c_str());
  s.bind(1, user_id);
  return read_jobs(s);
}

std::vector<JobRecord> JobStore::list_all() {
  Statement s = db_.prepare((std::string(kJobColumns) + "ORDER BY id").c_str());
  return read_jobs(s);
}

bool JobStore::claim(int64_t job_id, const ProcessIdentity& owner) {
  Transaction tx(db_);  // read and write under one write lock: two runners cannot both claim
  const JobRecord job = get(job_id);
  const bool free = job.status == "queued" || job.status == "paused" || (job.status == "running" && !job.owner.alive());
  if (!free) return false;
  db_.prepare("UPDATE jobs SET status = 'running', owner_pid = ?1, owner_start = ?2, updated = ?3 WHERE id = ?4")
      .bind(1, owner.pid).bind(2, owner.start_ticks).bind(3, unix_now()).bind(4, job_id).run();
  tx.commit();
  return true;
}

void JobStore::release(int64_t job_id, const std::string& status) {
  db_.prepare("UPDATE jobs SET status = ?1, owner_pid = NULL, owner_start = NULL, updated = ?2 WHERE id = ?3")
      .bind_text(1, status).bind(2, unix_now()).bind(3, job_id).run();
  require(db_.changes() == 1, ErrorCode::kNotFound, "job " + std::to_string(job_id) + " does not exist");
}

void JobStore::set_progress(int64_t job_id, const Json& progress) {
  db_.prepare("UPDATE jobs SET progress = ?1, updated = ?2 WHERE id = ?3")
      .bind_text(1, progress.dump()).bind(2, unix_now()).bind(3, job_id).run();
}

void JobStore::set_adapter(int64_t job_id, int64_t adapter_id) {
  db_.prepare("UPDATE jobs SET adapter_id = ?1 WHERE id = ?2").bind(1, adapter_id).bind(2, job_id).run();
}

int64_t JobStore::reclaim_dead_runs() {
  int64_t reclaimed = 0;
  Transaction tx(db_);
  for (const JobRecord& job : list_all()) {
    if (job.status != "running" || job.owner.alive()) continue;
    release(job.id, "paused");
    ++reclaimed;
  }
  tx.commit();
  return reclaimed;
}

int64_t JobStore::prune_checkpoints(int64_t job_id, int64_t keep_id) {
  std::vector<std::string> files;
  {
    Transaction tx(db_);
    Statement s = db_.prepare("SELECT file_path FROM checkpoints WHERE job_id = ?1 AND id != ?2");
    s.bind(1, job_id).bind(2, keep_id);
    while (s.step()) files.push_back(s.column_text(0));
    db_.prepare("DELETE FROM checkpoints WHERE job_id = ?1 AND id != ?2").bind(1, job_id).bind(2, keep_id).run();
    tx.commit();
  }
  // Files after the rows: a crash in between leaves files no row names (swept later), never
  // rows naming missing files.
  std::error_code ec;
  for (const std::string& rel : files) fs::remove(home_ / rel, ec);
  return static_cast<int64_t>(files.size());
}

void JobStore::set_status(int64_t job_id, const std::string& status) {
  db_.prepare("UPDATE jobs SET status = ?1, updated = ?2 WHERE id = ?3")
      .bind_text(1, status).bind(2, unix_now()).bind(3, job_id).run();
  require(db_.changes() == 1, ErrorCode::kNotFound, "job " + std::to_string(job_id) + " does not exist");
}

CheckpointRecord JobStore::add_checkpoint(int64_t job_id, int64_t step, std::string_view bytes) {
  JobRecord job = get(job_id);
  const auto& keys = keyring_.user_keys(job.user_id);
  SealedWriteLock writing(home_);  // no sweep removes the file before its row commits
  Transaction tx(db_);
  db_.prepare("INSERT INTO checkpoints (job_id, step, file_path, sha256, created) VALUES (?1, ?2, '', '', ?3)")
      .bind(1, job_id).bind(2, step).bind(3, unix_now()).run();
  CheckpointRecord c{db_.last_insert_id(), job_id, step, "", "", ""};
  user_files_dir(home_, job.user_id);
  fs::path rel = fs::path("users") / std::to_string(job.user_id) / ("checkpoint-" + std::to_string(c.id) + ".sealed");
  c.file_path = rel.string();
  const SealedBlobStamp stamp = write_sealed_blob(home_ / rel, bytes, keys.seal, {job.user_id, "checkpoint_file", c.id});
  c.sha256 = stamp.sha256;
  c.seal_nonce = stamp.nonce;
  try {
    db_.prepare("UPDATE checkpoints SET file_path = ?1, sha256 = ?2, seal_nonce = ?3 WHERE id = ?4")
        .bind_text(1, c.file_path).bind_text(2, c.sha256).bind_text(3, c.seal_nonce).bind(4, c.id).run();
    tx.commit();
  } catch (...) {
    std::error_code ec;
    fs::remove(home_ / rel, ec);
    throw;
  }
  return c;
}

std::optional<CheckpointRecord> JobStore::latest_checkpoint(int64_t job_id) {
  Statement s = db_.prepare(
      "SELECT id, job_id, step, file_path, sha256, seal_nonce FROM checkpoints WHERE job_id = ?1 "
      "ORDER BY step DESC, id DESC LIMIT 1");
  s.bind(1, job_id);
  if (!s.step()) return std::nullopt;
  return CheckpointRecord{s.column_int(0),  s.column_int(1),  s.column_int(2),
                          s.column_text(3), s.column_text(4), s.column_text(5)};
}

std::string JobStore::open_checkpoint(const CheckpointRecord& c) {
  JobRecord job = get(c.job_id);
  const privacy::RecordRef where{job.user_id, "checkpoint_file", c.id};
  const privacy::SecretKey& key = keyring_.user_keys(job.user_id).seal;
  return open_record_or_report_damage(where, db_.path(),
                                      [&] { return read_sealed_blob(home_ / c.file_path, {c.sha256, c.seal_nonce}, key, where); });
}

void JobStore::add_metric(int64_t job_id, int64_t step, const std::string& name, double value) {
  db_.prepare("INSERT INTO metrics (job_id, step, name, value) VALUES (?1, ?2, ?3, ?4)")
      .bind(1, job_id).bind(2, step).bind_text(3, name).bind(4, value).run();
}

std::vector<MetricPoint> JobStore::metrics(int64_t job_id) {
  Statement s = db_.prepare("SELECT step, name, value FROM metrics WHERE job_id = ?1 ORDER BY step, id");
  s.bind(1, job_id);
  std::vector<MetricPoint> out;
  while (s.step()) out.push_back({s.column_int(0), s.column_text(1), s.column_double(2)});
  return out;
}

}  // namespace hearth::storage
