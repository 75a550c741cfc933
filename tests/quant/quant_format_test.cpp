#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "inference/quant/fp16.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_reference.h"
#include "inference/quant/quantized_matrix.h"
#include "quant_test_util.h"

namespace hearth {
namespace {

TEST(QuantFormat, ParsesNamesAndRejectsUnknown) {
  EXPECT_EQ(parse_quant_format("nf4"), QuantFormat::kNF4);
  EXPECT_EQ(parse_quant_format("nf4-32"), QuantFormat::kNF4_32);
  EXPECT_EQ(parse_quant_format("int4"), QuantFormat::kInt4);
  EXPECT_EQ(parse_quant_format("int8"), QuantFormat::kInt8);
  for (QuantFormat f : {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8}) {
    EXPECT_EQ(parse_quant_format(quant_format_name(f)), f);
  }
  try {
    parse_quant_format("q4_k");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("q4_k"), std::string::npos);
  }
}

TEST(Nf4Format, TableIsBitsandbytesNf4) {
  const double expected[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                               -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                               0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                               0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(kNF4Table[i], static_cast<float>(expected[i])) << i;
}

TEST(Nf4Format, TableValuesQuantizeToTheirOwnCodesInTheDocumentedLayout) {
  // 64 weights cycling through the table values times 2.5: a single block, so the double
  // quantization reconstructs its absmax exactly and every code must come back as written.
  at::Tensor w = at::empty({1, 64});
  for (int i = 0; i < 64; ++i) w[0][i] = kNF4Table[(i * 7) % 16] * 2.5f;
  QuantizedMatrix m = quantize_matrix(w, QuantFormat::kNF4);
  const uint8_t* q = m.codes.data_ptr<uint8_t>();
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(q[i] & 0x0F, (i * 7) % 16) << i;
    EXPECT_EQ(q[i] >> 4, ((i + 32) * 7) % 16) << i;
  }
  EXPECT_TRUE(at::equal(dequantize_matrix(m), w));
}

TEST(Nf4Format, Nf4x32BlocksHoldHalfAsManyWeightsInTheDocumentedLayout) {
  // One 32-weight block: byte i holds weight i (low nibble) and weight i + 16 (high).
  at::Tensor w = at::empty({1, 32});
  for (int i = 0; i < 32; ++i) w[0][i] = kNF4Table[(i * 7) % 16] * 2.5f;
  QuantizedMatrix m = quantize_matrix(w, QuantFormat::kNF4_32);
  ASSERT_EQ(m.codes.sizes(), (std::vector<int64_t>{1, 16}));
  const uint8_t* q = m.codes.data_ptr<uint8_t>();
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(q[i] & 0x0F, (i * 7) % 16) << i;
    EXPECT_EQ(q[i] >> 4, ((i + 16) * 7) % 16) << i;
  }
  EXPECT_TRUE(at::equal(dequantize_matrix(m), w));
  // A 64-wide row is two blocks with an absmax each, where nf4 has one.
  EXPECT_EQ(quantize_matrix(at::randn({3, 64}), QuantFormat::kNF4_32).absmax_codes.numel(), 6);
  EXPECT_EQ(quantize_matrix(at::randn({3, 64}), QuantFormat::kNF4).absmax_codes.numel(), 3);
}

TEST(Nf4Format, NearestCodeRoundsToClosestValue) {
  for (int i = 0; i < 16; ++i) EXPECT_EQ(nf4_nearest_code(kNF4Table[i]), i);
  EXPECT_EQ(nf4_nearest_code(0.03f), 7);
  EXPECT_EQ(nf4_nearest_code(0.05f), 8);
  EXPECT_EQ(nf4_nearest_code(-2.0f), 0);
  EXPECT_EQ(nf4_nearest_code(2.0f), 15);
}

