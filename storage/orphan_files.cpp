#include "storage/orphan_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "core/error.h"
#include "storage/database.h"

namespace fs = std::filesystem;

namespace hearth::storage {
namespace {

int open_lock_file(const fs::path& home) {
  const fs::path path = home / ".write-lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) fail(ErrorCode::kIo, "cannot open " + path.string() + ": " + std::strerror(errno) + "; check the home folder's permissions");
  return fd;
}

std::set<std::string> named_files(Database& db) {
  std::set<std::string> named;
  for (const char* sql : {"SELECT file_path FROM adapters", "SELECT file_path FROM checkpoints"}) {
    Statement s = db.prepare(sql);
    while (s.step()) named.insert(s.column_text(0));
  }
  return named;
}

}  // namespace

SealedWriteLock::SealedWriteLock(const fs::path& home) : fd_(open_lock_file(home)) {
  while (::flock(fd_, LOCK_SH) != 0) {
    if (errno != EINTR) {
      ::close(fd_);
      fail(ErrorCode::kIo, "cannot lock " + (home / ".write-lock").string() + ": " + std::strerror(errno));
    }
  }
}

SealedWriteLock::~SealedWriteLock() { ::close(fd_); }  // closing releases the lock

int64_t sweep_orphan_files(Database& db, const fs::path& home) {
  const fs::path users = home / "users";
  if (!fs::is_directory(users)) return 0;
  const int fd = open_lock_file(home);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return 0;  // a writer is between its file and its row: try again another time
  }
  int64_t removed = 0;
  try {
    const std::set<std::string> named = named_files(db);
    std::error_code ec;
    for (const fs::directory_entry& user : fs::directory_iterator(users, ec)) {
      if (!user.is_directory()) continue;
      for (const fs::directory_entry& f : fs::directory_iterator(user.path(), ec)) {
        const std::string rel = fs::relative(f.path(), home).string();
        if (f.is_regular_file() && !named.count(rel) && fs::remove(f.path(), ec)) ++removed;
      }
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return removed;
}

}  // namespace hearth::storage
