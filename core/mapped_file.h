// A read-only memory mapping of a whole file. Tensors viewing the mapping hold a shared
// pointer to it, so weights are never copied and the mapping lives as long as any view.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace hearth {

class MappedFile {
 public:
  // Maps `path` read-only. Throws kNotFound / kIo with the path in the message.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  // A read-only anonymous mapping holding a copy of `bytes` (e.g. a file decrypted in memory);
  // `name` stands in for the path in messages.
  static std::shared_ptr<MappedFile> from_bytes(std::string_view bytes, const std::string& name);
  // A view of `bytes` without a copy, for reading once and copying out: the caller keeps them
  // alive and unchanged while this or any tensor viewing it lives.
  static std::shared_ptr<MappedFile> borrow(std::string_view bytes, const std::string& name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Tells the kernel the pages wholly inside [begin, begin + bytes) are not needed now, so they
  // leave this process's resident memory (used once a weight has been quantized at load time).
  // Only for file mappings, whose pages come back from the file if read again; a no-op for
  // from_bytes, whose anonymous pages would be lost.
  void drop_resident_pages(const uint8_t* begin, size_t bytes) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool file_backed_ = false;
  bool borrowed_ = false;  // not ours to unmap
  std::filesystem::path path_;
};

}  // namespace hearth
