#include "storage/job_store.h"

#include "core/error.h"
#include "storage/damaged_record.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/keyring.h"
#include "storage/sealed_blob_file.h"

namespace fs = std::filesystem;

namespace hearth::storage {

namespace {

JobRecord read_job(const Statement& s) {
  return JobRecord{s.column_int(0), s.column_int(1), s.column_text(2), s.column_text(3),
                   parse_json(s.column_text(4), "job config"), s.column_int(5), s.column_int(6)};
}

}  // namespace

JobRecord JobStore::create(int64_t user_id, const std::string& kind, const Json& config) {
  int64_t now = unix_now();
  db_.prepare("INSERT INTO jobs (user_id, kind, status, config, created, updated) VALUES (?1, ?2, 'queued', ?3, ?4, ?4)")
      .bind(1, user_id).bind_text(2, kind).bind_text(3, config.dump()).bind(4, now).run();
  return get(db_.last_insert_id());
}

JobRecord JobStore::get(int64_t job_id) {
  Statement s = db_.prepare("SELECT id, user_id, kind, status, config, created, updated FROM jobs WHERE id = ?1");
  s.bind(1, job_id);
  require(s.step(), ErrorCode::kNotFound, "job " + std::to_string(job_id) + " does not exist");
  return read_job(s);
}

std::vector<JobRecord> JobStore::list(int64_t user_id) {
  Statement s = db_.prepare("SELECT id, user_id, kind, status, config, created, updated FROM jobs WHERE user_id = ?1 ORDER BY id");
  s.bind(1, user_id);
  std::vector<JobRecord> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

void JobStore::set_status(int64_t job_id, const std::string& status) {
  db_.prepare("UPDATE jobs SET status = ?1, updated = ?2 WHERE id = ?3")
      .bind_text(1, status).bind(2, unix_now()).bind(3, job_id).run();
  require(db_.changes() == 1, ErrorCode::kNotFound, "job " + std::to_string(job_id) + " does not exist");
}

CheckpointRecord JobStore::add_checkpoint(int64_t job_id, int64_t step, std::string_view bytes) {
  JobRecord job = get(job_id);
  const auto& keys = keyring_.user_keys(job.user_id);
  Transaction tx(db_);
  db_.prepare("INSERT INTO checkpoints (job_id, step, file_path, sha256, created) VALUES (?1, ?2, '', '', ?3)")
      .bind(1, job_id).bind(2, step).bind(3, unix_now()).run();
  CheckpointRecord c{db_.last_insert_id(), job_id, step, "", ""};
  user_files_dir(home_, job.user_id);
  fs::path rel = fs::path("users") / std::to_string(job.user_id) / ("checkpoint-" + std::to_string(c.id) + ".sealed");
  c.file_path = rel.string();
  c.sha256 = write_sealed_blob(home_ / rel, bytes, keys.seal, {job.user_id, "checkpoint_file", c.id});
  try {
    db_.prepare("UPDATE checkpoints SET file_path = ?1, sha256 = ?2 WHERE id = ?3")
        .bind_text(1, c.file_path).bind_text(2, c.sha256).bind(3, c.id).run();
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
      "SELECT id, job_id, step, file_path, sha256 FROM checkpoints WHERE job_id = ?1 ORDER BY step DESC, id DESC LIMIT 1");
  s.bind(1, job_id);
  if (!s.step()) return std::nullopt;
  return CheckpointRecord{s.column_int(0), s.column_int(1), s.column_int(2), s.column_text(3), s.column_text(4)};
}

std::string JobStore::open_checkpoint(const CheckpointRecord& c) {
  JobRecord job = get(c.job_id);
  const privacy::RecordRef where{job.user_id, "checkpoint_file", c.id};
  const privacy::SecretKey& key = keyring_.user_keys(job.user_id).seal;
  return open_record_or_report_damage(where, db_.path(),
                                      [&] { return read_sealed_blob(home_ / c.file_path, c.sha256, key, where); });
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
