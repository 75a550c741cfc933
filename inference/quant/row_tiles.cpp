#include "inference/quant/row_tiles.h"

#include <algorithm>
#include <cstring>

#include "inference/quant/fp16.h"
#include "inference/quant/nf4_format.h"

namespace hearth {
namespace {

// Where byte i of row r lives in the tiles (row_bytes is a multiple of 16, so runs of four bytes
// never cross a row's end).
int64_t tile_offset(const RowTiles& t, int64_t r, int64_t i) {
  const int64_t chunk = (r / kTileRows) * t.chunks_per_row + i / kTileChunkBytes;
  const int64_t run = (i % kTileChunkBytes) / 4;
  return chunk * 8 * kTileRunBytes + run * kTileRunBytes + (r % kTileRows) * 4 + i % 4;
}

// Where row r's block b scale lives in the tiles: [tile][block][16 rows].
int64_t tile_scale_index(int64_t blocks_per_row, int64_t r, int64_t b) {
  return ((r / kTileRows) * blocks_per_row + b) * kTileRows + r % kTileRows;
}

}  // namespace

RowTiles tile_rows(const PackedView& m, const RowsCopied& rows_copied) {
  RowTiles t;
  t.source = m;
  t.tiles = (m.rows + kTileRows - 1) / kTileRows;
  t.chunks_per_row = (m.row_bytes + kTileChunkBytes - 1) / kTileChunkBytes;
  t.codes.assign(t.tiles * t.chunks_per_row * 8 * kTileRunBytes, 0);
  // Row by row, each row's bytes four at a time to consecutive runs: one pass over the source.
  constexpr int64_t kSliceBytes = 4 << 20;
  const int64_t slice_rows = std::max<int64_t>(1, kSliceBytes / std::max<int64_t>(1, m.row_bytes));
  for (int64_t r0 = 0; r0 < m.rows; r0 += slice_rows) {
    const int64_t r1 = std::min(m.rows, r0 + slice_rows);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = m.codes + r * m.row_bytes;
      uint8_t* lane = t.codes.data() + tile_offset(t, r, 0);  // byte i then sits (i / 4) runs further on
      for (int64_t i = 0; i < m.row_bytes; i += 4) std::memcpy(lane + (i / 4) * kTileRunBytes, row + i, 4);
    }
    if (rows_copied) rows_copied(r0, r1);
  }
  const int64_t nb = m.blocks_per_row, tiled_blocks = t.tiles * nb * kTileRows;
  const bool nf4 = is_nf4_format(m.format);
  if (nf4) t.absmax_codes.assign(tiled_blocks, 0);
  else t.scales.assign(tiled_blocks, 0);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t to = tile_scale_index(nb, r, b), from = r * nb + b;
      if (nf4) t.absmax_codes[to] = m.absmax_codes[from];
      else t.scales[to] = m.scales[from];
    }
  }
  return t;
}

uint8_t tiled_code_byte(const RowTiles& t, int64_t r, int64_t i) { return t.codes[tile_offset(t, r, i)]; }

void dequant_tiled_row(const RowTiles& t, int64_t r, float* out) {
  const PackedView& m = t.source;
  const int64_t nb = m.blocks_per_row;
  std::vector<uint8_t> codes(m.row_bytes);
  const uint8_t* lane = t.codes.data() + tile_offset(t, r, 0);
  for (int64_t i = 0; i < m.row_bytes; i += 4) std::memcpy(codes.data() + i, lane + (i / 4) * kTileRunBytes, 4);
  std::vector<float> scales(nb);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t at = tile_scale_index(nb, r, b);
    scales[b] = is_nf4_format(m.format) ? nf4_absmax_of(t.absmax_codes[at], m.absmax_scale, m.absmax_offset, r * nb + b)
                                        : fp16_to_float(t.scales[at]);
  }
  dequant_row_blocks_scalar(m.format, codes.data(), scales.data(), nb, out);
}

}  // namespace hearth
