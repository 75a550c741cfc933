// The row-tile kernels (row_tiles.h) for AVX-512 VNNI. Each weight byte is unsigned as in
// quant_matvec_q8_avx512.cpp (nf4: its int8 table value + 128; int4: the code; int8: the value
// with its sign bit flipped); x stays signed and is broadcast four bytes at a time, and the
// weights' offset times the block's sum of x is the accumulator's starting value.
// GCC 12 warns inside its own AVX-512 intrinsics (their undefined-vector placeholders).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "inference/quant/int8_kernels_avx512.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/row_tiles.h"
#include "inference/quant/seq_chunks.h"

namespace hearth {
namespace {

// What the unsigned weight byte adds to the signed weight.
constexpr int32_t weight_byte_offset(QuantFormat f) { return f == QuantFormat::kInt4 ? 8 : 128; }

// Tiles are read in order; this far ahead the hardware prefetcher alone falls behind.
constexpr int64_t kPrefetchBytes = 2048;

__m512i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One run of 16 rows x 4 code bytes as unsigned weight bytes: lo, and for the 4-bit formats hi.
template <QuantFormat F>
inline void unpack_run(const uint8_t* p, __m512i table, __m512i& lo, __m512i& hi) {
  const __m512i codes = _mm512_loadu_si512(p);
  if constexpr (F == QuantFormat::kInt8) {
    lo = _mm512_xor_si512(codes, _mm512_set1_epi8(static_cast<char>(0x80)));
  } else {
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    lo = _mm512_and_si512(codes, nibble);
    hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nibble);
    if constexpr (is_nf4_format(F)) {
      lo = _mm512_shuffle_epi8(table, lo);
      hi = _mm512_shuffle_epi8(table, hi);
    }
  }
}

// The scale and offset of each lane's double-quantization group. The 16 rows' blocks b lie
// blocks_per_row apart in row order, so they span at most 15 * blocks_per_row / 256 + 2 consecutive
// groups: when that is at most 16, two loads and two permutes instead of two gathers.
inline void lane_groups(const PackedView& m, __m512i block_index, int64_t first_block, __mmask16 valid, __m512& scale,
                        __m512& offset) {
  static_assert(kNF4AbsmaxGroup == 256, "the group index is the block index shifted by 8");
  const __m512i group = _mm512_srli_epi32(block_index, 8);
  if (15 * m.blocks_per_row <= 14 * kNF4AbsmaxGroup) {
    const int64_t first_group = first_block / kNF4AbsmaxGroup;
    const int64_t groups = (m.rows * m.blocks_per_row + kNF4AbsmaxGroup - 1) / kNF4AbsmaxGroup;
    const __mmask16 present = static_cast<__mmask16>(groups - first_group >= 16 ? 0xFFFF : (1u << (groups - first_group)) - 1);
    const __m512i local = _mm512_sub_epi32(group, _mm512_set1_epi32(static_cast<int32_t>(first_group)));
    scale = _mm512_maskz_mov_ps(valid, _mm512_permutexvar_ps(local, _mm512_maskz_loadu_ps(present, m.absmax_scale + first_group)));
    offset = _mm512_maskz_mov_ps(valid, _mm512_permutexvar_ps(local, _mm512_maskz_loadu_ps(present, m.absmax_offset + first_group)));
  } else {
    scale = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, group, m.absmax_scale, 4);
    offset = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, group, m.absmax_offset, 4);
  }
}

// The weight scales of block b of a tile's 16 rows (rows past the last: zero).
template <QuantFormat F>
inline __m512 tile_block_scales(const RowTiles& w, int64_t tile, int64_t b, __m512i lane_first_blocks) {
  const PackedView& m = w.source;
  const int64_t at = (tile * m.blocks_per_row + b) * kTileRows;
  if constexpr (is_nf4_format(F)) {
    const int64_t rows_left = m.rows - tile * kTileRows;
    const __mmask16 valid = rows_left >= kTileRows ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << rows_left) - 1);
    const int64_t first_block = tile * kTileRows * m.blocks_per_row + b;  // row order index of lane 0's block
    const __m512i block_index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(first_block)), lane_first_blocks);
    __m512 scale, offset;
    lane_groups(m, block_index, first_block, valid, scale, offset);
    const __m512 codes = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.absmax_codes.data() + at))));
    // Fused, as GCC contracts a multiply and add here anyway (-mfma): the portable nf4_absmax
    // rounds twice, so its scales may differ in the last bit; results are compared across
    // paths with tolerances, and bitwise only within this one.
    return _mm512_fmadd_ps(codes, scale, offset);
  } else {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.scales.data() + at)));
  }
}

