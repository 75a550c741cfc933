// GGUF files (llama.cpp's model and adapter format), read: a memory-mapped, validated view of
// the header, metadata and tensor table, whose tensor data is used in place without copying.
//
// Fuzzing entry point: GgufFile::from_bytes(bytes, name) parses and validates a whole file held
// in memory exactly as open() does a mapped one. Every header field, count, string and array
// length, tensor dimension, type, offset, alignment and extent is checked against the bytes
// before it is used: bad input throws hearth::Error (kCorruptFile / kUnsupported) with one
// message naming the problem; nothing is read outside the bytes, and no allocation grows
// beyond a small multiple of the input size. (gguf_model.h's open_gguf_model and
// load_gguf_tokenizer go on from a parsed file and are fuzzable the same way.)
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"

namespace hearth {

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

// One metadata value. Strings view the file's bytes (valid while the GgufFile lives).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  // Scalars: integers in `integer` (signed types sign-extended), floats in `real`, bools in
  // `integer` (0 / 1), strings in `text`.
  int64_t integer = 0;
  uint64_t unsigned_integer = 0;  // the raw value of unsigned types (uint64 may exceed int64)
  double real = 0.0;
  std::string_view text;
  // Arrays: element type and count; numeric elements packed little-endian at `data`, strings
  // in `strings`.
  GgufValueType element_type = GgufValueType::kUint8;
  uint64_t count = 0;
  const uint8_t* data = nullptr;
  std::vector<std::string_view> strings;
};

// What ggml calls a tensor type: its name, weights per block and bytes per block.
struct GgmlType {
  uint32_t id;
  const char* name;
  int64_t block;
  int64_t bytes;
};
// The ggml type with this id, or nullptr for an id no ggml version has used.
const GgmlType* ggml_type(uint32_t id);

// ggml type ids Hearth reads and writes.
namespace ggml {
constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 8, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kBF16 = 30;
}

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the row length (innermost)
  uint32_t type = 0;          // ggml type id
  uint64_t offset = 0;        // from the start of the data section
  uint64_t bytes = 0;
  int64_t elements() const;  // the product of dims
};

class GgufFile {
 public:
  // Maps `path` and validates it (see the header comment).
  static std::shared_ptr<GgufFile> open(const std::filesystem::path& path);
  // The same over bytes in memory; `name` stands in for the path in messages.
  static std::shared_ptr<GgufFile> from_bytes(std::string_view bytes, const std::string& name);
  // Whether the file at `path` starts with the GGUF magic.
  static bool looks_like_gguf(const std::filesystem::path& path);

  uint32_t version() const { return version_; }
  const std::string& name() const { return name_; }
  uint64_t alignment() const { return alignment_; }

  // Metadata in file order, and by key.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;
  // Typed reads: nullopt when the key is absent; kCorruptFile naming the key when its type is
  // not the one asked for (any integer type for find_int, float32/64 for find_float).
  std::optional<std::string> find_string(const std::string& key) const;
  std::optional<int64_t> find_int(const std::string& key) const;
  std::optional<double> find_float(const std::string& key) const;
  std::optional<bool> find_bool(const std::string& key) const;
  // The same, kCorruptFile when absent.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  // An array value whose elements have `element` type; kCorruptFile when absent or otherwise.
  const GgufValue& get_array(const std::string& key, GgufValueType element) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The tensor's bytes inside the mapping.
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return file_->data() + data_start_ + t.offset; }
  const std::shared_ptr<MappedFile>& mapping() const { return file_; }

 private:
  static std::shared_ptr<GgufFile> parse(std::shared_ptr<MappedFile> file);
  [[noreturn]] void corrupt(const std::string& message) const;

  std::shared_ptr<MappedFile> file_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  size_t data_start_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace hearth
