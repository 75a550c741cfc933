#include "core/atomic_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"

namespace fs = std::filesystem;

namespace hearth {
namespace {

std::string random_suffix() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string s = ".tmp-";
  for (int i = 0; i < 12; ++i) s += hex[rd() % 16];
  return s;
}

void write_all(int fd, std::string_view bytes, const fs::path& path) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(ErrorCode::kIo, "cannot write " + path.string() + ": " + std::strerror(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

void sync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorCode::kIo, "cannot open " + path.string() + " to sync: " + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(ErrorCode::kIo, "cannot sync " + path.string() + ": " + std::strerror(errno));
}

AtomicFileWriter::AtomicFileWriter(fs::path path) : path_(std::move(path)) {
  tmp_ = path_;
  tmp_ += random_suffix();
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) fail(ErrorCode::kIo, "cannot create " + tmp_.string() + ": " + std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFileWriter::append(const void* data, size_t size) {
  write_all(fd_, std::string_view(static_cast<const char*>(data), size), tmp_);
}

void AtomicFileWriter::commit() {
  if (::fsync(fd_) != 0) fail(ErrorCode::kIo, "cannot sync " + tmp_.string() + ": " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp_.c_str());
    fail(ErrorCode::kIo, "cannot rename " + tmp_.string() + " to " + path_.string() + ": " + std::strerror(err));
  }
  sync_path(path_.parent_path().empty() ? fs::path(".") : path_.parent_path());
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicFileWriter writer(path);
  writer.append(bytes);
  writer.commit();
}

std::string read_file(const fs::path& path, size_t max_bytes) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(ErrorCode::kNotFound, "file not found: " + path.string());
  if (fs::is_directory(path, ec)) fail(ErrorCode::kInvalidArgument, path.string() + " is a folder, expected a file");
  auto size = fs::file_size(path, ec);
  if (ec) fail(ErrorCode::kIo, "cannot stat " + path.string() + ": " + ec.message());
  if (size > max_bytes) {
    fail(ErrorCode::kInvalidArgument, path.string() + " is " + std::to_string(size) +
                                          " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kIo, "cannot read " + path.string());
  std::string data(size, '\0');
  in.read(data.data(), static_cast<std::streamsize>(size));
  if (static_cast<size_t>(in.gcount()) != size) fail(ErrorCode::kIo, "short read from " + path.string());
  return data;
}

NewDirectory::NewDirectory(const fs::path& path) {
  std::error_code ec;
  fs::path missing;
  for (fs::path p = path; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing = p;
    if (p == p.parent_path()) break;
  }
  fs::create_directories(path, ec);
  if (ec) fail(ErrorCode::kIo, "cannot create folder " + path.string() + ": " + ec.message());
  require(fs::is_directory(path, ec), ErrorCode::kInvalidArgument, path.string() + " exists and is not a folder");
  created_ = missing;
}

NewDirectory::~NewDirectory() {
  if (created_.empty()) return;
  std::error_code ec;
  fs::remove_all(created_, ec);
}

StagedDirectory::StagedDirectory(fs::path final_path) : final_(std::move(final_path)) {
  if (final_.has_filename() == false) final_ = final_.parent_path();
  parent_ = std::make_unique<NewDirectory>(final_.parent_path().empty() ? fs::path(".") : final_.parent_path());
  std::error_code ec;
  staging_ = final_;
  staging_ += random_suffix();
  fs::create_directory(staging_, ec);
  if (ec) fail(ErrorCode::kIo, "cannot create folder " + staging_.string() + ": " + ec.message());
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}  // parent_ goes next: a parent folder made for nothing is removed too

void StagedDirectory::commit() {
  for (const auto& entry : fs::directory_iterator(staging_)) {
    if (entry.is_regular_file()) sync_path(entry.path());
  }
  sync_path(staging_);
  std::error_code ec;
  fs::path old;
  if (fs::exists(final_, ec)) {
    // Swap the two in one step, so the final name always holds a complete folder, even when
    // the process is killed here; the old one is then at the staging name.
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0) {
      old = staging_;
    } else {
      // A file system without the exchange: move the old folder aside first, so a crash between
      // the renames leaves both (the old one under a temporary name).
      old = final_;
      old += random_suffix();
      fs::rename(final_, old, ec);
      if (ec) fail(ErrorCode::kIo, "cannot move aside " + final_.string() + ": " + ec.message());
    }
  }
  if (old != staging_) {
    fs::rename(staging_, final_, ec);
    if (ec) fail(ErrorCode::kIo, "cannot rename " + staging_.string() + " to " + final_.string() + ": " + ec.message());
  }
  committed_ = true;
  parent_->keep();
  if (!old.empty()) fs::remove_all(old, ec);
  sync_path(final_.parent_path().empty() ? fs::path(".") : final_.parent_path());
}

}  // namespace hearth
