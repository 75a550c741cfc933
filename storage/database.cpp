#include "storage/database.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "storage/backup.h"
#include "storage/migrations.h"

namespace hearth::storage {

namespace {

// The file behind a connection ("" for a temporary database).
std::filesystem::path file_of(sqlite3* db) {
  const char* name = db ? sqlite3_db_filename(db, "main") : nullptr;
  return name ? std::filesystem::path(name) : std::filesystem::path();
}

// Refuses, before SQLite is asked, a database or folder this process may not write: SQLite's
// own message ("unable to open database file", "attempt to write a readonly database") says
// neither which nor what to do. Even reading needs write access (the WAL index).
void require_writable(const std::filesystem::path& path) {
  const std::filesystem::path folder = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  auto refuse = [&](const std::filesystem::path& what, const char* kind) {
    fail(ErrorCode::kIo, std::string(kind) + " " + what.string() + " is read-only (" + std::strerror(errno) +
                             "); Hearth needs to write there even to read (SQLite keeps its WAL index beside the "
                             "database): make it writable (chmod u+w), or copy the Hearth home to a writable place "
                             "and pass --home");
  };
  if (::access(folder.c_str(), W_OK) != 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) refuse(folder, "folder");
  if (::access(path.c_str(), F_OK) == 0 && ::access(path.c_str(), W_OK) != 0) refuse(path, "database");
}

}  // namespace

void fail_sqlite(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      fail(ErrorCode::kIo, msg + " (another process kept the database locked for more than 5 s; try again)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      fail(ErrorCode::kCorruptFile, msg + " (the database file is damaged; nothing more was written to it). " +
                                        recovery_advice(file_of(db)));
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      fail(ErrorCode::kInvalidArgument, msg);
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      fail(ErrorCode::kIo, msg);
    default:
      fail(ErrorCode::kInternal, msg);
  }
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Statement::Statement(sqlite3* db, const char* sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  if (rc != SQLITE_OK) fail_sqlite(db, rc, "cannot prepare a statement");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }

Statement& Statement::bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) fail_sqlite(db_, rc, "cannot bind a value");
  return *this;
}

Statement& Statement::bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK) fail_sqlite(db_, rc, "cannot bind a value");
  return *this;
}

Statement& Statement::bind_text(int index, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) fail_sqlite(db_, rc, "cannot bind a text value");
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
  // A zero-length blob must still be a blob, not NULL: SQLite wants a non-null pointer.
  static const char kEmpty = 0;
  int rc = sqlite3_bind_blob64(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) fail_sqlite(db_, rc, "cannot bind a blob");
  return *this;
}

Statement& Statement::bind_null(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) fail_sqlite(db_, rc, "cannot bind NULL");
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail_sqlite(db_, rc, "database statement failed");
}

void Statement::run() {
  while (step()) {
  }
}

int64_t Statement::column_int(int index) const { return sqlite3_column_int64(stmt_, index); }
double Statement::column_double(int index) const { return sqlite3_column_double(stmt_, index); }

std::string Statement::column_text(int index) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, index))) : std::string();
}

std::string Statement::column_blob(int index) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, index));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, index))) : std::string();
}

bool Statement::column_is_null(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }

