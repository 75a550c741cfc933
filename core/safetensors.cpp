#include "core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"

namespace hearth {
namespace {

constexpr size_t kMaxHeaderBytes = size_t(100) << 20;

struct DtypeName {
  const char* name;
  at::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

// Multiplies with overflow detection; a header with absurd shapes must not wrap around.
bool checked_mul(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a) return false;
  *out = a * b;
  return true;
}

SafetensorsEntry parse_entry(const std::string& name, const Json& j, const std::string& what) {
  if (!j.is_object()) fail(ErrorCode::kCorruptFile, what + ": entry \"" + name + "\" is not an object");
  SafetensorsEntry e;
  e.name = name;
  if (!j.contains("dtype") || !j["dtype"].is_string()) fail(ErrorCode::kCorruptFile, what + ": tensor \"" + name + "\" has no dtype");
  e.dtype = safetensors_dtype_from_name(j["dtype"].get<std::string>());
  if (!j.contains("shape") || !j["shape"].is_array()) fail(ErrorCode::kCorruptFile, what + ": tensor \"" + name + "\" has no shape");
  size_t numel = 1;
  for (const auto& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(ErrorCode::kCorruptFile, what + ": tensor \"" + name + "\" has an invalid shape");
    e.shape.push_back(d.get<int64_t>());
    if (!checked_mul(numel, static_cast<size_t>(d.get<int64_t>()), &numel)) {
      fail(ErrorCode::kCorruptFile, what + ": tensor \"" + name + "\" has a shape too large to exist");
    }
  }
  const auto& off = j.contains("data_offsets") ? j["data_offsets"] : Json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
    fail(ErrorCode::kCorruptFile, what + ": tensor \"" + name + "\" has invalid data_offsets");
  }
  e.begin = off[0].get<size_t>();
  e.end = off[1].get<size_t>();
  size_t nbytes = 0;
  if (e.end < e.begin || !checked_mul(numel, at::elementSize(e.dtype), &nbytes) || nbytes != e.end - e.begin) {
    fail(ErrorCode::kCorruptFile, what + ": tensor \"" + name + "\" byte range [" + std::to_string(e.begin) + ", " +
                                      std::to_string(e.end) + ") does not match its shape and dtype");
  }
  return e;
}

}  // namespace

at::ScalarType safetensors_dtype_from_name(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.dtype;
  }
  fail(ErrorCode::kCorruptFile, "unknown safetensors dtype \"" + name + "\"");
}

std::string safetensors_dtype_name(at::ScalarType dtype) {
  for (const auto& d : kDtypes) {
    if (dtype == d.dtype) return d.name;
  }
  fail(ErrorCode::kUnsupported, std::string("dtype ") + c10::toString(dtype) + " cannot be stored in safetensors");
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  return parse(MappedFile::open(path));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::string_view bytes, const std::string& name) {
  return parse(MappedFile::from_bytes(bytes, name));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::borrow_bytes(std::string_view bytes, const std::string& name) {
  return parse(MappedFile::borrow(bytes, name));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<MappedFile> file) {
  auto st = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  st->file_ = std::move(file);
  const std::string what = st->file_->path().string();
  const size_t size = st->file_->size();
  if (size < 8) fail(ErrorCode::kCorruptFile, what + " is too short to be a safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, st->file_->data(), 8);  // little-endian on every target we build for
  if (header_len > size - 8) {
    fail(ErrorCode::kCorruptFile, what + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                                      std::to_string(size) + " bytes); the file is truncated or not safetensors");
  }
  if (header_len > kMaxHeaderBytes) fail(ErrorCode::kCorruptFile, what + ": header of " + std::to_string(header_len) + " bytes is implausibly large");
  st->data_start_ = 8 + header_len;
  Json header = parse_json(std::string_view(reinterpret_cast<const char*>(st->file_->data() + 8), header_len), what + " header");
  if (!header.is_object()) fail(ErrorCode::kCorruptFile, what + ": header is not a JSON object");
  const size_t data_size = size - st->data_start_;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      if (!item.value().is_object()) fail(ErrorCode::kCorruptFile, what + ": __metadata__ is not an object");
      for (const auto& m : item.value().items()) {
        if (!m.value().is_string()) fail(ErrorCode::kCorruptFile, what + ": metadata \"" + m.key() + "\" is not a string");
        st->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e = parse_entry(item.key(), item.value(), what);
    if (e.end > data_size) {
      fail(ErrorCode::kCorruptFile, what + ": tensor \"" + e.name + "\" ends at byte " + std::to_string(e.end) +
                                        " past the data section (" + std::to_string(data_size) + " bytes); the file is truncated");
    }
    st->entries_.push_back(std::move(e));
  }
  std::vector<const SafetensorsEntry*> sorted;
  for (const auto& e : st->entries_) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i]->begin < sorted[i - 1]->end) {
      fail(ErrorCode::kCorruptFile, what + ": tensors \"" + sorted[i - 1]->name + "\" and \"" + sorted[i]->name + "\" overlap");
    }
  }
  for (size_t i = 0; i < st->entries_.size(); ++i) st->index_[st->entries_[i].name] = i;
  return st;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(ErrorCode::kCorruptFile, path().string() + " has no tensor \"" + name + "\"");
  return entries_[it->second];
}

