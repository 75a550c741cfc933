// Packed codes interleaved across rows, for int8-activation kernels that broadcast x instead of
// loading it. A tile holds 16 rows; each 32-byte chunk of those rows' codes is stored as eight
// runs of 64 bytes, run j holding bytes 4j..4j+3 of row 0, then of row 1, ... of row 15. One
// 64-byte load is then 16 rows x 4 code bytes: the lanes of a vpdpbusd whose other operand is
// four bytes of x broadcast, so every lane sums one row. A block's dot products end as one
// vector of 16 rows' exact int32 sums: no horizontal sums, one convert-and-scale per 16 rows, and
// each weight vector serves every sequence in registers.
//
// Each (row, sequence) result is sum over blocks b, in order, of fma(float(dot_b), w_b * x_b):
// dot_b is exact, so the result does not depend on the tile, the sequences beside it or the
// kernel's shape. (The row-major kernels of quant_matvec_q8_*.cpp sum in another order.)
//
// load_model adds tiles beside a base's row-major codes where the CPU's best kernel set reads
// them (AVX-512 VNNI, AVX2; QuantizedMatrix::tiles, with_row_tiles), and every int8 product of
// such a matrix reads them.
// bench_row_tiles measures them against the row-major kernels (docs/performance.md).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "inference/quant/quant_kernels.h"

namespace hearth {

constexpr int64_t kTileRows = 16;
constexpr int64_t kTileChunkBytes = 32;  // of each row, per chunk
constexpr int64_t kTileRunBytes = 64;    // one run: 4 bytes of each of the 16 rows
// Rows of the kernel's widest pass for a decode step (4 tiles): callers split a product into
// row chunks of multiples of this, so no chunk ends in passes of single tiles.
constexpr int64_t kTilePassRows = 4 * kTileRows;

struct RowTiles {
  PackedView source;  // format and shape, and nf4's double-quantization groups
  int64_t tiles = 0, chunks_per_row = 0;
  std::vector<uint8_t> codes;  // tiles * chunks_per_row * 8 runs of 64 bytes
  // The block scales in the same order, [tile][block][16 rows] (rows past the last zero), so a
  // block's 16 scales are one load: int4 / int8 the fp16 bits, nf4 the int8 absmax codes (their
  // groups still those of the row-major index, row * blocks_per_row + block).
  std::vector<uint16_t> scales;
  std::vector<int8_t> absmax_codes;

  size_t bytes() const { return codes.size() + scales.size() * sizeof(uint16_t) + absmax_codes.size(); }
  const uint8_t* chunk(int64_t tile, int64_t c) const {
    return codes.data() + (tile * chunks_per_row + c) * (8 * kTileRunBytes);
  }
};

// How a format's blocks sit in a 32-byte chunk of a row: run j of a block (bytes 4j..4j+3)
// holds weights 4j..4j+3, in the low nibbles for the 4-bit formats, whose high nibbles hold the
// weights high_offset further on.
struct TileChunkLayout {
  int64_t blocks;       // per chunk
  int64_t runs;         // per block
  int64_t high_offset;  // 0: one byte per weight
};

constexpr TileChunkLayout tile_chunk_layout(QuantFormat f) {
  switch (f) {
    case QuantFormat::kNF4: return {1, 8, 32};
    case QuantFormat::kNF4_32: return {2, 4, 16};
    case QuantFormat::kInt4: return {2, 4, 16};
    default: return {1, 8, 0};  // int8 (GGUF formats never take the int8 kernels)
  }
}

// Source rows [r0, r1) of m's codes have been copied into the tiles and are not read again.
using RowsCopied = std::function<void(int64_t r0, int64_t r1)>;
// The tiles of m's packed codes and block scales (rows past the last are zero). rows_copied, if
// set, hears of each slice of rows (a few MB of codes) once it is copied, so a mapped source can
// let those pages go while the rest is tiled: the tied head of a quantized folder is otherwise
// resident twice at the end of its tiling.
RowTiles tile_rows(const PackedView& m, const RowsCopied& rows_copied = {});
// Byte i of row r's packed codes, read back from the tiles.
uint8_t tiled_code_byte(const RowTiles& t, int64_t r, int64_t i);
// Row r as floats (blocks_per_row * block of them) from the tiles alone, through the reference
// dequantizers: an embedding lookup of a table whose tiles serve as the tied head, so the
// row-major copy (a mapped file's pages) is never read again.
void dequant_tiled_row(const RowTiles& t, int64_t r, float* out);

// x rounded to int8 in blocks of the weight format's block size, in its natural order:
// q = round(x * 127 / absmax) per block (as Q8Activation), the block's scale and the
// accumulator's starting value (AVX-512: minus the weight bytes' offset times the block's sum
// of q; AVX2, whose weights are signed: none).
struct Q8Blocks {
  std::vector<int8_t> values;
  std::vector<int8_t> magnitudes;  // AVX2: |values|
  std::vector<float> scales;
  std::vector<int32_t> bias;  // AVX-512
};

// AVX-512 VNNI kernels (row_tiles_avx512.cpp); call only where cpu_supports_isa(kAvx512Vnni).
void quantize_x_blocks_avx512(const PackedView& m, const float* x_padded, Q8Blocks& out);
// ys[s][r] = sum_c W[r, c] * x_s[c] for the rows of tiles [t0, t1) (rows past m.rows are not
// written), every sequence bitwise what it gets alone.
void matmul_row_tiles_avx512(const RowTiles& w, const Q8Blocks* const* xs, int64_t seqs, float* const* ys, int64_t t0,
                             int64_t t1);

// AVX2 kernels (row_tiles_avx2.cpp), the same contract; call only where cpu_supports_isa(kAvx2).
void quantize_x_blocks_avx2(const PackedView& m, const float* x_padded, Q8Blocks& out);
void matmul_row_tiles_avx2(const RowTiles& w, const Q8Blocks* const* xs, int64_t seqs, float* const* ys, int64_t t0,
                           int64_t t1);

}  // namespace hearth
