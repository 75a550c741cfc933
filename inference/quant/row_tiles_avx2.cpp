// The row-tile kernels (row_tiles.h) for AVX2 machines, which have no vpdpbusd. A 64-byte run is
// two halves of 32 bytes, each 8 rows x 4 code bytes. vpmaddubsw of |x| (four bytes broadcast)
// against the weights with x's sign moved onto them, then vpmaddwd with ones, gives each row's
// sum of four products in its int32 lane: the tile layout's gain (no horizontal sums, one
// convert-and-scale per 8 rows, weights shared by every sequence in registers) without VNNI.
//
// Weights are signed as in quant_matvec_q8_avx2.cpp (nf4: the int8 table value, int4: code - 8,
// int8: the byte with -128 read as -127), so |w|, |x| <= 127 keep each pair sum within
// 2 * 127 * 127 < 32767 and need no offset. The low and high nibbles' pair sums each go through
// vpmaddwd on their own: added as int16 they could overflow.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "inference/quant/int8_kernels_avx2.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/row_tiles.h"

namespace hearth {
namespace {

constexpr int64_t kHalfRows = 8;    // rows per 32-byte half of a run
constexpr int64_t kHalfBytes = 32;  // = kTileRunBytes / 2
// Tiles are read in order; this far ahead the hardware prefetcher alone falls behind.
constexpr int64_t kPrefetchBytes = 2048;

__m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// One half-run of 8 rows x 4 code bytes as signed weights: lo, and for the 4-bit formats hi.
template <QuantFormat F>
inline void unpack_half(const uint8_t* p, __m256i table, __m256i& lo, __m256i& hi) {
  const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (F == QuantFormat::kInt8) {
    lo = _mm256_max_epi8(codes, _mm256_set1_epi8(-127));  // a foreign -128 would lose its sign in w * sign x
  } else {
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    lo = _mm256_and_si256(codes, nibble);
    hi = _mm256_and_si256(_mm256_srli_epi16(codes, 4), nibble);
    if constexpr (is_nf4_format(F)) {
      lo = _mm256_shuffle_epi8(table, lo);
      hi = _mm256_shuffle_epi8(table, hi);
    } else {
      lo = _mm256_sub_epi8(lo, _mm256_set1_epi8(8));
      hi = _mm256_sub_epi8(hi, _mm256_set1_epi8(8));
    }
  }
}

// acc's lanes plus each row's four products with x's four broadcast bytes (values xv,
// magnitudes xa): |x| * (w * sign x), pairs summed as int16, then the pairs as int32.
inline __m256i add_dot4(__m256i acc, __m256i w, __m256i xv, __m256i xa) {
  const __m256i pairs = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(w, xv));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
inline __m256i add_dot4(__m256i acc, __m256i w, const int8_t* xv, const int8_t* xa) {
  return add_dot4(acc, w, broadcast4(xv), broadcast4(xa));
}

// The double-quantization group scale and offset of each lane's block (8 rows' blocks b, in row
// order block_index). They lie blocks_per_row apart, so they span at most 7 * blocks_per_row /
// 256 + 2 consecutive groups: when that is at most 8, two loads and two permutes instead of
// two gathers. Lanes of rows past the last read group 0.
inline void lane_groups(const PackedView& m, int64_t first_block, int64_t valid_rows, __m256& scale, __m256& offset) {
  static_assert(kNF4AbsmaxGroup == 256, "the group index is the block index shifted by 8");
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(valid_rows)), lane);
  const __m256i block_index = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(first_block)),
                                               _mm256_mullo_epi32(lane, _mm256_set1_epi32(static_cast<int32_t>(m.blocks_per_row))));
  const __m256i group = _mm256_and_si256(_mm256_srli_epi32(block_index, 8), valid);
  if (7 * m.blocks_per_row <= 6 * kNF4AbsmaxGroup) {
    const int64_t first_group = first_block / kNF4AbsmaxGroup;
    const int64_t groups = (m.rows * m.blocks_per_row + kNF4AbsmaxGroup - 1) / kNF4AbsmaxGroup;
    const __m256i present = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(groups - first_group)), lane);
    const __m256i local = _mm256_max_epi32(_mm256_sub_epi32(group, _mm256_set1_epi32(static_cast<int32_t>(first_group))),
                                           _mm256_setzero_si256());
    scale = _mm256_permutevar8x32_ps(_mm256_maskload_ps(m.absmax_scale + first_group, present), local);
    offset = _mm256_permutevar8x32_ps(_mm256_maskload_ps(m.absmax_offset + first_group, present), local);
  } else {
    scale = _mm256_i32gather_ps(m.absmax_scale, group, 4);
    offset = _mm256_i32gather_ps(m.absmax_offset, group, 4);
  }
}