TEST(Nf4Format, DoubleQuantizedAbsmaxIsWithinHalfAStep) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  const int64_t n = 1000;  // four groups, the last one partial
  at::Tensor a = at::rand({n}, gen) * 3.0 + 0.01;
  std::vector<int8_t> codes(n);
  std::vector<float> scale(4), offset(4);
  nf4_quantize_absmax(a.data_ptr<float>(), n, codes.data(), scale.data(), offset.data());
  for (int64_t i = 0; i < n; ++i) {
    const float ai = a[i].item<float>();
    const float err = std::fabs(nf4_absmax(codes.data(), scale.data(), offset.data(), i) - ai);
    EXPECT_LE(err, 0.5f * scale[i / 256] * 1.0001f + 1e-6f * ai) << i;
    EXPECT_LE(std::fabs(scale[i / 256]), 3.0f / 127.0f * 1.0001f);  // spread <= range of the data
  }
}

// Max |w - dequant(w)| per block must stay under the format's bound.
void expect_round_trip_bound(QuantFormat format, int64_t rows, int64_t cols) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(std::string(quant_format_name(format)) + " seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  at::Tensor w = test::random_weight(rows, cols, gen);
  QuantizedMatrix m = quantize_matrix(w, format);
  at::Tensor d = dequantize_matrix(m);
  ASSERT_EQ(d.sizes(), w.sizes());
  const PackedView v = m.view();
  const int64_t bs = m.block_size();
  std::vector<float> scales(v.blocks_per_row);
  for (int64_t r = 0; r < rows; ++r) {
    row_block_scales(v, r, 0, v.blocks_per_row, scales.data());
    for (int64_t b = 0; b < v.blocks_per_row; ++b) {
      const int64_t c0 = b * bs, c1 = std::min(cols, c0 + bs);
      const float absmax = w[r].slice(0, c0, c1).abs().max().item<float>();
      const float err = (w[r].slice(0, c0, c1) - d[r].slice(0, c0, c1)).abs().max().item<float>();
      const float s = scales[b];
      float bound = 0.0f;
      switch (format) {
        // Half the widest gap of the table (0.304 between -1 and -0.696), plus clipping when
        // the reconstructed absmax is below the true one.
        case QuantFormat::kNF4:
        case QuantFormat::kNF4_32: bound = 0.152f * std::max(absmax, s) + std::fabs(absmax - s); break;
        case QuantFormat::kInt4:
        case QuantFormat::kInt8: bound = 0.5f * std::fabs(s); break;  // int4 scales may be negative
        default: FAIL() << "GGUF formats are checked in gguf_blocks_test.cpp";
      }
      ASSERT_LE(err, bound * 1.0001f + 1e-7f) << "row " << r << " block " << b;
    }
  }
}

// Relative Frobenius error on Gaussian weights, a regression guard on quality (measured:
// nf4 ~0.092, nf4-32 ~0.087, int4 ~0.085-0.097, int8 ~0.0054).
TEST(QuantizedMatrix, GaussianRelativeErrorPerFormat) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  at::Tensor w = at::randn({256, 512}, gen);
  const std::pair<QuantFormat, double> limits[] = {
      {QuantFormat::kNF4, 0.10}, {QuantFormat::kNF4_32, 0.09}, {QuantFormat::kInt4, 0.11}, {QuantFormat::kInt8, 0.006}};
  for (auto [format, limit] : limits) {
    const double rel = ((w - dequantize_matrix(quantize_matrix(w, format))).norm() / w.norm()).item<double>();
    std::printf("%s relative error %.4f\n", quant_format_name(format), rel);
    EXPECT_LT(rel, limit) << quant_format_name(format);
  }
}

TEST(QuantizedMatrix, RoundTripErrorWithinBoundNf4) { expect_round_trip_bound(QuantFormat::kNF4, 37, 200); }
TEST(QuantizedMatrix, RoundTripErrorWithinBoundNf4x32) { expect_round_trip_bound(QuantFormat::kNF4_32, 37, 200); }
TEST(QuantizedMatrix, RoundTripErrorWithinBoundInt4) { expect_round_trip_bound(QuantFormat::kInt4, 37, 70); }
TEST(QuantizedMatrix, RoundTripErrorWithinBoundInt8) { expect_round_trip_bound(QuantFormat::kInt8, 129, 33); }