// kTiles tiles from `tile` on against kSeqs sequences. Per block: the dot products of every
// (tile, sequence) from its starting value, each run unpacked once for all the sequences and
// each x broadcast once for all the tiles; then one convert and fused add per 16 rows. With one
// or two sequences the high nibbles sum into accumulators of their own (added, exactly, at the
// block's end): otherwise too few chains of dependent vpdpbusd hide their latency.
template <QuantFormat F, int kTiles, int kSeqs>
void tile_pass(const RowTiles& w, const Q8Blocks* const* xs, float* const* ys, int64_t tile) {
  constexpr TileChunkLayout L = tile_chunk_layout(F);
  constexpr bool kSplitHigh = L.high_offset != 0 && kSeqs <= 2;
  const int64_t nb = w.source.blocks_per_row, block = quant_block_size(F);
  const __m512i table = nf4_u8_table();
  const __m512i lane_first_blocks = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                       _mm512_set1_epi32(static_cast<int32_t>(nb)));
  // The float sums live in L1, read and written once per block: kept in registers beside the
  // kTiles x kSeqs integer sums they left too few of the 32 for the runs, whose loop then carried
  // its sums through register copies and stack spills.
  alignas(64) float acc[kTiles][kSeqs][kTileRows] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t chunk = b / L.blocks, first_run = (b % L.blocks) * L.runs;
    __m512i dot[kTiles][kSeqs], dot_high[kTiles][kSeqs];
#pragma GCC unroll 16
    for (int s = 0; s < kSeqs; ++s)
#pragma GCC unroll 16
      for (int t = 0; t < kTiles; ++t) {
        dot[t][s] = _mm512_set1_epi32(xs[s]->bias[b]);
        dot_high[t][s] = _mm512_setzero_si512();
      }
#pragma GCC unroll 8
    for (int64_t j = 0; j < L.runs; ++j) {
      __m512i lo[kTiles], hi[kTiles];
#pragma GCC unroll 16
      for (int t = 0; t < kTiles; ++t) {
        const uint8_t* p = w.chunk(tile + t, chunk) + (first_run + j) * kTileRunBytes;
        _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
        unpack_run<F>(p, table, lo[t], hi[t]);
      }
#pragma GCC unroll 16
      for (int s = 0; s < kSeqs; ++s) {
        const int8_t* xv = xs[s]->values.data() + b * block + 4 * j;
        const __m512i x_lo = broadcast4(xv);
#pragma GCC unroll 16
        for (int t = 0; t < kTiles; ++t) dot[t][s] = _mm512_dpbusd_epi32(dot[t][s], lo[t], x_lo);
        if constexpr (L.high_offset != 0) {
          const __m512i x_hi = broadcast4(xv + L.high_offset);
#pragma GCC unroll 16
          for (int t = 0; t < kTiles; ++t) {
            __m512i& into = kSplitHigh ? dot_high[t][s] : dot[t][s];
            into = _mm512_dpbusd_epi32(into, hi[t], x_hi);
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int t = 0; t < kTiles; ++t) {
      const __m512 ws = tile_block_scales<F>(w, tile + t, b, lane_first_blocks);
#pragma GCC unroll 16
      for (int s = 0; s < kSeqs; ++s) {
        const __m512i sum = kSplitHigh ? _mm512_add_epi32(dot[t][s], dot_high[t][s]) : dot[t][s];
        const __m512 factor = _mm512_mul_ps(ws, _mm512_set1_ps(xs[s]->scales[b]));
        _mm512_store_ps(acc[t][s], _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), factor, _mm512_load_ps(acc[t][s])));
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTiles; ++t) {
    const int64_t rows_left = w.source.rows - (tile + t) * kTileRows;
    const __mmask16 mask = rows_left >= kTileRows ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << rows_left) - 1);
#pragma GCC unroll 16
    for (int s = 0; s < kSeqs; ++s) _mm512_mask_storeu_ps(ys[s] + (tile + t) * kTileRows, mask, _mm512_load_ps(acc[t][s]));
  }
}

