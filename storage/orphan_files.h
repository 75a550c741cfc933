// Sealed files (adapters, checkpoints) are written before the row naming them commits, so a
// process killed in between leaves a file no row names. Writers hold a shared lock on the home
// while they write and commit; the sweep removes unnamed files only when it can take that lock
// exclusively, i.e. when no writer anywhere is half-way.
#pragma once
#include <cstdint>
#include <filesystem>

namespace hearth::storage {

class Database;

// A shared advisory lock (flock) on home/.write-lock for the lifetime of the object.
class SealedWriteLock {
 public:
  explicit SealedWriteLock(const std::filesystem::path& home);
  ~SealedWriteLock();
  SealedWriteLock(const SealedWriteLock&) = delete;
  SealedWriteLock& operator=(const SealedWriteLock&) = delete;

 private:
  int fd_ = -1;
};

// Removes the files under home/users/<id>/ that no adapters or checkpoints row names
// (temporary files of interrupted writes included) and returns how many. Does nothing and
// returns 0 while any process holds a SealedWriteLock.
int64_t sweep_orphan_files(Database& db, const std::filesystem::path& home);

}  // namespace hearth::storage
