// Row tiles (inference/quant/row_tiles.h): the layout holds every packed code byte, the AVX-512
// VNNI and AVX2 kernels over it are the product with x rounded to int8, every sequence bitwise
// what it gets alone, and every int8 product of a matrix carrying tiles reads them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "inference/quant/quant_matmul.h"
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

// A mapped source lets each slice of rows go once tile_rows has copied it (model_loader.cpp), so
// every row must be reported exactly once, in order, only after its bytes are in the tiles, and a
// matrix larger than one slice in several slices.
TEST(RowTiles, ReportEveryRowOnceAfterCopyingIt) {
  auto gen = make_generator(test::fresh_seed());
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{37, 70}, {9000, 1024}}) {
    QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), QuantFormat::kInt8);
    const PackedView v = m.view();
    std::vector<uint8_t> source(v.codes, v.codes + rows * v.row_bytes);
    PackedView scribbled = v;
    scribbled.codes = source.data();
    int64_t next = 0, slices = 0;
    const RowTiles t = tile_rows(scribbled, [&](int64_t r0, int64_t r1) {
      EXPECT_EQ(r0, next);
      EXPECT_GT(r1, r0);
      // A released page reads back from the file; here the copy is overwritten to prove the
      // tiles no longer need it.
      std::fill(source.begin() + r0 * v.row_bytes, source.begin() + r1 * v.row_bytes, uint8_t{0xA5});
      next = r1;
      ++slices;
    });
    EXPECT_EQ(next, rows);
    EXPECT_EQ(slices > 1, rows * v.row_bytes > (4 << 20)) << rows << " rows";
    int64_t wrong = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < v.row_bytes; ++i) wrong += tiled_code_byte(t, r, i) != v.codes[r * v.row_bytes + i];
    EXPECT_EQ(wrong, 0) << rows << "x" << cols;
  }
}

// Every ISA's row-tile kernel against the double reference of the int8-rounded product, and
// each sequence of a batch split between calls bitwise what it gets alone.
void expect_tile_kernel_matches_reference(KernelIsa isa, at::Generator& gen) {
  const QuantKernelSet& k = kernels_for(isa);
  ASSERT_NE(k.matmul_row_tiles, nullptr) << kernel_isa_name(isa);
  for (QuantFormat format : kTiledFormats) {
    for (auto [rows, cols] : kTiledShapes) {
      const std::string what = std::string(kernel_isa_name(isa)) + " " + quant_format_name(format) + " " +
                               std::to_string(rows) + "x" + std::to_string(cols);
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
        k.quantize_blocks(v, padded.data_ptr<float>(), q8[s]);
        alone.push_back(at::full({rows}, std::nanf("")));
        const Q8Blocks* one[] = {&q8[s]};
        float* y[] = {alone.back().data_ptr<float>()};
        k.matmul_row_tiles(t, one, 1, y, 0, t.tiles);
        at::Tensor ref = test::as_tensor(reference_matvec_q8(m, x.data_ptr<float>()));
        at::Tensor abs_ref = at::mv(test::weight_magnitude(m, reference_dequantize(m), kTiledTol), x.abs().to(at::kDouble));
        test::expect_close_to_reference(alone.back(), ref, abs_ref, kTiledTol, what + " alone");
        together.push_back(at::full({rows}, std::nanf("")));
        xs.push_back(&q8[s]);
        ys.push_back(together.back().data_ptr<float>());
      }
      // Two calls split between tiles, as threads would share them.
      const int64_t split = t.tiles / 2;
      k.matmul_row_tiles(t, xs.data(), kSeqs, ys.data(), 0, split);
      k.matmul_row_tiles(t, xs.data(), kSeqs, ys.data(), split, t.tiles);
      for (int64_t s = 0; s < kSeqs; ++s)
        EXPECT_TRUE(at::equal(together[s], alone[s]))
            << what << " sequence " << s << ": max difference " << (together[s] - alone[s]).abs().max().item<float>();
    }
  }
}

TEST(RowTiles, KernelsMatchDoubleReferenceAndBatchesBitwise) {
  if (test::row_tile_isas().empty()) GTEST_SKIP() << "row-tile kernels exist for AVX2 and AVX-512 VNNI only";
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (KernelIsa isa : test::row_tile_isas()) expect_tile_kernel_matches_reference(isa, gen);
}


// quant_matmul's three int8 paths over an [n, cols] x: one GEMV per row, the rows as one batch
// of decode steps, and the rows as a prompt.
struct ThreePaths {
  at::Tensor gemv, batch, prompt;
};
ThreePaths products_by_every_path(const QuantizedMatrix& m, const at::Tensor& x) {
  const int64_t n = x.size(0);
  ThreePaths out{at::empty({n, m.rows}), at::empty({n, m.rows}), {}};
  for (int64_t j = 0; j < n; ++j) out.gemv[j].copy_(quant_matmul(m, x.narrow(0, j, 1))[0]);
  quant_matvec_batch(m, x.data_ptr<float>(), n, out.batch.data_ptr<float>());
  PromptRowsScope prompt_rows;
  out.prompt = quant_matmul(m, x);
  return out;
}