const uint8_t* SafetensorsFile::bytes(const std::string& name) const {
  return file_->data() + data_start_ + entry(name).begin;
}

void SafetensorsFile::drop_resident_pages(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  file_->drop_resident_pages(bytes(name), e.end - e.begin);
}

void SafetensorsFile::drop_resident_pages(const std::string& name, size_t offset, size_t bytes) const {
  const SafetensorsEntry& e = entry(name);
  const size_t size = e.end - e.begin, from = std::min(offset, size);
  file_->drop_resident_pages(this->bytes(name) + from, std::min(bytes, size - from));
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  void* data = const_cast<uint8_t*>(file_->data() + data_start_ + e.begin);
  auto options = at::TensorOptions().dtype(e.dtype);
  if (reinterpret_cast<uintptr_t>(data) % at::elementSize(e.dtype) != 0) {
    // A misaligned tensor (legal but rare): copy it rather than hand out unaligned pointers.
    at::Tensor t = at::empty(e.shape, options);
    // An empty tensor has no buffer (data_ptr() is null), and memcpy from or to null is undefined
    // even for 0 bytes (found by fuzz_safetensors under UBSan).
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data, e.end - e.begin);
    return t;
  }
  auto keep_alive = file_;
  return at::from_blob(data, e.shape, [keep_alive](void*) {}, options);
}

void SafetensorsWriter::add(const std::string& name, const at::Tensor& tensor) {
  require(name != "__metadata__" && !name.empty(), ErrorCode::kInvalidArgument, "invalid tensor name \"" + name + "\"");
  for (const auto& t : tensors_) {
    require(t.first != name, ErrorCode::kInvalidArgument, "tensor \"" + name + "\" added twice");
  }
  tensors_.emplace_back(name, tensor.contiguous().cpu());
}

std::string SafetensorsWriter::header_bytes() const {
  Json header = Json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  size_t offset = 0;
  for (const auto& [name, t] : tensors_) {
    size_t nbytes = t.numel() * t.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  // Pad so the data section starts 8-byte aligned and mapped tensors are aligned.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  const uint64_t len = text.size();
  return std::string(reinterpret_cast<const char*>(&len), 8) + text;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  AtomicFileWriter out(path);
  out.append(header_bytes());
  for (const auto& [name, t] : tensors_) out.append(t.data_ptr(), t.numel() * t.element_size());
  out.commit();
}

std::string SafetensorsWriter::to_bytes() const {
  std::string bytes = header_bytes();
  for (const auto& [name, t] : tensors_) bytes.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return bytes;
}

}  // namespace hearth