// The weight scales of block b of half h of a tile (rows past the last: whatever their zero
// codes give; their sums are never stored). nf4: code * group scale + offset in one fused
// multiply-add, as the AVX2 row-major kernel decodes them.
template <QuantFormat F>
inline __m256 half_block_scales(const RowTiles& w, int64_t tile, int64_t h, int64_t b) {
  const PackedView& m = w.source;
  const int64_t at = (tile * m.blocks_per_row + b) * kTileRows + h * kHalfRows;
  if constexpr (is_nf4_format(F)) {
    const int64_t first_row = tile * kTileRows + h * kHalfRows;
    __m256 scale, offset;
    lane_groups(m, first_row * m.blocks_per_row + b, m.rows - first_row, scale, offset);
    const __m256 codes = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.absmax_codes.data() + at))));
    return _mm256_fmadd_ps(codes, scale, offset);
  } else {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales.data() + at)));
  }
}

// One block's end for a half's kSeqs sequences: acc += float(dot) * (the half's weight scales ws
// times the sequence's x scale of block b), one convert and fused add per 8 rows.
template <int kSeqs>
inline void add_block(__m256 ws, const Q8Blocks* const* xs, int64_t b, const __m256i* dot, float (*acc)[kHalfRows]) {
#pragma GCC unroll 8
  for (int s = 0; s < kSeqs; ++s) {
    const __m256 factor = _mm256_mul_ps(ws, _mm256_set1_ps(xs[s]->scales[b]));
    _mm256_store_ps(acc[s], _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[s]), factor, _mm256_load_ps(acc[s])));
  }
}

// Half h of `tile`'s sums into each sequence's output (rows past the matrix's last dropped).
template <int kSeqs>
inline void store_half(const RowTiles& w, int64_t tile, int64_t h, const float (*acc)[kHalfRows], float* const* ys) {
  const int64_t first_row = tile * kTileRows + h * kHalfRows;
  const int64_t rows = std::min<int64_t>(kHalfRows, w.source.rows - first_row);
  for (int s = 0; s < kSeqs && rows > 0; ++s) std::copy_n(acc[s], rows, ys[s] + first_row);
}

