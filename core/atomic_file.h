// Writes that never leave a half-written file: data goes to a temporary name beside the
// target, is synced, and is renamed over it. Folders are built the same way.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace hearth {

// A file written piece by piece under a temporary name; commit() syncs and renames it into
// place. Destroyed without commit(), it removes the temporary file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void append(const void* data, size_t size);
  void append(std::string_view bytes) { append(bytes.data(), bytes.size()); }
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  int fd_ = -1;
};

// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the folder).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Reads a whole file into a string. Throws kNotFound / kIo naming the path; refuses files
// larger than `max_bytes` with kInvalidArgument.
std::string read_file(const std::filesystem::path& path, size_t max_bytes = size_t(1) << 32);

// A folder made for an output that may never come to exist: creates `path` and any missing
// parents; unless keep() is called, the destructor removes the outermost folder it created,
// with everything in it, so a refused or failed command leaves no empty folders behind.
class NewDirectory {
 public:
  explicit NewDirectory(const std::filesystem::path& path);
  ~NewDirectory();
  NewDirectory(const NewDirectory&) = delete;
  NewDirectory& operator=(const NewDirectory&) = delete;

  void keep() { created_.clear(); }
  // Whether this object created the folder (it did not exist before).
  bool created() const { return !created_.empty(); }

 private:
  std::filesystem::path created_;  // the outermost folder created; empty when none was
};

// A folder built under a temporary name and moved into place by commit(). If commit() is
// never reached (an error was thrown), the destructor removes the temporary folder.
class StagedDirectory {
 public:
  explicit StagedDirectory(std::filesystem::path final_path);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  // Where to write the folder's files before commit().
  const std::filesystem::path& path() const { return staging_; }
  // Syncs and renames the staging folder to the final path, replacing an existing folder.
  void commit();

 private:
  std::filesystem::path final_;
  std::unique_ptr<NewDirectory> parent_;  // the parent folder, if this object had to create it
  std::filesystem::path staging_;
  bool committed_ = false;
};

// fsyncs a file or folder by path; throws kIo on failure.
void sync_path(const std::filesystem::path& path);

}  // namespace hearth
