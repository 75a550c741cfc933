#include "inference/gguf_writer.h"

#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"

namespace hearth {
namespace {

constexpr uint64_t kAlignment = 32;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s.data(), s.size());
}

void put_type(std::string& out, GgufValueType t) { put<uint32_t>(out, static_cast<uint32_t>(t)); }

uint64_t padded(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

std::string& GgufWriter::slot(const std::string& key) {
  require(!key.empty(), ErrorCode::kInvalidArgument, "GGUF metadata keys must not be empty");
  for (auto& kv : metadata_) {
    if (kv.first == key) {
      kv.second.clear();
      return kv.second;
    }
  }
  metadata_.emplace_back(key, std::string());
  return metadata_.back().second;
}

void GgufWriter::set_string(const std::string& key, const std::string& value) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kString);
  put_string(s, value);
}

void GgufWriter::set_uint32(const std::string& key, uint32_t value) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kUint32);
  put(s, value);
}

void GgufWriter::set_int32(const std::string& key, int32_t value) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kInt32);
  put(s, value);
}

void GgufWriter::set_float32(const std::string& key, float value) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kFloat32);
  put(s, value);
}

void GgufWriter::set_bool(const std::string& key, bool value) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kBool);
  put<uint8_t>(s, value ? 1 : 0);
}

void GgufWriter::set_strings(const std::string& key, const std::vector<std::string>& values) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kArray);
  put_type(s, GgufValueType::kString);
  put<uint64_t>(s, values.size());
  for (const std::string& v : values) put_string(s, v);
}

void GgufWriter::set_float32s(const std::string& key, const std::vector<float>& values) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kArray);
  put_type(s, GgufValueType::kFloat32);
  put<uint64_t>(s, values.size());
  s.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

void GgufWriter::set_int32s(const std::string& key, const std::vector<int32_t>& values) {
  std::string& s = slot(key);
  put_type(s, GgufValueType::kArray);
  put_type(s, GgufValueType::kInt32);
  put<uint64_t>(s, values.size());
  s.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int32_t));
}

void GgufWriter::copy_value(const std::string& key, const GgufValue& v) {
  std::string& s = slot(key);
  put_type(s, v.type);
  if (v.type == GgufValueType::kArray) {
    put_type(s, v.element_type);
    put<uint64_t>(s, v.count);
    if (v.element_type == GgufValueType::kString) {
      for (std::string_view str : v.strings) put_string(s, str);
    } else {
      const size_t size = v.element_type == GgufValueType::kUint8 || v.element_type == GgufValueType::kInt8 ||
                                  v.element_type == GgufValueType::kBool ? 1
                          : v.element_type == GgufValueType::kUint16 || v.element_type == GgufValueType::kInt16 ? 2
                          : v.element_type == GgufValueType::kUint64 || v.element_type == GgufValueType::kInt64 ||
                                  v.element_type == GgufValueType::kFloat64 ? 8 : 4;
      s.append(reinterpret_cast<const char*>(v.data), v.count * size);
    }
    return;
  }
  switch (v.type) {
    case GgufValueType::kString: put_string(s, v.text); break;
    case GgufValueType::kUint8: put<uint8_t>(s, static_cast<uint8_t>(v.unsigned_integer)); break;
    case GgufValueType::kInt8: put<int8_t>(s, static_cast<int8_t>(v.integer)); break;
    case GgufValueType::kBool: put<uint8_t>(s, static_cast<uint8_t>(v.integer)); break;
    case GgufValueType::kUint16: put<uint16_t>(s, static_cast<uint16_t>(v.unsigned_integer)); break;
    case GgufValueType::kInt16: put<int16_t>(s, static_cast<int16_t>(v.integer)); break;
    case GgufValueType::kUint32: put<uint32_t>(s, static_cast<uint32_t>(v.unsigned_integer)); break;
    case GgufValueType::kInt32: put<int32_t>(s, static_cast<int32_t>(v.integer)); break;
    case GgufValueType::kUint64: put<uint64_t>(s, v.unsigned_integer); break;
    case GgufValueType::kInt64: put<int64_t>(s, v.integer); break;
    case GgufValueType::kFloat32: put<float>(s, static_cast<float>(v.real)); break;
    case GgufValueType::kFloat64: put<double>(s, v.real); break;
    default: break;
  }
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& dims, uint32_t type, const at::Tensor& data) {
  const GgmlType* t = ggml_type(type);
  require(t != nullptr, ErrorCode::kInternal, "GGUF writer: unknown ggml type " + std::to_string(type));
  require(!dims.empty() && dims.size() <= 4 && dims[0] % t->block == 0, ErrorCode::kInternal,
          "GGUF writer: tensor " + name + " has dims that " + t->name + " cannot store");
  require(name.size() < 64, ErrorCode::kInvalidArgument, "GGUF writer: tensor name " + name + " is 64 bytes or longer");
  int64_t elements = 1;
  for (int64_t d : dims) elements *= d;
  at::Tensor bytes = data.contiguous();
  require(static_cast<int64_t>(bytes.nbytes()) == elements / t->block * t->bytes, ErrorCode::kInternal,
          "GGUF writer: tensor " + name + " holds " + std::to_string(bytes.nbytes()) + " bytes, its type and dims imply " +
              std::to_string(elements / t->block * t->bytes));
  for (const Tensor& existing : tensors_) require(existing.name != name, ErrorCode::kInternal, "GGUF writer: tensor " + name + " added twice");
  tensors_.push_back({name, dims, type, bytes});
}

std::string GgufWriter::header() const {
  std::string h;
  h.append("GGUF", 4);
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(h, key);
    h += value;
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(h, t.name);
    put<uint32_t>(h, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(h, static_cast<uint64_t>(d));
    put<uint32_t>(h, t.type);
    put<uint64_t>(h, offset);
    offset += padded(t.data.nbytes());
  }
  h.resize(padded(h.size()), '\0');
  return h;
}

void GgufWriter::write(const std::filesystem::path& path) const {
  AtomicFileWriter out(path);
  out.append(header());
  static const char zeros[kAlignment] = {};
  for (const Tensor& t : tensors_) {
    out.append(t.data.data_ptr(), t.data.nbytes());
    out.append(zeros, padded(t.data.nbytes()) - t.data.nbytes());
  }
  out.commit();
}

}  // namespace hearth
