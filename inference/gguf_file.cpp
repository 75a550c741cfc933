#include "inference/gguf_file.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace hearth {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint64_t kMaxDimension = uint64_t(1) << 40;
constexpr uint64_t kMaxElements = uint64_t(1) << 50;

// Every ggml type id that has been assigned, with its block geometry (ids 4, 5, 31-33 and 36-38
// were retired); a file may name any of them, Hearth computes with a few (gguf_model.cpp).
constexpr GgmlType kTypes[] = {
    {0, "F32", 1, 4},        {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},       {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},       {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},    {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},  {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},    {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},  {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},          {25, "I16", 1, 2},
    {26, "I32", 1, 4},       {27, "I64", 1, 8},        {28, "F64", 1, 8},         {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},    {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},   {41, "Q1_0", 128, 18},    {42, "Q2_0", 64, 18},
};

size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64: return 8;
    default: return 0;  // strings and arrays have no fixed size
  }
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

// Reads little-endian fields from the bytes, each read checked against what is left.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}

  size_t position() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  template <typename T>
  T read(const char* field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string_view string(const char* field) {
    const uint64_t n = read<uint64_t>(field);
    if (n > remaining()) {
      fail(ErrorCode::kCorruptFile, name_ + ": " + field + " claims " + std::to_string(n) + " bytes at offset " +
                                        std::to_string(pos_) + " but only " + std::to_string(remaining()) +
                                        " remain; the file is truncated or corrupt");
    }
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

  const uint8_t* take(uint64_t n, const char* field) {
    need(n, field);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }

 private:
  void need(uint64_t n, const char* field) const {
    if (n > remaining()) {
      fail(ErrorCode::kCorruptFile, name_ + ": truncated at offset " + std::to_string(pos_) + " reading " + field +
                                        " (" + std::to_string(n) + " bytes needed, " + std::to_string(remaining()) +
                                        " left)");
    }
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

GgufValue read_scalar(Cursor& c, GgufValueType t) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::kUint8: v.unsigned_integer = c.read<uint8_t>("a uint8 value"); break;
    case GgufValueType::kInt8: v.integer = c.read<int8_t>("an int8 value"); break;
    case GgufValueType::kUint16: v.unsigned_integer = c.read<uint16_t>("a uint16 value"); break;
    case GgufValueType::kInt16: v.integer = c.read<int16_t>("an int16 value"); break;
    case GgufValueType::kUint32: v.unsigned_integer = c.read<uint32_t>("a uint32 value"); break;
    case GgufValueType::kInt32: v.integer = c.read<int32_t>("an int32 value"); break;
    case GgufValueType::kUint64: v.unsigned_integer = c.read<uint64_t>("a uint64 value"); break;
    case GgufValueType::kInt64: v.integer = c.read<int64_t>("an int64 value"); break;
    case GgufValueType::kFloat32: v.real = c.read<float>("a float32 value"); break;
    case GgufValueType::kFloat64: v.real = c.read<double>("a float64 value"); break;
    case GgufValueType::kBool: v.integer = c.read<uint8_t>("a bool value"); break;
    case GgufValueType::kString: v.text = c.string("a string value"); break;
    default: break;
  }
  const bool is_unsigned = t == GgufValueType::kUint8 || t == GgufValueType::kUint16 || t == GgufValueType::kUint32 ||
                           t == GgufValueType::kUint64;
  if (is_unsigned) v.integer = static_cast<int64_t>(v.unsigned_integer);
  return v;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool",  "string", "array", "uint64", "int64", "float64"};
  const auto i = static_cast<uint32_t>(type);
  return i < 13 ? names[i] : "unknown";
}

const GgmlType* ggml_type(uint32_t id) {
  for (const GgmlType& t : kTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

int64_t GgufTensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::shared_ptr<GgufFile> GgufFile::open(const std::filesystem::path& path) { return parse(MappedFile::open(path)); }

std::shared_ptr<GgufFile> GgufFile::from_bytes(std::string_view bytes, const std::string& name) {
  return parse(MappedFile::from_bytes(bytes, name));
}

bool GgufFile::looks_like_gguf(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

void GgufFile::corrupt(const std::string& message) const { fail(ErrorCode::kCorruptFile, name_ + ": " + message); }

std::shared_ptr<GgufFile> GgufFile::parse(std::shared_ptr<MappedFile> file) {
  std::shared_ptr<GgufFile> g(new GgufFile());
  g->file_ = file;
  g->name_ = file->path().string();
  Cursor c(file->data(), file->size(), g->name_);
  if (file->size() < 24) g->corrupt("only " + std::to_string(file->size()) + " bytes, too short for a GGUF header (24)");
  if (c.read<uint32_t>("the magic") != kMagic) g->corrupt("not a GGUF file (its first 4 bytes are not \"GGUF\")");
  g->version_ = c.read<uint32_t>("the version");
  if (g->version_ == 0x02000000 || g->version_ == 0x03000000) {
    fail(ErrorCode::kUnsupported, g->name_ + ": a big-endian GGUF file; convert it to little-endian");
  }
  if (g->version_ != 2 && g->version_ != 3) {
    fail(ErrorCode::kUnsupported, g->name_ + ": GGUF version " + std::to_string(g->version_) +
                                      " is not supported (2 or 3); re-convert the model with a current llama.cpp");
  }
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Each entry takes at least this many bytes, so larger counts cannot fit in the file.
  if (n_kv > c.remaining() / 13) g->corrupt("metadata count " + std::to_string(n_kv) + " cannot fit in the file");
  if (n_tensors > c.remaining() / 28) g->corrupt("tensor count " + std::to_string(n_tensors) + " cannot fit in the file");

  g->metadata_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string key(c.string("a metadata key"));
    if (key.empty()) g->corrupt("metadata entry " + std::to_string(k) + " has an empty key");
    const uint32_t type = c.read<uint32_t>("a metadata type");
    if (!known_value_type(type)) g->corrupt("metadata \"" + key + "\" has unknown value type " + std::to_string(type));
    GgufValue v;
    if (static_cast<GgufValueType>(type) == GgufValueType::kArray) {
      v.type = GgufValueType::kArray;
      const uint32_t element = c.read<uint32_t>("an array element type");
      if (!known_value_type(element) || static_cast<GgufValueType>(element) == GgufValueType::kArray) {
        g->corrupt("metadata \"" + key + "\" is an array of unsupported element type " + std::to_string(element));
      }
      v.element_type = static_cast<GgufValueType>(element);
      v.count = c.read<uint64_t>("an array length");
      if (v.element_type == GgufValueType::kString) {
        if (v.count > c.remaining() / 8) g->corrupt("metadata \"" + key + "\" claims " + std::to_string(v.count) + " strings, more than the file holds");
        v.strings.reserve(v.count);
        for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.string("an array string"));
      } else {
        const size_t size = scalar_size(v.element_type);
        if (v.count > c.remaining() / size) g->corrupt("metadata \"" + key + "\" claims " + std::to_string(v.count) + " elements, more than the file holds");
        v.data = c.take(v.count * size, "array elements");
      }
    } else {
      v = read_scalar(c, static_cast<GgufValueType>(type));
    }
    if (!g->metadata_index_.emplace(key, g->metadata_.size()).second) g->corrupt("metadata key \"" + key + "\" appears twice");
    g->metadata_.emplace_back(key, std::move(v));
  }

  if (const GgufValue* a = g->find("general.alignment")) {
    if (a->type != GgufValueType::kUint32 || a->unsigned_integer == 0 || (a->unsigned_integer & (a->unsigned_integer - 1)) != 0 ||
        a->unsigned_integer > (1u << 20)) {
      g->corrupt("general.alignment must be a uint32 power of two up to 1 MiB");
    }
    g->alignment_ = a->unsigned_integer;
  }

  g->tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = std::string(c.string("a tensor name"));
    const std::string what = "tensor \"" + t.name + "\"";
    if (t.name.empty() || t.name.size() > 255) g->corrupt("tensor " + std::to_string(k) + " has an empty or over-long name");
    const uint32_t n_dims = c.read<uint32_t>("a tensor's dimension count");
    if (n_dims < 1 || n_dims > 4) g->corrupt(what + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = c.read<uint64_t>("a tensor dimension");
      if (n == 0 || n > kMaxDimension) g->corrupt(what + " has dimension " + std::to_string(n) + " (out of range)");
      if (elements > kMaxElements / n) g->corrupt(what + " has an absurd number of elements");
      elements *= n;
      t.dims.push_back(static_cast<int64_t>(n));
    }
    t.type = c.read<uint32_t>("a tensor type");
    const GgmlType* type = ggml_type(t.type);
    if (type == nullptr) g->corrupt(what + " has unknown ggml type id " + std::to_string(t.type));
    if (t.dims[0] % type->block != 0) {
      g->corrupt(what + ": its rows of " + std::to_string(t.dims[0]) + " are not whole " + type->name + " blocks of " +
                 std::to_string(type->block));
    }
    t.bytes = elements / type->block * type->bytes;
    t.offset = c.read<uint64_t>("a tensor offset");
    if (t.offset % g->alignment_ != 0) g->corrupt(what + " is not aligned to " + std::to_string(g->alignment_) + " bytes");
    if (!g->tensor_index_.emplace(t.name, g->tensors_.size()).second) g->corrupt(what + " appears twice");
    g->tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t header_end = c.position();
  g->data_start_ = static_cast<size_t>((header_end + g->alignment_ - 1) / g->alignment_ * g->alignment_);
  const uint64_t data_size = g->data_start_ <= file->size() ? file->size() - g->data_start_ : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : g->tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset) {
      g->corrupt("tensor \"" + t.name + "\" (" + std::to_string(t.bytes) + " bytes at data offset " + std::to_string(t.offset) +
                 ") extends past the end of the file; the file is truncated");
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset) {
      g->corrupt("tensors \"" + by_offset[i - 1]->name + "\" and \"" + by_offset[i]->name + "\" overlap");
    }
  }
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

std::optional<std::string> GgufFile::find_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufValueType::kString) corrupt("metadata \"" + key + "\" should be a string, not " + gguf_value_type_name(v->type));
  return std::string(v->text);
}

