#include "core/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/error.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("hearth_core_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

void write_raw(const fs::path& path, const std::string& header, const std::string& data, uint64_t header_len) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out << header << data;
}

void expect_corrupt(const fs::path& path, const std::string& needle) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RoundTripsTensorsAndMetadataWithoutCopy) {
  auto path = temp_path("roundtrip.safetensors");
  at::Tensor a = at::randn({3, 5});
  at::Tensor b = at::randn({7}).to(at::kBFloat16);
  at::Tensor c = at::randint(0, 255, {4, 4}, at::kByte);
  SafetensorsWriter w;
  w.add("a", a);
  w.add("b", b);
  w.add("c", c);
  w.set_metadata("format", "pt");
  w.write(path);
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(at::equal(f->tensor("a"), a));
  EXPECT_TRUE(at::equal(f->tensor("b"), b));
  EXPECT_TRUE(at::equal(f->tensor("c"), c));
  EXPECT_EQ(f->metadata().at("format"), "pt");
  // The tensor views the mapping: its data pointer lies inside the mapped bytes.
  EXPECT_EQ(f->tensor("a").data_ptr(), static_cast<const void*>(f->bytes("a")));
}

// Dropping a quantized weight's source pages frees memory, never data: views read the same
// values afterwards (the pages come back from the file), and in-memory files keep theirs.
TEST(Safetensors, DroppedPagesReadBackUnchanged) {
  auto path = temp_path("drop_pages.safetensors");
  at::Tensor big = at::randn({512, 1024});  // 2 MiB: whole pages inside it
  SafetensorsWriter w;
  w.add("big", big);
  w.write(path);
  auto mapped = SafetensorsFile::open(path);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto in_memory = SafetensorsFile::from_bytes(bytes, "in-memory copy");
  for (const auto& f : {mapped, in_memory}) {
    at::Tensor view = f->tensor("big");
    ASSERT_TRUE(at::equal(view, big));
    f->drop_resident_pages("big");
    EXPECT_TRUE(at::equal(view, big)) << f->path();
    EXPECT_TRUE(at::equal(f->tensor("big"), big)) << f->path();
  }
}

TEST(Safetensors, RejectsTruncatedFile) {
  auto path = temp_path("trunc.safetensors");
  SafetensorsWriter w;
  w.add("x", at::randn({64}));
  w.write(path);
  fs::resize_file(path, fs::file_size(path) - 10);
  expect_corrupt(path, "truncated");
}

TEST(Safetensors, RejectsHeaderLengthPastEnd) {
  auto path = temp_path("hlen.safetensors");
  write_raw(path, "{}", "", 1u << 30);
  expect_corrupt(path, "past the end");
}

TEST(Safetensors, RejectsTinyFile) {
  auto path = temp_path("tiny.safetensors");
  std::ofstream(path) << "abc";
  expect_corrupt(path, "too short");
}

TEST(Safetensors, RejectsGarbageHeader) {
  auto path = temp_path("garbage.safetensors");
  std::string h = "{not json";
  write_raw(path, h, "", h.size());
  expect_corrupt(path, "not valid JSON");
}

// Found by fuzz_safetensors: a number past a double's range escaped as nlohmann's own exception.
TEST(Safetensors, RejectsNumberTooLargeForJson) {
  auto path = temp_path("huge_number.safetensors");
  std::string h = R"({"a":{"dtype":"F32","shape":[1e999],"data_offsets":[0,0]}})";
  write_raw(path, h, "", h.size());
  expect_corrupt(path, "number too large");
}

TEST(Safetensors, RejectsOverlappingRanges) {
  auto path = temp_path("overlap.safetensors");
  std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  write_raw(path, h, std::string(24, '\0'), h.size());
  expect_corrupt(path, "overlap");
}

TEST(Safetensors, RejectsUnknownDtype) {
  auto path = temp_path("dtype.safetensors");
  std::string h = R"({"a":{"dtype":"Q7","shape":[4],"data_offsets":[0,16]}})";
  write_raw(path, h, std::string(16, '\0'), h.size());
  expect_corrupt(path, "unknown safetensors dtype");
}

TEST(Safetensors, RejectsShapeThatDisagreesWithRange) {
  auto path = temp_path("shape.safetensors");
  std::string h = R"({"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})";
  write_raw(path, h, std::string(16, '\0'), h.size());
  expect_corrupt(path, "does not match");
}

TEST(Safetensors, RejectsOverflowingShape) {
  auto path = temp_path("overflow.safetensors");
  std::string h = R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}})";
  write_raw(path, h, std::string(16, '\0'), h.size());
  expect_corrupt(path, "too large");
}

TEST(Safetensors, RejectsRangePastDataSection) {
  auto path = temp_path("range.safetensors");
  std::string h = R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})";
  write_raw(path, h, std::string(16, '\0'), h.size());
  expect_corrupt(path, "past the data section");
}

TEST(Safetensors, MissingFileIsNotFound) {
  try {
    SafetensorsFile::open(temp_path("does-not-exist.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace hearth