Database::Database(const std::filesystem::path& path, OpenMode mode) : path_(path) {
  if (mode == OpenMode::kReadWrite) require_writable(path);
  const int flags = mode == OpenMode::kInspect ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    fail(ErrorCode::kIo, "cannot open database " + path.string() + ": " + msg);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    sqlite3_extended_result_codes(db_, 1);
    if (mode == OpenMode::kInspect) return;
    ::chmod(path.c_str(), 0600);  // the -wal and -shm files copy this mode
    // Checked before the first write (even the switch to WAL writes the header): a damaged
    // file is refused untouched. A file that is not SQLite at all fails here too.
    const std::string problems = quick_check();
    if (problems != "ok") {
      fail(ErrorCode::kCorruptFile, "database " + path.string() + " is damaged (PRAGMA quick_check: " +
                                        summarize_problems(problems) + "); Hearth did not write to it. " +
                                        recovery_advice(path));
    }
    exec("PRAGMA busy_timeout = 5000");
    Statement journal(db_, "PRAGMA journal_mode = WAL");
    require(journal.step() && journal.column_text(0) == "wal", ErrorCode::kIo,
            "cannot switch " + path.string() + " to WAL mode");
    exec("PRAGMA synchronous = FULL");
    exec("PRAGMA foreign_keys = ON");
    exec("PRAGMA secure_delete = ON");
    exec("PRAGMA temp_store = MEMORY");  // sorts and VACUUM never spill to temporary files
    apply_migrations(*this);
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Database::~Database() {
  if (db_) sqlite3_close(db_);
}

void Database::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    sqlite3_free(err);
    fail_sqlite(db_, rc, "database " + path_.string());
  }
}

int64_t Database::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
int64_t Database::changes() const { return sqlite3_changes64(db_); }

int Database::schema_version() {
  Statement s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  s.step();
  return static_cast<int>(s.column_int(0));
}

namespace {

// Runs a check pragma; its rows (and an error that stops it: a file too damaged to walk) as
// one "; "-separated line.
std::string run_check(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  std::string out;
  auto add = [&](std::string problem) {
    for (char& c : problem)
      if (c == '\n') c = ';';
    out += (out.empty() ? "" : "; ") + problem;
  };
  if (rc == SQLITE_OK) {
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      add(text ? text : "");
    }
  }
  if (rc != SQLITE_DONE) add(std::string("cannot be read: ") + sqlite3_errmsg(db));
  sqlite3_finalize(stmt);
  return out;
}

}  // namespace

std::string summarize_problems(const std::string& problems, size_t keep) {
  std::vector<std::string> items;
  for (size_t start = 0; start < problems.size();) {
    size_t end = problems.find(';', start);
    if (end == std::string::npos) end = problems.size();
    std::string item = problems.substr(start, end - start);
    item.erase(0, item.find_first_not_of(' '));
    if (!item.empty() && item.rfind("***", 0) != 0) items.push_back(item);  // not "*** in database main ***"
    start = end + 1;
  }
  std::string out;
  for (size_t i = 0; i < std::min(keep, items.size()); ++i) out += (i ? "; " : "") + items[i];
  if (items.size() > keep) out += "; and " + std::to_string(items.size() - keep) + " more";
  return out;
}

std::string Database::integrity_check() { return run_check(db_, "PRAGMA integrity_check(100)"); }

std::string Database::quick_check() { return run_check(db_, "PRAGMA quick_check(10)"); }

void Database::checkpoint_and_vacuum() {
  exec("PRAGMA wal_checkpoint(TRUNCATE)");
  exec("VACUUM");
  exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

Transaction::Transaction(Database& db) : db_(db), nested_(sqlite3_get_autocommit(db.handle()) == 0) {
  db_.exec(nested_ ? "SAVEPOINT hearth_nested" : "BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (done_) return;
  if (nested_) {
    sqlite3_exec(db_.handle(), "ROLLBACK TO hearth_nested; RELEASE hearth_nested", nullptr, nullptr, nullptr);
  } else {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

void Transaction::commit() {
  if (nested_) {
    db_.exec("RELEASE hearth_nested");  // the outer transaction commits it, or rolls it back
    done_ = true;
    return;
  }
  // A statement that stopped after its first row still holds a read; finish it so COMMIT can run.
  for (sqlite3_stmt* s = sqlite3_next_stmt(db_.handle(), nullptr); s; s = sqlite3_next_stmt(db_.handle(), s)) {
    if (sqlite3_stmt_busy(s)) sqlite3_reset(s);
  }
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace hearth::storage
