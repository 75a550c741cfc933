#include "storage/backup.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "storage/database.h"

namespace fs = std::filesystem;

namespace hearth::storage {
namespace {

std::string unique_suffix() {
  std::random_device rd;
  return ".tmp-" + std::to_string(rd()) + std::to_string(rd());
}

// Creates `path` empty with mode 0600 (SQLite would create it with the umask's mode).
void create_private_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail(ErrorCode::kIo, "cannot create " + path.string() + ": " + std::strerror(errno));
  ::close(fd);
}

// A file removed when this goes out of scope, unless release()d.
struct TemporaryFile {
  explicit TemporaryFile(fs::path p) : path(std::move(p)) {}
  ~TemporaryFile() {
    if (path.empty()) return;
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path.string() + suffix, ec);
  }
  void release() { path.clear(); }
  fs::path path;
};

// Copies every page of `from` into the (empty) database file `to` with the online backup API.
void copy_database(sqlite3* from, const fs::path& to) {
  sqlite3* dest = nullptr;
  int rc = sqlite3_open_v2(to.c_str(), &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_backup* b = sqlite3_backup_init(dest, "main", from, "main");
    if (b == nullptr) {
      rc = sqlite3_errcode(dest);
    } else {
      // One step copies everything while holding a read snapshot of the source.
      rc = sqlite3_backup_step(b, -1);
      const int finish = sqlite3_backup_finish(b);
      rc = rc == SQLITE_DONE ? finish : rc;
    }
  }
  // The copy carries the source's WAL flag; a rollback-journal file stands alone (no -wal or
  // -shm beside it to lose or to mix up).
  if (rc == SQLITE_OK) rc = sqlite3_exec(dest, "PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = dest ? sqlite3_errmsg(dest) : sqlite3_errstr(rc);
    sqlite3_close(dest);
    fail(ErrorCode::kIo, "cannot back up the database to " + to.string() + ": " + msg);
  }
  sqlite3_close(dest);
}

// Writes zeros over the file behind `fd` and syncs it.
void overwrite_with_zeros(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  const std::string zeros(64 << 10, '\0');
  for (off_t done = 0; done < st.st_size;) {
    const size_t n = static_cast<size_t>(std::min<off_t>(st.st_size - done, off_t(zeros.size())));
    const ssize_t w = ::pwrite(fd, zeros.data(), n, done);
    if (w <= 0) return;
    done += w;
  }
  ::fsync(fd);
}

fs::path prepare_backup_folder(const fs::path& db_path) {
  const fs::path dir = backup_path(db_path).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorCode::kIo, "cannot create the backup folder " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  return dir;
}

}  // namespace

fs::path backup_path(const fs::path& db_path) { return db_path.parent_path() / "backup" / db_path.filename(); }

std::string format_utc(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

BackupInfo backup_info(const fs::path& db_path) {
  BackupInfo info;
  info.path = backup_path(db_path);
  struct stat st {};
  if (::stat(info.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return info;
  info.exists = true;
  info.made = static_cast<int64_t>(st.st_mtime);
  info.bytes = static_cast<int64_t>(st.st_size);
  return info;
}

BackupInfo make_backup(Database& db) {
  const fs::path final_path = backup_path(db.path());
  prepare_backup_folder(db.path());
  TemporaryFile tmp(final_path.string() + unique_suffix());
  create_private_file(tmp.path);
  copy_database(db.handle(), tmp.path);
  {
    Database copy(tmp.path, OpenMode::kInspect);
    const std::string check = copy.quick_check();
    require(check == "ok", ErrorCode::kCorruptFile,
            "the backup copy of " + db.path().string() + " failed its check (" + check + "); the previous backup was kept");
  }
  sync_path(tmp.path);
  // The previous backup stays open so its bytes can be overwritten once it is replaced.
  const int previous = ::open(final_path.c_str(), O_WRONLY | O_CLOEXEC);
  if (::rename(tmp.path.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    if (previous >= 0) ::close(previous);
    fail(ErrorCode::kIo, "cannot rename the backup into place at " + final_path.string() + ": " + std::strerror(err));
  }
  tmp.release();
  sync_path(final_path.parent_path());
  if (previous >= 0) {
    overwrite_with_zeros(previous);
    ::close(previous);
  }
  return backup_info(db.path());
}

bool back_up_after_job(Database& db) {
  try {
    make_backup(db);
    return true;
  } catch (const Error& e) {
    spdlog::warn("the work is done and saved, but the backup of the database failed: {}", e.what());
    return false;
  }
}

bool refresh_backup(Database& db) {
  if (!backup_info(db.path()).exists) return false;
  make_backup(db);
  return true;
}

RestoreReport restore_backup(const fs::path& db_path) {
  RestoreReport report;
  report.backup = backup_info(db_path);
  require(report.backup.exists, ErrorCode::kNotFound,
          "there is no backup of " + db_path.string() + " at " + report.backup.path.string() +
              " (one is made after each successful job); nothing was changed");
  {
    Database backup(report.backup.path, OpenMode::kInspect);
    const std::string check = backup.integrity_check();
    require(check == "ok", ErrorCode::kCorruptFile,
            "the backup " + report.backup.path.string() + " is damaged too (" + check + "); nothing was changed");
  }
  // The restored file is built beside the database, complete and synced before anything moves.
  TemporaryFile staged(db_path.string() + unique_suffix());
  create_private_file(staged.path);
  {
    Database backup(report.backup.path, OpenMode::kInspect);
    copy_database(backup.handle(), staged.path);
  }
  sync_path(staged.path);
  report.damaged_copy = db_path.string() + ".damaged-" + std::to_string(unix_now());
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const fs::path from = db_path.string() + suffix;
    if (!fs::exists(from, ec)) continue;
    fs::rename(from, report.damaged_copy.string() + suffix, ec);
    if (ec) fail(ErrorCode::kIo, "cannot move " + from.string() + " aside: " + ec.message() + "; nothing was restored");
  }
  fs::rename(staged.path, db_path, ec);
  if (ec) fail(ErrorCode::kIo, "cannot move the restored database into place at " + db_path.string() + ": " + ec.message());
  staged.release();
  sync_path(db_path.parent_path().empty() ? fs::path(".") : db_path.parent_path());
  return report;
}

std::string recovery_advice(const fs::path& db_path) {
  if (db_path.empty()) return "";
  const BackupInfo b = backup_info(db_path);
  const std::string home = db_path.parent_path().string();
  if (b.exists) {
    return "To recover, restore the last good backup (" + b.path.string() + ", made " + format_utc(b.made) +
           "; changes since then are lost) with `hearth doctor --home " + home +
           " --restore`; the damaged file is kept beside it.";
  }
  return "There is no backup yet (one is made after each successful job). Keep a copy of the damaged file and "
         "salvage what is readable with `sqlite3 " + db_path.string() + " .recover` (see docs/reliability.md).";
}

}  // namespace hearth::storage