// Tiles [t0, t1) against kSeqs sequences, kTiles at a time, then two, then one.
template <QuantFormat F, int kTiles, int kSeqs>
void tile_range_pass(const RowTiles& w, const Q8Blocks* const* xs, float* const* ys, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + kTiles <= t1; t += kTiles) tile_pass<F, kTiles, kSeqs>(w, xs, ys, t);
  if constexpr (kTiles > 2)  // a lone tile has too few independent sums in flight for a decode step
    for (; t + 2 <= t1; t += 2) tile_pass<F, 2, kSeqs>(w, xs, ys, t);
  for (; t < t1; ++t) tile_pass<F, 1, kSeqs>(w, xs, ys, t);
}

// Weights of this many bytes per block of tiles stay in L2 while every group of sequences passes
// over them, and each group's x stays in L1 (one tile at a time over all the sequences instead
// re-read every sequence's x from L2 per tile: a 128-token prompt ran at half the speed of 8).
constexpr int64_t kTileBlockBytes = 128 << 10;

// Sequences in passes of eight (2 tiles x 8 accumulators), the rest in chunks of up to four; one
// or two sequences take four tiles at a time (a decode step needs more independent sums in flight).
template <QuantFormat F>
void matmul_row_tiles_t(const RowTiles& w, const Q8Blocks* const* xs, int64_t seqs, float* const* ys, int64_t t0,
                        int64_t t1) {
  const int64_t block_tiles = std::max<int64_t>(4, kTileBlockBytes / (w.chunks_per_row * 8 * kTileRunBytes));
  for (int64_t tb = t0; tb < t1; tb += block_tiles) {
    const int64_t te = std::min(t1, tb + block_tiles);
    int64_t s = 0;
    for (; s + 8 <= seqs; s += 8) tile_range_pass<F, 2, 8>(w, xs + s, ys + s, tb, te);
    for_seq_chunks(seqs - s, [&](auto chunk, int64_t first) {
      constexpr int kSeqs = decltype(chunk)::value;
      tile_range_pass<F, kSeqs <= 2 ? 4 : 2, kSeqs>(w, xs + s + first, ys + s + first, tb, te);
    });
  }
}

}  // namespace

void quantize_x_blocks_avx512(const PackedView& m, const float* x, Q8Blocks& out) {
  const int64_t block = quant_block_size(m.format), nb = m.blocks_per_row;
  // nf4's int8 table holds code values * 127; the block scales undo it.
  const float unscale = is_nf4_format(m.format) ? 1.0f / 127.0f : 1.0f;
  const int32_t offset = weight_byte_offset(m.format);
  out.values.resize(nb * block);
  out.scales.resize(nb);
  out.bias.resize(nb);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * block;
    const float absmax = block_absmax_avx512(xb, block);
    const __m512 inv = _mm512_set1_ps(absmax > 0.0f ? 127.0f / absmax : 0.0f);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t i = 0; i < block; i += 16) {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + i), inv));  // round to nearest
      sum = _mm512_add_epi32(sum, q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.values.data() + b * block + i), _mm512_cvtsepi32_epi8(q));
    }
    out.scales[b] = (absmax / 127.0f) * unscale;
    out.bias[b] = -offset * _mm512_reduce_add_epi32(sum);
  }
}

void matmul_row_tiles_avx512(const RowTiles& w, const Q8Blocks* const* xs, int64_t seqs, float* const* ys, int64_t t0,
                             int64_t t1) {
  switch (w.source.format) {
    case QuantFormat::kNF4: return matmul_row_tiles_t<QuantFormat::kNF4>(w, xs, seqs, ys, t0, t1);
    case QuantFormat::kNF4_32: return matmul_row_tiles_t<QuantFormat::kNF4_32>(w, xs, seqs, ys, t0, t1);
    case QuantFormat::kInt4: return matmul_row_tiles_t<QuantFormat::kInt4>(w, xs, seqs, ys, t0, t1);
    case QuantFormat::kInt8: return matmul_row_tiles_t<QuantFormat::kInt8>(w, xs, seqs, ys, t0, t1);
    default: return;
  }
}

}  // namespace hearth