std::optional<int64_t> GgufFile::find_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  const bool integer = scalar_size(v->type) > 0 && v->type != GgufValueType::kFloat32 && v->type != GgufValueType::kFloat64 &&
                       v->type != GgufValueType::kBool;
  if (!integer) corrupt("metadata \"" + key + "\" should be an integer, not " + gguf_value_type_name(v->type));
  if (v->type == GgufValueType::kUint64 && v->unsigned_integer > uint64_t(INT64_MAX)) corrupt("metadata \"" + key + "\" is out of range");
  return v->integer;
}

std::optional<double> GgufFile::find_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufValueType::kFloat32 && v->type != GgufValueType::kFloat64) {
    corrupt("metadata \"" + key + "\" should be a float, not " + gguf_value_type_name(v->type));
  }
  return v->real;
}

std::optional<bool> GgufFile::find_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufValueType::kBool) corrupt("metadata \"" + key + "\" should be a bool, not " + gguf_value_type_name(v->type));
  return v->integer != 0;
}

std::string GgufFile::get_string(const std::string& key) const {
  auto v = find_string(key);
  if (!v) corrupt("missing metadata \"" + key + "\"");
  return *v;
}

int64_t GgufFile::get_int(const std::string& key) const {
  auto v = find_int(key);
  if (!v) corrupt("missing metadata \"" + key + "\"");
  return *v;
}

const GgufValue& GgufFile::get_array(const std::string& key, GgufValueType element) const {
  const GgufValue* v = find(key);
  if (v == nullptr) corrupt("missing metadata \"" + key + "\"");
  if (v->type != GgufValueType::kArray || v->element_type != element) {
    corrupt("metadata \"" + key + "\" should be an array of " + gguf_value_type_name(element));
  }
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace hearth
