#include "inference/quant/quant_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/error.h"
#include "quant_test_util.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("hearth_quant_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

// Reading must fail with kCorruptFile and a message naming `needle`.
void expect_corrupt(const fs::path& path, QuantFormat format, int64_t rows, int64_t cols, const std::string& needle) {
  try {
    auto f = SafetensorsFile::open(path);
    read_quantized(*f, "w", format, rows, cols);
    FAIL() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QuantIo, RoundTripsEveryFormatAsZeroCopyViews) {
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8}) {
    QuantizedMatrix m = quantize_matrix(at::randn({33, 128}), format);
    auto path = temp_path(std::string("rt_") + quant_format_name(format) + ".safetensors");
    SafetensorsWriter w;
    write_quantized(w, "w", m);
    w.write(path);
    auto f = SafetensorsFile::open(path);
    QuantizedMatrix r = read_quantized(*f, "w", format, 33, 128);
    EXPECT_EQ(r.codes.data_ptr(), static_cast<const void*>(f->bytes("w.codes")));
    EXPECT_EQ(r.storage_bytes(), m.storage_bytes());
    EXPECT_TRUE(at::equal(dequantize_matrix(r), dequantize_matrix(m))) << quant_format_name(format);
  }
}

// A width that is not whole blocks: the file holds the last block's codes without its padding
// (odd and even tails, tails shorter and longer than half a block), and reading pads them back
// to exactly the bytes quantize_matrix wrote.
TEST(QuantIo, PartialLastBlocksAreStoredUnpaddedAndReadBackBitwise) {
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8}) {
    for (int64_t cols : {100, 172, 12, 45, 7}) {
      const QuantizedMatrix m = quantize_matrix(at::randn({9, cols}), format);
      const std::string what = std::string(quant_format_name(format)) + " x " + std::to_string(cols);
      auto path = temp_path("tail_" + what + ".safetensors");
      SafetensorsWriter w;
      write_quantized(w, "w", m);
      w.write(path);
      auto f = SafetensorsFile::open(path);
      const int64_t bs = quant_block_size(format), bb = quant_block_bytes(format), tail = cols % bs;
      const int64_t tail_bytes = format == QuantFormat::kInt8 ? tail : (tail + 1) / 2;
      EXPECT_EQ(f->tensor("w.codes").size(1), (cols / bs) * bb + tail_bytes) << what;
      EXPECT_LT(stored_bytes(m), int64_t(m.storage_bytes())) << what;
      const QuantizedMatrix r = read_quantized(*f, "w", format, 9, cols);
      EXPECT_TRUE(at::equal(r.codes, m.codes)) << what;
    }
  }
}

TEST(QuantIo, RejectsScalesOfTheWrongLength) {
  QuantizedMatrix m = quantize_matrix(at::randn({10, 64}), QuantFormat::kInt4);
  m.scales = m.scales.narrow(0, 0, 9).contiguous();
  SafetensorsWriter w;
  w.add("w.codes", m.codes);
  w.add("w.scales", m.scales);
  auto path = temp_path("short_scales.safetensors");
  w.write(path);
  expect_corrupt(path, QuantFormat::kInt4, 10, 64, "w.scales");
}

TEST(QuantIo, RejectsWrongDtype) {
  QuantizedMatrix m = quantize_matrix(at::randn({10, 64}), QuantFormat::kInt8);
  SafetensorsWriter w;
  w.add("w.codes", m.codes);
  w.add("w.scales", m.scales.to(at::kFloat));
  auto path = temp_path("f32_scales.safetensors");
  w.write(path);
  expect_corrupt(path, QuantFormat::kInt8, 10, 64, "w.scales");
}

TEST(QuantIo, RejectsMissingPartAndMismatchedShapeOrFormat) {
  QuantizedMatrix m = quantize_matrix(at::randn({10, 130}), QuantFormat::kNF4);
  auto path = temp_path("nf4.safetensors");
  SafetensorsWriter w;
  write_quantized(w, "w", m);
  w.write(path);
  expect_corrupt(path, QuantFormat::kNF4, 10, 200, "w.codes");         // wrong cols
  expect_corrupt(path, QuantFormat::kNF4, 11, 130, "w.codes");         // wrong rows
  expect_corrupt(path, QuantFormat::kInt4, 10, 130, "w.scales");       // stored as another format
  SafetensorsWriter partial;
  partial.add("w.codes", m.codes);
  partial.add("w.absmax_codes", m.absmax_codes);
  partial.add("w.absmax_scale", m.absmax_scale);
  auto partial_path = temp_path("nf4_partial.safetensors");
  partial.write(partial_path);
  expect_corrupt(partial_path, QuantFormat::kNF4, 10, 130, "w.absmax_offset");
}

TEST(QuantIo, TruncatedFileFailsClearly) {
  QuantizedMatrix m = quantize_matrix(at::randn({16, 64}), QuantFormat::kNF4);
  auto path = temp_path("trunc.safetensors");
  SafetensorsWriter w;
  write_quantized(w, "w", m);
  w.write(path);
  fs::resize_file(path, fs::file_size(path) - 100);
  try {
    auto f = SafetensorsFile::open(path);
    read_quantized(*f, "w", QuantFormat::kNF4, 16, 64);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hearth