TEST(Int4Format, ExactCodesForValuesOnTheGrid) {
  // absmax 3.5 gives the fp16-exact scale 0.5, so w = q * 0.5 must store code q + 8.
  at::Tensor w = at::empty({1, 32});
  for (int i = 0; i < 32; ++i) w[0][i] = static_cast<float>(i % 15 - 7) * 0.5f;
  QuantizedMatrix m = quantize_matrix(w, QuantFormat::kInt4);
  EXPECT_EQ(fp16_to_float(reinterpret_cast<const uint16_t*>(m.scales.data_ptr())[0]), 0.5f);
  const uint8_t* q = m.codes.data_ptr<uint8_t>();
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(q[i] & 0x0F, i % 15 - 7 + 8) << i;
    EXPECT_EQ(q[i] >> 4, (i + 16) % 15 - 7 + 8) << i;
  }
  EXPECT_TRUE(at::equal(dequantize_matrix(m), w));
}

TEST(Int8Format, ExactCodesForValuesOnTheGrid) {
  at::Tensor w = at::empty({2, 40});
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 40; ++i) w[r][i] = static_cast<float>((i * 37 + r) % 255 - 127) * 0.25f;
  }
  w[0][0] = 127 * 0.25f;  // each block reaches 127 so the scale is exactly 0.25
  w[0][32] = w[1][0] = w[1][32] = -127 * 0.25f;
  QuantizedMatrix m = quantize_matrix(w, QuantFormat::kInt8);
  const int8_t* q = m.codes.data_ptr<int8_t>();
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 40; ++i) EXPECT_EQ(q[r * 64 + i], static_cast<int>(w[r][i].item<float>() * 4)) << r << "," << i;
    for (int i = 40; i < 64; ++i) EXPECT_EQ(q[r * 64 + i], 0);  // padding
  }
  EXPECT_TRUE(at::equal(dequantize_matrix(m), w));
}

TEST(QuantizedMatrix, BitsPerWeightCountScales) {
  at::Tensor w = at::randn({512, 896});  // 7168 blocks: 28 whole groups of 256
  QuantizedMatrix nf4 = quantize_matrix(w, QuantFormat::kNF4);
  // 4 bits + 8 bits per 64 + 64 bits per 64 * 256 weights.
  EXPECT_NEAR(nf4.bits_per_weight(), 4.0 + 8.0 / 64 + 64.0 / (64 * 256), 1e-3);
  // nf4-32: 14336 blocks, 56 groups: 4 bits + 8 bits per 32 + 64 bits per 32 * 256 weights.
  EXPECT_NEAR(quantize_matrix(w, QuantFormat::kNF4_32).bits_per_weight(), 4.0 + 8.0 / 32 + 64.0 / (32 * 256), 1e-9);
  EXPECT_DOUBLE_EQ(quantize_matrix(w, QuantFormat::kInt4).bits_per_weight(), 4.5);
  EXPECT_DOUBLE_EQ(quantize_matrix(w, QuantFormat::kInt8).bits_per_weight(), 8.5);
  EXPECT_EQ(quantize_matrix(w, QuantFormat::kInt4).storage_bytes(), size_t(512) * 896 / 2 + 512 * 28 * 2);
}

TEST(QuantizedMatrix, RejectsNonFiniteOrEmptyWeights) {
  at::Tensor w = at::randn({4, 8});
  w[1][2] = std::nanf("");
  EXPECT_THROW(quantize_matrix(w, QuantFormat::kNF4), Error);
  EXPECT_THROW(quantize_matrix(at::randn({0, 8}), QuantFormat::kInt8), Error);
  EXPECT_THROW(quantize_matrix(at::randn({8}), QuantFormat::kInt8), Error);
}

TEST(QuantizedMatrix, AcceptsBf16AndHalfWeights) {
  at::Tensor w = at::randn({9, 50});
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    at::Tensor wl = w.to(dtype);
    QuantizedMatrix m = quantize_matrix(wl, QuantFormat::kInt8);
    EXPECT_TRUE(at::equal(dequantize_matrix(m), dequantize_matrix(quantize_matrix(wl.to(at::kFloat), QuantFormat::kInt8))));
  }
}

}  // namespace
}  // namespace hearth
