// The GGUF reader and writer: a written file reads back exactly; every truncation and every
// hostile header field of a valid file is refused with one Error naming the problem (the
// *BadModelFiles* suites also run under AddressSanitizer and UBSan in CI).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "inference/gguf_file.h"
#include "inference/gguf_writer.h"
#include "test_helpers.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A small valid file: metadata of several types, an F32 and a Q8_0 tensor.
std::string small_file(const fs::path& dir) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.block_count", 2);
  w.set_float32("llama.rope.freq_base", 10000.0f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_strings("tokenizer.ggml.tokens", {"a", "bc", ""});
  w.set_int32s("tokenizer.ggml.token_type", {1, 1, 3});
  w.add_tensor("norm.weight", {3}, ggml::kF32, at::tensor({1.0f, 2.0f, 3.0f}));
  w.add_tensor("q.weight", {32, 2}, ggml::kQ8_0, at::arange(68, at::kByte));
  w.write(dir / "small.gguf");
  return read_bytes(dir / "small.gguf");
}

TEST(GgufFile, WrittenFileReadsBackExactly) {
  const fs::path dir = testing::fresh_temp_dir("gguf_rt");
  const std::string bytes = small_file(dir);
  auto f = GgufFile::open(dir / "small.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(*f->find_float("llama.rope.freq_base"), 10000.0f);
  EXPECT_TRUE(*f->find_bool("tokenizer.ggml.add_bos_token"));
  const GgufValue& tokens = f->get_array("tokenizer.ggml.tokens", GgufValueType::kString);
  ASSERT_EQ(tokens.count, 3u);
  EXPECT_EQ(tokens.strings[1], "bc");
  EXPECT_EQ(tokens.strings[2], "");
  ASSERT_EQ(f->tensors().size(), 2u);
  const GgufTensorInfo* q = f->find_tensor("q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dims, (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(q->bytes, 68u);
  EXPECT_EQ(q->offset % 32, 0u);
  for (int i = 0; i < 68; ++i) ASSERT_EQ(f->tensor_data(*q)[i], i);
  float norm[3];
  std::memcpy(norm, f->tensor_data(*f->find_tensor("norm.weight")), 12);
  EXPECT_EQ(norm[2], 3.0f);
  // Wrong-typed reads name the key.
  try {
    f->get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
  }
  // The same bytes parse from memory.
  EXPECT_EQ(GgufFile::from_bytes(bytes, "mem")->tensors().size(), 2u);
  fs::remove_all(dir);
}

// Every prefix that cuts into the header or a tensor's data is refused (only the padding after
// the last tensor may go).
TEST(GgufBadModelFiles, EveryTruncationIsRefused) {
  const fs::path dir = testing::fresh_temp_dir("gguf_trunc");
  const std::string bytes = small_file(dir);
  auto whole = GgufFile::from_bytes(bytes, "whole");
  const GgufTensorInfo* last = whole->find_tensor("q.weight");
  const size_t end = static_cast<size_t>(whole->tensor_data(*last) - whole->mapping()->data()) + last->bytes;
  ASSERT_LE(end, bytes.size());
  for (size_t n = 0; n < end; ++n) {
    try {
      GgufFile::from_bytes(std::string_view(bytes).substr(0, n), "truncated");
      FAIL() << "a prefix of " << n << " of " << bytes.size() << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << n << ": " << e.what();
    }
  }
  fs::remove_all(dir);
}

// Builds GGUF bytes field by field, so single fields can be made hostile.
struct Bytes {
  std::string s;
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& str(const std::string& v) { return u64(v.size()).raw(v.data(), v.size()); }
  Bytes& raw(const void* p, size_t n) {
    s.append(static_cast<const char*>(p), n);
    return *this;
  }
  Bytes& pad(size_t alignment) {
    s.resize((s.size() + alignment - 1) / alignment * alignment, '\0');
    return *this;
  }
};

Bytes header(uint64_t tensors, uint64_t kvs) { return Bytes().raw("GGUF", 4).u32(3).u64(tensors).u64(kvs); }

// One F32 tensor "t" of `dims` at `offset`, with `data_bytes` bytes of data after the header.
std::string one_tensor(std::vector<uint64_t> dims, uint32_t type, uint64_t offset, size_t data_bytes) {
  Bytes b = header(1, 0).str("t").u32(static_cast<uint32_t>(dims.size()));
  for (uint64_t d : dims) b.u64(d);
  b.u32(type).u64(offset).pad(32);
  b.s.append(data_bytes, '\0');
  return b.s;
}

struct HostileCase {
  std::string name, bytes, needle;
};

std::vector<HostileCase> hostile_cases() {
  std::vector<HostileCase> c;
  c.push_back({"bad_magic", Bytes().raw("GGUX", 4).u32(3).u64(0).u64(0).s, "not a GGUF file"});
  c.push_back({"version_1", Bytes().raw("GGUF", 4).u32(1).u64(0).u64(0).s, "version 1"});
  c.push_back({"big_endian", Bytes().raw("GGUF", 4).u32(0x03000000).u64(0).u64(0).s, "big-endian"});
  c.push_back({"huge_tensor_count", header(uint64_t(1) << 60, 0).s, "tensor count"});
  c.push_back({"huge_kv_count", header(0, uint64_t(1) << 60).s, "metadata count"});
  c.push_back({"huge_string", header(0, 1).u64(uint64_t(1) << 62).raw(std::string(16, 'k').data(), 16).s, "claims"});
  c.push_back({"empty_key", header(0, 1).str("").u32(4).u32(1).s, "empty key"});
  c.push_back({"unknown_value_type", header(0, 1).str("k").u32(13).u32(1).s, "unknown value type"});
  c.push_back({"nested_array", header(0, 1).str("k").u32(9).u32(9).u64(1).s, "element type"});
  c.push_back({"huge_array", header(0, 1).str("k").u32(9).u32(6).u64(uint64_t(1) << 61).s, "more than the file holds"});
  c.push_back({"huge_string_array", header(0, 1).str("k").u32(9).u32(8).u64(uint64_t(1) << 61).s, "more than the file holds"});
  c.push_back({"duplicate_key", header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).s, "appears twice"});
  c.push_back({"alignment_not_power_of_two", header(0, 1).str("general.alignment").u32(4).u32(24).s, "power of two"});
  c.push_back({"alignment_zero", header(0, 1).str("general.alignment").u32(4).u32(0).s, "power of two"});
  c.push_back({"alignment_wrong_type", header(0, 1).str("general.alignment").u32(10).u64(32).s, "power of two"});
  c.push_back({"zero_dims", one_tensor({}, 0, 0, 0), "dimensions"});
  c.push_back({"five_dims", one_tensor({1, 1, 1, 1, 1}, 0, 0, 4), "dimensions"});
  c.push_back({"zero_dimension", one_tensor({4, 0}, 0, 0, 0), "out of range"});
  c.push_back({"absurd_elements", one_tensor({uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0, 0), "absurd"});
  c.push_back({"unknown_type", one_tensor({4}, 99, 0, 16), "unknown ggml type"});
  c.push_back({"retired_type", one_tensor({32}, 4, 0, 32), "unknown ggml type"});
  c.push_back({"partial_block", one_tensor({40, 2}, 8, 0, 96), "not whole Q8_0 blocks"});
  c.push_back({"misaligned_offset", one_tensor({4}, 0, 4, 64), "not aligned"});
  c.push_back({"past_the_end", one_tensor({64}, 0, 0, 100), "past the end"});
  c.push_back({"offset_past_the_end", one_tensor({4}, 0, uint64_t(1) << 62, 16), "past the end"});
  {
    Bytes b = header(2, 0);
    b.str("a").u32(1).u64(16).u32(0).u64(0);
    b.str("b").u32(1).u64(16).u32(0).u64(32);  // a is 64 bytes: b starts inside it
    b.pad(32).s.append(128, '\0');
    c.push_back({"overlapping_tensors", b.s, "overlap"});
  }
  {
    Bytes b = header(2, 0);
    b.str("a").u32(1).u64(4).u32(0).u64(0);
    b.str("a").u32(1).u64(4).u32(0).u64(32);
    b.pad(32).s.append(64, '\0');
    c.push_back({"duplicate_tensor", b.s, "appears twice"});
  }
  return c;
}

class GgufBadModelFiles : public ::testing::TestWithParam<HostileCase> {};

TEST_P(GgufBadModelFiles, RefusedWithAClearError) {
  const HostileCase& c = GetParam();
  try {
    GgufFile::from_bytes(c.bytes, c.name);
    FAIL() << c.name << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << c.name << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << "the message names the file: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, GgufBadModelFiles, ::testing::ValuesIn(hostile_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(GgufFile, WellFormedCornerCasesParse) {
  // No tensors, no metadata; and a 4-D tensor with a custom alignment.
  EXPECT_NO_THROW(GgufFile::from_bytes(header(0, 0).s, "empty"));
  Bytes b = header(1, 1).str("general.alignment").u32(4).u32(64);
  b.str("t").u32(4).u64(2).u64(1).u64(1).u64(2).u32(0).u64(0).pad(64);
  b.s.append(16, '\0');
  auto f = GgufFile::from_bytes(b.s, "aligned64");
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->tensors()[0].bytes, 16u);
}

}  // namespace
}  // namespace hearth
