// Row tiles (inference/quant/row_tiles.h): the layout holds every packed code byte, and the
// AVX-512 VNNI kernel over it is the product with x rounded to int8, every sequence bitwise what
// it gets alone.
#include <gtest/gtest.h>

#include <cmath>

#include "inference/quant/quant_reference.h"
#include "inference/quant/row_tiles.h"
#include "quant_test_util.h"

namespace hearth {
namespace {

constexpr QuantFormat kTiledFormats[] = {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8};
// Rows that fill less than a tile, exactly one, several with a short last; columns that are not
// multiples of the block (32 or 64) or of a chunk (32 code bytes: an odd block count for nf4-32).
// nf4's tiles span several double-quantization groups from 33 x 600 on; 20 x 16000 has rows so long
// (250 and 500 blocks) that each lane's group is gathered instead of permuted.
const std::vector<std::pair<int64_t, int64_t>> kTiledShapes = {{1, 33},     {16, 64},   {37, 70},  {129, 200},
                                                               {300, 97},   {33, 600},  {20, 16000}};

// As the row-major int8 kernels' test (quant_kernels_test.cpp): float accumulation error relative
// to sum |W| |x|; a wrong run, nibble or offset is off by orders of magnitude more.
constexpr double kTiledTol = 4e-5;

TEST(RowTiles, HoldEveryCodeByteOfEveryRow) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kTiledFormats) {
    for (auto [rows, cols] : kTiledShapes) {
      QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
      const PackedView v = m.view();
      const RowTiles t = tile_rows(v);
      EXPECT_EQ(t.tiles, (rows + 15) / 16);
      int64_t wrong = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < v.row_bytes; ++i) wrong += tiled_code_byte(t, r, i) != v.codes[r * v.row_bytes + i];
      EXPECT_EQ(wrong, 0) << quant_format_name(format) << " " << rows << "x" << cols;
    }
  }
}

TEST(RowTiles, Avx512KernelMatchesDoubleReferenceAndBatchesBitwise) {
  if (!cpu_supports_isa(KernelIsa::kAvx512Vnni)) GTEST_SKIP() << "the row-tile kernel exists for AVX-512 VNNI only";
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kTiledFormats) {
    for (auto [rows, cols] : kTiledShapes) {
      const std::string what = std::string(quant_format_name(format)) + " " + std::to_string(rows) + "x" + std::to_string(cols);
      QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
      const PackedView v = m.view();
      const RowTiles t = tile_rows(v);
      constexpr int64_t kSeqs = 15;  // a pass of eight, then chunks of four and three
      std::vector<Q8Blocks> q8(kSeqs);
      std::vector<at::Tensor> alone, together;
      std::vector<const Q8Blocks*> xs;
      std::vector<float*> ys;
      for (int64_t s = 0; s < kSeqs; ++s) {
        at::Tensor x = at::randn({cols}, gen) * (s + 1);  // differently scaled sequences
        at::Tensor padded = at::zeros({m.padded_cols()});
        padded.narrow(0, 0, cols).copy_(x);
        quantize_x_blocks_avx512(v, padded.data_ptr<float>(), q8[s]);
        alone.push_back(at::full({rows}, std::nanf("")));
        const Q8Blocks* one[] = {&q8[s]};
        float* y[] = {alone.back().data_ptr<float>()};
        matmul_row_tiles_avx512(t, one, 1, y, 0, t.tiles);
        at::Tensor ref = test::as_tensor(reference_matvec_q8(m, x.data_ptr<float>()));
        at::Tensor abs_ref = at::mv(test::weight_magnitude(m, reference_dequantize(m), kTiledTol), x.abs().to(at::kDouble));
        test::expect_close_to_reference(alone.back(), ref, abs_ref, kTiledTol, what + " alone");
        together.push_back(at::full({rows}, std::nanf("")));
        xs.push_back(&q8[s]);
        ys.push_back(together.back().data_ptr<float>());
      }
      // Two calls split between tiles, as threads would share them.
      const int64_t split = t.tiles / 2;
      matmul_row_tiles_avx512(t, xs.data(), kSeqs, ys.data(), 0, split);
      matmul_row_tiles_avx512(t, xs.data(), kSeqs, ys.data(), split, t.tiles);
      for (int64_t s = 0; s < kSeqs; ++s)
        EXPECT_TRUE(at::equal(together[s], alone[s]))
            << what << " sequence " << s << ": max difference " << (together[s] - alone[s]).abs().max().item<float>();
    }
  }
}

}  // namespace
}  // namespace hearth