// kTiles tiles from `tile` on against kSeqs sequences. Per block: the int32 sums of every (half,
// sequence), each half-run unpacked once for all the sequences; then one convert and fused add
// per 8 rows into float sums kept in L1 (add_block). Each (row, sequence) result is the same
// chain of fused adds whatever the pass's shape.
template <QuantFormat F, int kTiles, int kSeqs>
void tile_pass(const RowTiles& w, const Q8Blocks* const* xs, float* const* ys, int64_t tile) {
  constexpr TileChunkLayout L = tile_chunk_layout(F);
  constexpr int kHalves = 2 * kTiles;
  const int64_t nb = w.source.blocks_per_row, block = quant_block_size(F);
  const __m256i table = nf4_i8_table();
  alignas(32) float acc[kHalves][kSeqs][kHalfRows] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t chunk = b / L.blocks, first_run = (b % L.blocks) * L.runs;
    __m256i dot[kHalves][kSeqs];
#pragma GCC unroll 8
    for (int h = 0; h < kHalves; ++h)
#pragma GCC unroll 8
      for (int s = 0; s < kSeqs; ++s) dot[h][s] = _mm256_setzero_si256();
    // Unrolled fully, GCC re-associated the runs' int32 sums into trees and spilled their parts.
#pragma GCC unroll 2
    for (int64_t j = 0; j < L.runs; ++j) {
#pragma GCC unroll 8
      for (int h = 0; h < kHalves; ++h) {
        const uint8_t* p = w.chunk(tile + h / 2, chunk) + (first_run + j) * kTileRunBytes + (h % 2) * kHalfBytes;
        if (h % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
        __m256i lo, hi;
        unpack_half<F>(p, table, lo, hi);
#pragma GCC unroll 8
        for (int s = 0; s < kSeqs; ++s) {
          const int64_t at = b * block + 4 * j;
          const int8_t* xv = xs[s]->values.data() + at;
          const int8_t* xa = xs[s]->magnitudes.data() + at;
          dot[h][s] = add_dot4(dot[h][s], lo, xv, xa);
          if constexpr (L.high_offset != 0) dot[h][s] = add_dot4(dot[h][s], hi, xv + L.high_offset, xa + L.high_offset);
        }
      }
    }
#pragma GCC unroll 8
    for (int h = 0; h < kHalves; ++h) add_block<kSeqs>(half_block_scales<F>(w, tile + h / 2, h % 2, b), xs, b, dot[h], acc[h]);
  }
  for (int h = 0; h < kHalves; ++h) store_half<kSeqs>(w, tile + h / 2, h % 2, acc[h], ys);
}

// One tile against kWideSeqs sequences, each half-run unpacked once for all of them; their int32
// and float sums live in L1 (too many for registers), as one add and one fused add per
// (half, sequence). The arithmetic per (row, sequence) is tile_pass's.
constexpr int kWideSeqs = 8;
// Tiles per wide pass: each broadcast of x serves 2 * kWideTiles halves.
constexpr int kWideTiles = 2;

template <QuantFormat F, int kTiles>
void wide_tile_pass(const RowTiles& w, const Q8Blocks* const* xs, float* const* ys, int64_t tile) {
  constexpr TileChunkLayout L = tile_chunk_layout(F);
  constexpr int kHalves = 2 * kTiles;
  const int64_t nb = w.source.blocks_per_row, block = quant_block_size(F);
  const __m256i table = nf4_i8_table();
  alignas(32) float acc[kHalves][kWideSeqs][kHalfRows] = {};
  const int8_t* values[kWideSeqs];
  const int8_t* magnitudes[kWideSeqs];
  for (int s = 0; s < kWideSeqs; ++s) {
    values[s] = xs[s]->values.data();
    magnitudes[s] = xs[s]->magnitudes.data();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t chunk = b / L.blocks, first_run = (b % L.blocks) * L.runs;
    __m256i dot[kHalves][kWideSeqs];
    for (int h = 0; h < kHalves; ++h)
      for (int s = 0; s < kWideSeqs; ++s) dot[h][s] = _mm256_setzero_si256();
    for (int64_t j = 0; j < L.runs; ++j) {
      const int64_t at = b * block + 4 * j;
      __m256i lo[kHalves], hi[kHalves];
#pragma GCC unroll 4
      for (int t = 0; t < kTiles; ++t) {
        const uint8_t* p = w.chunk(tile + t, chunk) + (first_run + j) * kTileRunBytes;
        _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
        unpack_half<F>(p, table, lo[2 * t], hi[2 * t]);
        unpack_half<F>(p + kHalfBytes, table, lo[2 * t + 1], hi[2 * t + 1]);
      }
      // Each sequence's four bytes of x broadcast once for every half.
#pragma GCC unroll 2
      for (int s = 0; s < kWideSeqs; ++s) {
        const __m256i xv = broadcast4(values[s] + at), xa = broadcast4(magnitudes[s] + at);
        __m256i xv_hi, xa_hi;
        if constexpr (L.high_offset != 0) {
          xv_hi = broadcast4(values[s] + at + L.high_offset);
          xa_hi = broadcast4(magnitudes[s] + at + L.high_offset);
        }
#pragma GCC unroll 4
        for (int h = 0; h < kHalves; ++h) {
          __m256i d = add_dot4(dot[h][s], lo[h], xv, xa);
          if constexpr (L.high_offset != 0) d = add_dot4(d, hi[h], xv_hi, xa_hi);
          dot[h][s] = d;
        }
      }
    }
    for (int h = 0; h < kHalves; ++h) add_block<kWideSeqs>(half_block_scales<F>(w, tile + h / 2, h % 2, b), xs, b, dot[h], acc[h]);
  }
  for (int h = 0; h < kHalves; ++h) store_half<kWideSeqs>(w, tile + h / 2, h % 2, acc[h], ys);
}