// A matrix given the tiles of another matrix of its shape computes that other matrix's product
// on every path (so each reads the tiles, not the row-major codes), bitwise alike (the kernel's
// sums do not depend on the batch or the row chunks), with every ISA's tile kernels. With the
// portable kernels forced, which have none, the same calls read the row-major codes.
TEST(RowTiles, EveryInt8ProductOfATiledMatrixReadsItsTiles) {
  if (test::row_tile_isas().empty()) GTEST_SKIP() << "tiles are read by the AVX2 and AVX-512 VNNI kernels only";
  test::KernelGuard guard;
  set_num_threads(2);  // several row chunks, as in decode
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  constexpr int64_t kRows = 1000, kCols = 200, kSeqs = 20;  // 200: padded blocks; 20 rows: a prompt past the batch size
  for (QuantFormat format : kTiledFormats) {
    const std::string what = quant_format_name(format);
    const QuantizedMatrix own = quantize_matrix(test::random_weight(kRows, kCols, gen), format);
    const QuantizedMatrix other = quantize_matrix(test::random_weight(kRows, kCols, gen), format);
    QuantizedMatrix m = own;
    m.tiles = std::make_shared<const RowTiles>(tile_rows(other.view()));
    const at::Tensor x = at::randn({kSeqs, kCols}, gen);
    const at::Tensor other_abs = test::weight_magnitude(other, reference_dequantize(other), kTiledTol);
    for (KernelIsa isa : test::row_tile_isas()) {
      force_kernel_isa(isa);
      const std::string where = what + " " + kernel_isa_name(isa);
      const ThreePaths y = products_by_every_path(m, x);
      EXPECT_TRUE(at::equal(y.batch, y.gemv)) << where << ": max difference " << (y.batch - y.gemv).abs().max().item<float>();
      EXPECT_TRUE(at::equal(y.prompt, y.gemv)) << where << ": max difference " << (y.prompt - y.gemv).abs().max().item<float>();
      for (int64_t j = 0; j < kSeqs; ++j) {
        const at::Tensor ref = test::as_tensor(reference_matvec_q8(other, x[j].data_ptr<float>()));
        test::expect_close_to_reference(y.batch[j], ref, at::mv(other_abs, x[j].abs().to(at::kDouble)), kTiledTol,
                                        where + " row " + std::to_string(j));
      }
    }
    // The portable kernels multiply by x in float: the double reference of own's plain product.
    force_kernel_isa(KernelIsa::kScalar);
    const at::Tensor row_major = quant_matmul(m, x.narrow(0, 0, 1))[0];
    force_kernel_isa(KernelIsa::kAuto);
    const at::Tensor x0 = x[0].to(at::kDouble).contiguous();
    const at::Tensor own_abs = test::weight_magnitude(own, reference_dequantize(own), kTiledTol);
    test::expect_close_to_reference(row_major, test::as_tensor(reference_matvec(own, x0.data_ptr<double>())),
                                    at::mv(own_abs, x0.abs()), kTiledTol, what + " with the portable kernels forced");
  }
}

// A row read back from the tiles (a tied head's embedding lookups) is the row the row-major
// reference dequantizer gives, bitwise (the same per-weight float arithmetic), and within float
// rounding of the double reference (as the dequantizers' test: 1e-6 of the largest weight covers
// the block scale and the product each rounded to float once).
TEST(RowTiles, DequantizedRowsMatchTheRowMajorRowsAndTheDoubleReference) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kTiledFormats) {
    for (auto [rows, cols] : kTiledShapes) {
      const QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
      const PackedView v = m.view();
      const RowTiles t = tile_rows(v);
      const int64_t width = v.blocks_per_row * quant_block_size(format);
      std::vector<float> tiled(width), row_major(width);
      const double tol = 1e-6 * reference_dequantize(m).abs().max().item<double>();
      int64_t differ = 0, outside = 0;
      for (int64_t r = 0; r < rows; ++r) {
        dequant_tiled_row(t, r, tiled.data());
        scalar_kernels().dequant_tile(v, r, r + 1, 0, v.blocks_per_row, row_major.data(), width);
        for (int64_t c = 0; c < width; ++c) differ += std::memcmp(&tiled[c], &row_major[c], sizeof(float)) != 0;
        for (int64_t c = 0; c < cols; ++c) outside += std::abs(tiled[c] - reference_weight(m, r, c)) > tol;
      }
      EXPECT_EQ(differ, 0) << quant_format_name(format) << " " << rows << "x" << cols;
      EXPECT_EQ(outside, 0) << quant_format_name(format) << " " << rows << "x" << cols;
    }
  }
}

// with_row_tiles adds tiles exactly where the CPU's kernels read them, and shares the codes.
TEST(RowTiles, AreAddedOnlyWhereTheKernelsReadThem) {
  auto gen = make_generator(test::fresh_seed());
  auto m = std::make_shared<const QuantizedMatrix>(quantize_matrix(test::random_weight(40, 64, gen), QuantFormat::kNF4));
  const auto tiled = with_row_tiles(m);
  EXPECT_EQ(tiled->tiles != nullptr, test::row_tiles_expected());
  EXPECT_TRUE(tiled->codes.is_same(m->codes)) << "the row-major codes are shared, not copied";
  auto gguf = std::make_shared<const QuantizedMatrix>(quantize_matrix(test::random_weight(40, 64, gen), QuantFormat::kQ4_0));
  EXPECT_EQ(with_row_tiles(gguf)->tiles, nullptr) << "GGUF formats have no int8 kernels";
}

}  // namespace
}  // namespace hearth
