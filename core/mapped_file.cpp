#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hearth {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
         "cannot open " + path.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::kIo, path.string() + " is not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  file->file_backed_ = true;
  if (file->size_ > 0) {
    void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail(ErrorCode::kIo, "cannot map " + path.string() + ": " + std::strerror(err));
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return file;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::string_view bytes, const std::string& name) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = name;
  file->size_ = bytes.size();
  if (bytes.empty()) return file;
  void* p = mmap(nullptr, bytes.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(ErrorCode::kIo, "cannot map " + std::to_string(bytes.size()) + " bytes for " + name + ": " + std::strerror(errno));
  std::memcpy(p, bytes.data(), bytes.size());
  mprotect(p, bytes.size(), PROT_READ);  // read-only like a mapped file; a failure only loses that protection
  file->data_ = static_cast<const uint8_t*>(p);
  return file;
}

std::shared_ptr<MappedFile> MappedFile::borrow(std::string_view bytes, const std::string& name) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = name;
  file->size_ = bytes.size();
  file->data_ = reinterpret_cast<const uint8_t*>(bytes.data());
  file->borrowed_ = true;
  return file;
}

void MappedFile::drop_resident_pages(const uint8_t* begin, size_t bytes) const {
  if (!file_backed_ || begin < data_ || begin + bytes > data_ + size_) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(begin) + bytes) / page * page;
  // Advice only: a failure leaves the pages resident, which is merely what happens without it.
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr && !borrowed_) munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace hearth
