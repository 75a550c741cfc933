// The SQLite database of one Hearth home: opening with the pragmas Hearth relies on (WAL,
// busy timeout, foreign keys, secure_delete), prepared statements and transactions.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace hearth::storage {

// One prepared statement. SQL text is always a literal; values travel only through bind_*,
// so nothing a user types can change a statement.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept;

  // Parameters are numbered from 1, as in SQLite.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, double value);
  Statement& bind_text(int index, std::string_view text);
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind_null(int index);

  // Advances; true while a row is available.
  bool step();
  // Runs a statement that returns no rows.
  void run();

  // Columns are numbered from 0.
  int64_t column_int(int index) const;
  double column_double(int index) const;
  std::string column_text(int index) const;
  std::string column_blob(int index) const;
  bool column_is_null(int index) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

enum class OpenMode {
  // Create if missing, refuse a read-only or damaged file (PRAGMA quick_check), migrate: what
  // every command that uses the data opens.
  kReadWrite,
  // Read only, no check, no pragma that writes, no migration: for `hearth doctor` to look at a
  // file that may be damaged without changing a byte of it.
  kInspect,
};

class Database {
 public:
  // kReadWrite: opens (creating if needed) `path`, checks it with PRAGMA quick_check before
  // anything is written (kCorruptFile naming the damage and how to recover from the backup),
  // then sets WAL, busy_timeout 5000 ms, foreign_keys, secure_delete and in-memory temporary
  // storage, and applies pending migrations. A read-only file or folder is a kIo error saying so.
  explicit Database(const std::filesystem::path& path, OpenMode mode = OpenMode::kReadWrite);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Statement prepare(const char* sql) { return Statement(db_, sql); }
  // Runs fixed SQL (schema, pragmas) that contains no values.
  void exec(const char* sql);
  int64_t last_insert_id() const;
  int64_t changes() const;
  const std::filesystem::path& path() const { return path_; }
  sqlite3* handle() { return db_; }

  // The schema version after migrations.
  int schema_version();
  // "ok", or SQLite's list of problems (the first 100, joined by "; "); a file too damaged to be
  // walked reports that as its problem instead of throwing.
  std::string integrity_check();
  // The same from PRAGMA quick_check (the first 10): every page and record is read, but index
  // contents are not cross-checked against their tables, so it costs a fraction of the time.
  std::string quick_check();
  // Moves the WAL into the main file and truncates it, then rebuilds the file so freed pages
  // (already zeroed by secure_delete) are gone too.
  void checkpoint_and_vacuum();

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
};

// BEGIN IMMEDIATE … COMMIT; rolled back when destroyed without commit(). IMMEDIATE takes the
// write lock at the start, so two writers queue on the busy timeout instead of deadlocking.
// Inside another transaction it is a savepoint: its work commits or rolls back with the outer
// one (so a store's own multi-row change can join a caller's larger one).
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool nested_ = false;
  bool done_ = false;
};

// Throws the hearth::Error that fits SQLite result `rc` (busy → kIo, corrupt → kCorruptFile,
// constraint → kInvalidArgument), with `what` and SQLite's message.
[[noreturn]] void fail_sqlite(sqlite3* db, int rc, const std::string& what);

// The first `keep` problems of an integrity_check / quick_check result, and how many more.
std::string summarize_problems(const std::string& problems, size_t keep = 3);

// Seconds since the epoch, for created/updated columns.
int64_t unix_now();

}  // namespace hearth::storage
