#include "storage/erasure.h"

#include <vector>

#include "core/error.h"
#include "storage/audit_log.h"
#include "storage/backup.h"
#include "storage/database.h"
#include "storage/user_store.h"

namespace fs = std::filesystem;

namespace hearth::storage {

namespace {

int64_t count_of(Database& db, const char* sql, int64_t user_id) {
  Statement s = db.prepare(sql);
  s.bind(1, user_id);
  s.step();
  return s.column_int(0);
}

std::vector<std::string> files_of(Database& db, int64_t user_id) {
  std::vector<std::string> files;
  Statement a = db.prepare("SELECT file_path FROM adapters WHERE user_id = ?1");
  a.bind(1, user_id);
  while (a.step()) files.push_back(a.column_text(0));
  Statement c = db.prepare(
      "SELECT c.file_path FROM checkpoints c JOIN jobs j ON c.job_id = j.id WHERE j.user_id = ?1");
  c.bind(1, user_id);
  while (c.step()) files.push_back(c.column_text(0));
  return files;
}

}  // namespace

ForgetReport forget_user(Database& db, const fs::path& home, const std::string& user_name, const std::string& actor) {
  UserStore users(db);
  ForgetReport report;
  std::vector<std::string> files;
  {
    Transaction tx(db);
    UserRecord user = users.get(user_name);
    report.user_id = user.id;
    report.documents = count_of(db, "SELECT COUNT(*) FROM documents WHERE user_id = ?1", user.id);
    report.examples = count_of(db, "SELECT COUNT(*) FROM examples WHERE user_id = ?1", user.id);
    report.adapters = count_of(db, "SELECT COUNT(*) FROM adapters WHERE user_id = ?1", user.id);
    report.jobs = count_of(db, "SELECT COUNT(*) FROM jobs WHERE user_id = ?1", user.id);
    report.checkpoints = count_of(
        db, "SELECT COUNT(*) FROM checkpoints c JOIN jobs j ON c.job_id = j.id WHERE j.user_id = ?1", user.id);
    files = files_of(db, user.id);
    // Wipe the wrapped key explicitly before the delete; secure_delete then zeroes the freed cells.
    db.prepare("UPDATE users SET wrapped_key = NULL WHERE id = ?1").bind(1, user.id).run();
    users.remove(user.id);  // documents, examples, adapters, jobs, checkpoints, metrics cascade
    AuditLog(db).append(actor, "forget", user.id,
                        report.documents + report.examples + report.adapters + report.checkpoints,
                        "documents=" + std::to_string(report.documents) + " examples=" +
                            std::to_string(report.examples) + " adapters=" + std::to_string(report.adapters) +
                            " checkpoints=" + std::to_string(report.checkpoints));
    tx.commit();
  }
  // Files go after the commit: a crash in between leaves files nobody can open (their key is
  // gone), never rows that point at missing files.
  std::error_code ec;
  for (const std::string& rel : files)
    if (fs::remove(home / rel, ec)) ++report.files_removed;
  fs::remove_all(home / "users" / std::to_string(report.user_id), ec);
  db.checkpoint_and_vacuum();
  // A backup made before would still hold the user: replace it (its old bytes are overwritten).
  back_up_after_job(db);
  return report;
}

}  // namespace hearth::storage