// Tiles [t0, t1) against kSeqs sequences, kTiles at a time, then one.
template <QuantFormat F, int kTiles, int kSeqs>
void tile_range_pass(const RowTiles& w, const Q8Blocks* const* xs, float* const* ys, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + kTiles <= t1; t += kTiles) tile_pass<F, kTiles, kSeqs>(w, xs, ys, t);
  for (; t < t1; ++t) tile_pass<F, 1, kSeqs>(w, xs, ys, t);
}

// Weights of this many bytes per block of tiles stay in L2 while every group of sequences passes
// over them (as in row_tiles_avx512.cpp).
constexpr int64_t kTileBlockBytes = 128 << 10;

// The passes that measured fastest on one Zen 5 core (bench_row_tiles avx2): the 4-bit formats
// take eight sequences at a time in wide passes (each half-run unpacked once for eight; in
// registers, four sequences' sums spilled and ran slower than pairs), then pairs of sequences
// over one tile (the sums, x's broadcasts and a half-run fill the sixteen registers); a lone
// sequence takes four tiles at a time, each x broadcast serving eight halves.
template <QuantFormat F>
void matmul_row_tiles_t(const RowTiles& w, const Q8Blocks* const* xs, int64_t seqs, float* const* ys, int64_t t0,
                        int64_t t1) {
  const int64_t block_tiles = std::max<int64_t>(4, kTileBlockBytes / (w.chunks_per_row * 8 * kTileRunBytes));
  for (int64_t tb = t0; tb < t1; tb += block_tiles) {
    const int64_t te = std::min(t1, tb + block_tiles);
    int64_t s = 0;
    // int8's half-runs unpack in one op: its pairs keep their sums in registers instead.
    if constexpr (F != QuantFormat::kInt8)
      for (; s + kWideSeqs <= seqs; s += kWideSeqs)
        for (int64_t t = tb; t < te;) {
          if (t + kWideTiles <= te) {
            wide_tile_pass<F, kWideTiles>(w, xs + s, ys + s, t);
            t += kWideTiles;
          } else {
            wide_tile_pass<F, 1>(w, xs + s, ys + s, t++);
          }
        }
    for (; s + 2 <= seqs; s += 2) tile_range_pass<F, 1, 2>(w, xs + s, ys + s, tb, te);
    if (s < seqs) tile_range_pass<F, 4, 1>(w, xs + s, ys + s, tb, te);
  }
}

}  // namespace

void quantize_x_blocks_avx2(const PackedView& m, const float* x, Q8Blocks& out) {
  const int64_t block = quant_block_size(m.format), nb = m.blocks_per_row;
  // nf4's int8 table holds code values * 127; the block scales undo it.
  const float unscale = is_nf4_format(m.format) ? 1.0f / 127.0f : 1.0f;
  out.values.resize(nb * block);
  out.magnitudes.resize(nb * block);
  out.scales.resize(nb);
  out.bias.clear();
  quantize_blocks_avx2(x, nb, block, unscale, out.values.data(), out.magnitudes.data(), out.scales.data());
}

void matmul_row_tiles_avx2(const RowTiles& w, const Q8Blocks* const* xs, int64_t seqs, float* const* ys, int64_t t0,
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
