#include "storage/doctor.h"

#include <chrono>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "storage/adapter_registry.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/job_store.h"
#include "storage/keyring.h"
#include "storage/record_store.h"
#include "storage/sealed_blob_file.h"
#include "storage/user_store.h"
#include "storage/vault.h"

namespace fs = std::filesystem;

namespace hearth::storage {
namespace {

struct SealedFileRow {
  std::string what;  // "adapter 3 of user 1", ...
  std::string path;  // relative to the home
  std::string sha256;
};

std::vector<SealedFileRow> sealed_file_rows(Database& db) {
  std::vector<SealedFileRow> rows;
  Statement a = db.prepare("SELECT id, user_id, name, version, file_path, sha256 FROM adapters ORDER BY id");
  while (a.step()) {
    rows.push_back({"adapter " + std::to_string(a.column_int(0)) + " (\"" + a.column_text(2) + "\" v" +
                        std::to_string(a.column_int(3)) + ") of user " + std::to_string(a.column_int(1)),
                    a.column_text(4), a.column_text(5)});
  }
  Statement c = db.prepare("SELECT c.id, j.user_id, c.job_id, c.step, c.file_path, c.sha256 FROM checkpoints c "
                           "JOIN jobs j ON c.job_id = j.id ORDER BY c.id");
  while (c.step()) {
    rows.push_back({"checkpoint " + std::to_string(c.column_int(0)) + " (job " + std::to_string(c.column_int(2)) + ", step " +
                        std::to_string(c.column_int(3)) + ") of user " + std::to_string(c.column_int(1)),
                    c.column_text(4), c.column_text(5)});
  }
  return rows;
}

void check_sealed_files(Database& db, const fs::path& home, HomeHealth& h) {
  std::set<fs::path> referenced;
  for (const SealedFileRow& row : sealed_file_rows(db)) {
    ++h.sealed_files;
    const fs::path file = home / row.path;
    referenced.insert(fs::weakly_canonical(file));
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
      h.file_problems.push_back(row.what + ": its file " + file.string() + " is missing");
    } else if (sha256_hex(read_file(file)) != row.sha256) {
      h.file_problems.push_back(row.what + ": its file " + file.string() + " is damaged (SHA-256 differs from the record)");
    }
  }
  std::error_code ec;
  for (fs::recursive_directory_iterator it(home / "users", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && !referenced.count(fs::weakly_canonical(it->path())))
      h.unreferenced_files.push_back(it->path().string());
  }
}

// Runs `check` and records a thrown hearth::Error as the problem it names.
template <typename Check>
std::string problems_of(Check&& check) {
  try {
    return check();
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace

HomeHealth check_home(const fs::path& home) {
  HomeHealth h;
  h.database = existing_database(home);
  std::error_code ec;
  h.database_bytes = static_cast<int64_t>(fs::file_size(h.database, ec));
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Database> db;
  h.integrity = problems_of([&] {
    db = std::make_unique<Database>(h.database, OpenMode::kInspect);
    return summarize_problems(db->integrity_check(), 5);
  });
  h.integrity_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (h.database_ok()) check_sealed_files(*db, home, h);
  h.backup = backup_info(h.database);
  if (h.backup.exists) {
    h.backup_integrity =
        problems_of([&] { return summarize_problems(Database(h.backup.path, OpenMode::kInspect).integrity_check(), 5); });
  }
  return h;
}

void verify_records(Database& db, Keyring& keyring, HomeHealth& h) {
  h.records_verified = true;
  RecordStore records(db, keyring);
  AdapterRegistry adapters(db, keyring, db.path().parent_path());
  JobStore jobs(db, keyring, db.path().parent_path());
  auto attempt = [&](auto&& open) {
    try {
      open();
      ++h.records_opened;
    } catch (const Error& e) {
      h.record_problems.push_back(e.what());
    }
  };
  for (const UserRecord& u : UserStore(db).list()) {
    for (const RecordInfo& r : records.list(u.id)) {
      attempt([&] {
        if (r.kind == RecordKind::kDocument) records.open_document(u.id, r.id);
        else records.open_example(u.id, r.id);
      });
    }
    for (const AdapterRecord& a : adapters.list(u.id)) attempt([&] { adapters.open_file(a); });
    for (const JobRecord& j : jobs.list(u.id)) {
      if (auto c = jobs.latest_checkpoint(j.id)) attempt([&] { jobs.open_checkpoint(*c); });
    }
  }
}

}  // namespace hearth::storage
