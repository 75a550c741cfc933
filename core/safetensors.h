// The safetensors format: a validated, memory-mapped reader whose tensors view the file
// without copying, and a writer that streams tensors to disk atomically.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"

namespace hearth {

struct SafetensorsEntry {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  size_t begin = 0;  // byte offsets into the data section
  size_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` and validates the header before trusting any of it: header length within
  // the file, valid JSON, known dtypes, shape x dtype size equal to each byte range, ranges
  // inside the data section and not overlapping. Any violation is a kCorruptFile error.
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  // The same checks over bytes held in memory (a file decrypted without touching the disk);
  // `name` stands in for the path in messages.
  static std::shared_ptr<SafetensorsFile> from_bytes(std::string_view bytes, const std::string& name);
  // The same over bytes it views without a copy (MappedFile::borrow): for reading tensors once
  // and copying them out, while the caller keeps `bytes` alive and unchanged.
  static std::shared_ptr<SafetensorsFile> borrow_bytes(std::string_view bytes, const std::string& name);

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return file_->path(); }

  // A tensor viewing the mapped bytes (no copy; it keeps the mapping alive). Do not write
  // to it: the mapping is private, so writes would only copy pages.
  at::Tensor tensor(const std::string& name) const;
  // Raw bytes of a tensor, for packed formats that are not LibTorch dtypes.
  const uint8_t* bytes(const std::string& name) const;
  // Drops the resident pages of tensor `name` (see MappedFile::drop_resident_pages).
  void drop_resident_pages(const std::string& name) const;
  // The same for bytes [offset, offset + bytes) of the tensor (clipped to it).
  void drop_resident_pages(const std::string& name, size_t offset, size_t bytes) const;

 private:
  static std::shared_ptr<SafetensorsFile> parse(std::shared_ptr<MappedFile> file);

  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Streams named tensors to a safetensors file, written under a temporary name and renamed
// into place, so a failure never leaves a partial file.
class SafetensorsWriter {
 public:
  void add(const std::string& name, const at::Tensor& tensor);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::filesystem::path& path) const;
  // The whole file as bytes in memory (for sealing before it reaches the disk).
  std::string to_bytes() const;

 private:
  std::string header_bytes() const;  // length prefix, JSON header, padding

  std::vector<std::pair<std::string, at::Tensor>> tensors_;
  std::map<std::string, std::string> metadata_;
};

// "F32" <-> at::kFloat and so on; unknown names throw kCorruptFile.
at::ScalarType safetensors_dtype_from_name(const std::string& name);
std::string safetensors_dtype_name(at::ScalarType dtype);

}  // namespace hearth
