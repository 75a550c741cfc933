// The decode GEMV over int8 activations, for AVX-512 with VNNI. Decode is bound by how fast the
// packed weights stream in; the float kernels spend ~14 vector ops per 64 weights turning codes
// into floats and could not keep up with memory. Here x is quantized once per product to int8
// in blocks of the weight format's block size (scale = absmax / 127, like llama.cpp's Q8
// activations) and each weight becomes an unsigned byte, so one vpdpbusd does 64 products:
//   nf4, nf4-32: round(NF4 value * 127) + 128, looked up with vpshufb (kNF4Int8Table);
//   int4: the stored code itself (value + 8);
//   int8: the stored value with its sign bit flipped (value + 128).
// That offset times the block's sum of x is taken off through the accumulators' starting values
// (Q8Activation::lane_bias), so the inner loop has no correction step. Weights are read 64 code
// bytes at a time (a group: 2 nf4, 4 nf4-32, 4 int4 or 2 int8 blocks) and x is stored in the order those
// bytes and nibbles come out, so every load is contiguous.
// nf4 and int8 rows are first read in super-groups of four blocks (128 code bytes): the two
// zmm's 128-bit lanes are regrouped so each vector holds 16 weights of each of the four blocks,
// and one accumulator gathers all four blocks, four lanes each. A block's float work (convert,
// factor, fused add) then serves four vpdpbusd for nf4 and two for int8 instead of two and one;
// that float work, not the integer products, was what bound batches and prompts. nf4-32's
// super-groups are eight blocks (the same 128 bytes), regrouped by 8-byte halves, two lanes a
// block. The blocks left over (fewer than a super-group) take the groups above.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "inference/quant/int8_kernels_avx512.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_kernels.h"
#include "inference/quant/row_tiles.h"
#include "inference/quant/seq_chunks.h"

namespace hearth {
namespace {

constexpr int64_t kGroupCodeBytes = 64;  // one zmm of packed codes per inner step
constexpr int64_t kLanes = 16;           // int32 accumulators per zmm
// Codes are prefetched this many row blocks ahead, at the same offset in each row (a fixed byte
// distance would land inside the block's own next rows when rows are long).
constexpr int64_t kPrefetchBlocksAhead = 4;

struct GroupLayout {
  int64_t blocks;   // blocks per group of 64 code bytes
  int64_t x_bytes;  // activation bytes per group (both nibble halves for the 4-bit formats)
  int64_t half;     // weights of one block per nibble half (the whole block for int8)
  int32_t offset;   // what the unsigned weight byte adds to the signed weight value
};

constexpr GroupLayout layout_of(QuantFormat f) {
  switch (f) {
    case QuantFormat::kNF4: return {2, 128, 32, 128};
    case QuantFormat::kNF4_32: return {4, 128, 16, 128};
    case QuantFormat::kInt4: return {4, 128, 16, 8};
    case QuantFormat::kInt8: return {2, 64, 32, 128};
    default: break;  // GGUF formats never take this kernel (uses_int8_activations)
  }
  return {1, 64, 64, 0};
}

constexpr int64_t kSuperCodeBytes = 128;  // 4 nf4 or int8 blocks of 32 code bytes, 8 nf4-32 of 16

constexpr bool has_super_groups(QuantFormat f) { return is_nf4_format(f) || f == QuantFormat::kInt8; }
// Blocks per super-group.
constexpr int64_t super_blocks(QuantFormat f) { return f == QuantFormat::kNF4_32 ? 8 : 4; }
// Vectors of unpacked weights per super-group: the nf4 formats have two nibbles per code byte.
constexpr int super_vectors(QuantFormat f) { return is_nf4_format(f) ? 4 : 2; }

// How a row's blocks fall into kernel units: `supers` super-groups, then `groups` groups; each
// unit has 16 lanes of bias and scale, and its activation bytes in order.
struct RowUnits {
  int64_t supers, groups;
  int64_t super_x_bytes;  // activation bytes per super-group (64 per vector)
  int64_t units() const { return supers + groups; }
};

RowUnits units_of(const PackedView& m, const GroupLayout& g) {
  RowUnits u;
  u.supers = has_super_groups(m.format) ? m.blocks_per_row / super_blocks(m.format) : 0;
  u.groups = (m.blocks_per_row - super_blocks(m.format) * u.supers + g.blocks - 1) / g.blocks;
  u.super_x_bytes = 64 * super_vectors(m.format);
  return u;
}

// Where block b's activation bytes, lanes and bias go.
struct BlockPlace {
  int64_t x_offset;  // its first byte's place in Q8Activation::values
  int64_t first_lane, lanes;
  int64_t piece;     // weights per contiguous run of bytes in values
  int64_t piece_stride;
  const int* piece_order;  // run p goes to x_offset + piece_order[p] * piece_stride
};

// nf4 super-groups: weights 0-15 come from the first vector (low nibbles of bytes 0-15), 16-31
// from the third (low nibbles of bytes 16-31), 32-47 the second, 48-63 the fourth. nf4-32 the
// same in runs of 8: low nibbles of bytes 0-7, of 8-15, then the high nibbles of each.
constexpr int kNF4SuperOrder[4] = {0, 2, 1, 3};
constexpr int kInOrder[4] = {0, 1, 2, 3};

BlockPlace place_of(const PackedView& m, const GroupLayout& g, const RowUnits& u, int64_t b) {
  const int64_t sb = super_blocks(m.format);
  if (b < sb * u.supers) {
    const int64_t unit = b / sb, j = b % sb, lanes = kLanes / sb, piece = 4 * lanes;  // 4 bytes per lane
    return {unit * u.super_x_bytes + piece * j, unit * kLanes + lanes * j, lanes, piece, 64,
            is_nf4_format(m.format) ? kNF4SuperOrder : kInOrder};
  }
  const int64_t rest = b - sb * u.supers, group = rest / g.blocks, j = rest % g.blocks;
  const int64_t lanes = kLanes / g.blocks;
  return {u.supers * u.super_x_bytes + group * g.x_bytes + j * g.half, (u.supers + group) * kLanes + j * lanes, lanes,
          g.half, g.x_bytes / 2, kInOrder};
}

void quantize_activation_avx512(const PackedView& m, const float* x, Q8Activation& a) {
  const GroupLayout g = layout_of(m.format);
  const RowUnits u = units_of(m, g);
  const int64_t block = quant_block_size(m.format), nb = m.blocks_per_row;
  // nf4's int8 table holds code values * 127; the lane scales undo it.
  const float unscale = is_nf4_format(m.format) ? 1.0f / 127.0f : 1.0f;
  a.values.assign(u.supers * u.super_x_bytes + u.groups * g.x_bytes, 0);
  a.block_scales.clear();
  a.lane_scales.assign(u.units() * kLanes, 0.0f);
  a.lane_bias.assign(u.units() * kLanes, 0);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * block;
    const float absmax = block_absmax_avx512(xb, block);
    const __m512 inv = _mm512_set1_ps(absmax > 0.0f ? 127.0f / absmax : 0.0f);
    const BlockPlace place = place_of(m, g, u, b);
    __m512i sum = _mm512_setzero_si512();
    const auto pos = [&](int64_t i) {
      return a.values.data() + place.x_offset + place.piece_order[i / place.piece] * place.piece_stride + i % place.piece;
    };
    for (int64_t i = 0; i < block; i += 16) {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + i), inv));  // round to nearest
      sum = _mm512_add_epi32(sum, q);
      const __m128i bytes = _mm512_cvtsepi32_epi8(q);
      if (place.piece >= 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(pos(i)), bytes);
      } else {  // runs of 8 (nf4-32 super-groups)
        _mm_storel_epi64(reinterpret_cast<__m128i*>(pos(i)), bytes);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(pos(i + 8)), _mm_unpackhi_epi64(bytes, bytes));
      }
    }
    std::fill_n(a.lane_scales.data() + place.first_lane, place.lanes, (absmax / 127.0f) * unscale);
    // offset * sum spread evenly over the block's lanes (offset is a multiple of the lane count).
    const int32_t bias = -(g.offset / static_cast<int32_t>(place.lanes)) * _mm512_reduce_add_epi32(sum);
    std::fill_n(a.lane_bias.data() + place.first_lane, place.lanes, bias);
  }
}

// The weight scale of blocks [first, first + n) of the scale arrays (whole rows are contiguous),
// sixteen at a time; a run of sixteen nf4 blocks crosses at most one double-quantization group
// boundary (groups hold 256 blocks).
void weight_block_scales(const PackedView& m, int64_t first, int64_t n, float* out) {
  for (int64_t k = 0; k < n; k += 16) {
    const int64_t len = std::min<int64_t>(16, n - k), b = first + k;
    const __mmask16 mask = static_cast<__mmask16>((1u << len) - 1);
    __m512 w;
    if (!is_nf4_format(m.format)) {
      w = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, m.scales + b));
    } else {
      const int64_t grp = b >> 8;
      __m512 scale = _mm512_set1_ps(m.absmax_scale[grp]), offset = _mm512_set1_ps(m.absmax_offset[grp]);
      if (((b + len - 1) >> 8) != grp) {
        const int64_t boundary = ((grp + 1) << 8) - b;  // first lane in the next group
        const __mmask16 next = static_cast<__mmask16>(mask & ~((1u << boundary) - 1));
        scale = _mm512_mask_mov_ps(scale, next, _mm512_set1_ps(m.absmax_scale[grp + 1]));
        offset = _mm512_mask_mov_ps(offset, next, _mm512_set1_ps(m.absmax_offset[grp + 1]));
      }
      const __m512 codes = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, m.absmax_codes + b)));
      w = _mm512_add_ps(_mm512_mul_ps(codes, scale), offset);  // as nf4_absmax: no fused multiply-add
    }
    _mm512_mask_storeu_ps(out + k, mask, w);
  }
}

// Lane i of the accumulator belongs to block i / (16 / blocks) of the group.
__m512i lane_block_index(int64_t blocks) {
  alignas(64) int32_t idx[kLanes];
  for (int i = 0; i < kLanes; ++i) idx[i] = static_cast<int32_t>(i / (kLanes / blocks));
  return _mm512_load_si512(idx);
}

// The four horizontal sums of a[0..3], as one __m128. Each sum depends on its own accumulator
// only, always through the same tree, so a row's result does not depend on its neighbours.
__m128 reduce4(const __m512* a) {
  // Halve each accumulator into one 256-bit half of a pair, then each 128-bit quarter, then
  // finish the four 4-float sums with two in-lane shuffles.
  const __m512 b0 = _mm512_add_ps(_mm512_shuffle_f32x4(a[0], a[1], 0x44), _mm512_shuffle_f32x4(a[0], a[1], 0xEE));
  const __m512 b1 = _mm512_add_ps(_mm512_shuffle_f32x4(a[2], a[3], 0x44), _mm512_shuffle_f32x4(a[2], a[3], 0xEE));
  __m512 c = _mm512_add_ps(_mm512_shuffle_f32x4(b0, b1, 0x88), _mm512_shuffle_f32x4(b0, b1, 0xDD));
  c = _mm512_add_ps(c, _mm512_permute_ps(c, 0x4E));  // lane pairs swapped
  c = _mm512_add_ps(c, _mm512_permute_ps(c, 0xB1));  // neighbours swapped: every lane holds its sum
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), c));
}

// Stores the sum of every accumulator acc[s][i] to ys[s][r + i], four accumulators per
// reduction. The stores are spelled out: as a plain loop over floats the compiler made them a
// scatter, which cost more than the reduction.
template <int kRows, int kSeqs>
void store_sums(const __m512 (&acc)[kSeqs][kRows], float* const* ys, int64_t r) {
  static_assert(kRows == 1 || kRows % 4 == 0, "a reduction's four sums must map onto whole runs");
  constexpr int kTotal = kRows * kSeqs;
  for (int first = 0; first < kTotal; first += 4) {
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const int n = std::min(4, kTotal - first);
    for (int k = 0; k < n; ++k) a[k] = acc[(first + k) / kRows][(first + k) % kRows];
    const __m128 sums = reduce4(a);
    if constexpr (kRows % 4 == 0) {
      _mm_storeu_ps(ys[first / kRows] + r + first % kRows, sums);
    } else {
      _mm_store_ss(ys[first] + r, sums);
      if (n > 1) _mm_store_ss(ys[first + 1] + r, _mm_shuffle_ps(sums, sums, 1));
      if (n > 2) _mm_store_ss(ys[first + 2] + r, _mm_shuffle_ps(sums, sums, 2));
      if (n > 3) _mm_store_ss(ys[first + 3] + r, _mm_shuffle_ps(sums, sums, 3));
    }
  }
}

// One super-group's 128 code bytes as unsigned weight bytes: vector k holds 16 weights of each
// of the four blocks in its 128-bit lanes, or 8 of each of nf4-32's eight blocks in its 64-bit
// lanes (see kNF4SuperOrder for which).
template <QuantFormat F>
inline void unpack_super(const uint8_t* p, __m512i table, __m512i (&v)[4]) {
  const __m512i g0 = _mm512_loadu_si512(p), g1 = _mm512_loadu_si512(p + 64);
  __m512i t0, t1;
  if constexpr (F == QuantFormat::kNF4_32) {
    // Even qwords (every block's bytes 0-7), then odd ones (bytes 8-15).
    t0 = _mm512_permutex2var_epi64(g0, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), g1);
    t1 = _mm512_permutex2var_epi64(g0, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), g1);
  } else {
    // Lanes 0 and 2 of each (every block's bytes 0-15), then lanes 1 and 3 (bytes 16-31).
    t0 = _mm512_shuffle_i64x2(g0, g1, 0x88);
    t1 = _mm512_shuffle_i64x2(g0, g1, 0xDD);
  }
  if constexpr (F == QuantFormat::kInt8) {
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    v[0] = _mm512_xor_si512(t0, sign);
    v[1] = _mm512_xor_si512(t1, sign);
  } else {
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    v[0] = _mm512_shuffle_epi8(table, _mm512_and_si512(t0, nibble));
    v[1] = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(t0, 4), nibble));
    v[2] = _mm512_shuffle_epi8(table, _mm512_and_si512(t1, nibble));
    v[3] = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(t1, 4), nibble));
  }
}

// What a row block's kernel reads besides the codes: the sequences' activations, and the
// index vectors spreading a unit's block scales over its lanes.
struct RowBlockArgs {
  const Q8Activation* const* xs;
  float* const* ys;
  const float* w_scales;  // row r's blocks, rows contiguous, zero slack past the last
  __m512i table, lane_block, lane_super;
};

// The super-groups of kRows rows against kSeqs sequences, into acc.
template <QuantFormat F, int kRows, int kSeqs>
inline void super_groups(const PackedView& m, const RowUnits& u, const RowBlockArgs& args, const uint8_t* const* q,
                         int64_t prefetch_distance, __m512 (&acc)[kSeqs][kRows]) {
  constexpr int kVectors = super_vectors(F);
  constexpr int64_t kBlocks = super_blocks(F);
  const int64_t nb = m.blocks_per_row;
  for (int64_t su = 0; su < u.supers; ++su) {
    __m512i v[kRows][4];
    __m512 w_lanes[kRows];
    for (int i = 0; i < kRows; ++i) {
      const uint8_t* p = q[i] + su * kSuperCodeBytes;
      _mm_prefetch(reinterpret_cast<const char*>(p + prefetch_distance), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + 64 + prefetch_distance), _MM_HINT_T0);
      unpack_super<F>(p, args.table, v[i]);
      const float* ws = args.w_scales + i * nb + su * kBlocks;
      const __m512 scales = kBlocks == 8 ? _mm512_castps256_ps512(_mm256_loadu_ps(ws)) : _mm512_castps128_ps512(_mm_loadu_ps(ws));
      w_lanes[i] = _mm512_permutexvar_ps(args.lane_super, scales);
    }
    for (int s = 0; s < kSeqs; ++s) {
      const Q8Activation& a = *args.xs[s];
      const int8_t* xg = a.values.data() + su * u.super_x_bytes;
      const __m512i bias = _mm512_loadu_si512(a.lane_bias.data() + su * kLanes);
      const __m512 x_lanes = _mm512_loadu_ps(a.lane_scales.data() + su * kLanes);
      for (int i = 0; i < kRows; ++i) {
        __m512i dot = bias;
        for (int k = 0; k < kVectors; ++k) dot = _mm512_dpbusd_epi32(dot, v[i][k], _mm512_loadu_si512(xg + 64 * k));
        acc[s][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(w_lanes[i], x_lanes), acc[s][i]);
      }
    }
  }
}

// The groups after the super-groups, into acc.
template <QuantFormat F, int kRows, int kSeqs>
inline void groups_after(const PackedView& m, const RowUnits& u, const RowBlockArgs& args, const uint8_t* const* q,
                         int64_t prefetch_distance, __m512 (&acc)[kSeqs][kRows]) {
  constexpr GroupLayout g = layout_of(F);
  const int64_t nb = m.blocks_per_row, first_block = super_blocks(F) * u.supers;
  const int64_t tail_bytes = (nb - first_block - (u.groups - 1) * g.blocks) * quant_block_bytes(F);
  const __mmask64 tail_mask = tail_bytes >= kGroupCodeBytes ? ~__mmask64(0) : (__mmask64(1) << tail_bytes) - 1;
  const __m512i nibble = _mm512_set1_epi8(0x0F), sign = _mm512_set1_epi8(static_cast<char>(0x80));
  const int64_t code_start = first_block * quant_block_bytes(F), x_start = u.supers * u.super_x_bytes;
  for (int64_t gi = 0; gi < u.groups; ++gi) {
    __m512i lo[kRows], hi[kRows];
    __m512 w_lanes[kRows];
    for (int i = 0; i < kRows; ++i) {
      w_lanes[i] = _mm512_permutexvar_ps(
          args.lane_block, _mm512_castps128_ps512(_mm_loadu_ps(args.w_scales + i * nb + first_block + gi * g.blocks)));
      const uint8_t* p = q[i] + code_start + gi * kGroupCodeBytes;
      // The hardware prefetcher alone leaves a single core at a third of its DRAM bandwidth.
      _mm_prefetch(reinterpret_cast<const char*>(p + prefetch_distance), _MM_HINT_T0);
      const __m512i codes = gi + 1 < u.groups ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(tail_mask, p);
      if constexpr (F == QuantFormat::kInt8) {
        lo[i] = _mm512_xor_si512(codes, sign);
      } else {
        lo[i] = _mm512_and_si512(codes, nibble);
        hi[i] = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nibble);
        if constexpr (is_nf4_format(F)) {
          lo[i] = _mm512_shuffle_epi8(args.table, lo[i]);
          hi[i] = _mm512_shuffle_epi8(args.table, hi[i]);
        }
      }
    }
    for (int s = 0; s < kSeqs; ++s) {
      const Q8Activation& a = *args.xs[s];
      const int64_t unit = u.supers + gi;
      const int8_t* xg = a.values.data() + x_start + gi * g.x_bytes;
      const __m512i x_lo = _mm512_loadu_si512(xg);
      const __m512i x_hi = F == QuantFormat::kInt8 ? x_lo : _mm512_loadu_si512(xg + g.x_bytes / 2);
      const __m512i bias = _mm512_loadu_si512(a.lane_bias.data() + unit * kLanes);
      const __m512 x_lanes = _mm512_loadu_ps(a.lane_scales.data() + unit * kLanes);
      for (int i = 0; i < kRows; ++i) {
        __m512i dot;
        if constexpr (F == QuantFormat::kInt8) {
          dot = _mm512_dpbusd_epi32(bias, lo[i], x_lo);
        } else {
          dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(bias, lo[i], x_lo), hi[i], x_hi);
        }
        acc[s][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(w_lanes[i], x_lanes), acc[s][i]);
      }
    }
  }
}

// kRows rows against kSeqs sequences: each unit of packed codes is unpacked once for all the
// sequences, each sequence's activations are loaded once for all the rows. A block's factor is
// its weight scale times x's lane scale, formed in registers. A (row, sequence) pair's
// arithmetic is the same whatever kRows and kSeqs are, so a sequence's result is bitwise what it
// gets alone.
template <QuantFormat F, int kRows, int kSeqs>
void q8_row_block(const PackedView& m, const RowBlockArgs& args, int64_t r) {
  const RowUnits u = units_of(m, layout_of(F));
  const int64_t prefetch_distance = std::max<int64_t>(2048, kPrefetchBlocksAhead * kRows * m.row_bytes);
  const uint8_t* q[kRows];
  for (int i = 0; i < kRows; ++i) q[i] = m.codes + (r + i) * m.row_bytes;
  __m512 acc[kSeqs][kRows];
  for (int s = 0; s < kSeqs; ++s)
    for (int i = 0; i < kRows; ++i) acc[s][i] = _mm512_setzero_ps();
  if constexpr (has_super_groups(F)) super_groups<F, kRows, kSeqs>(m, u, args, q, prefetch_distance, acc);
  groups_after<F, kRows, kSeqs>(m, u, args, q, prefetch_distance, acc);
  store_sums<kRows, kSeqs>(acc, args.ys, r);
}

// Rows [r0, r1) for kSeqs sequences, kRows rows at a time and the rest one by one. w_scales
// holds the weight scales of rows [r0, r1).
template <QuantFormat F, int kRows, int kSeqs>
void q8_rows(const PackedView& m, const Q8Activation* const* xs, float* const* ys, const float* w_scales, int64_t r0,
             int64_t r1) {
  const int64_t nb = m.blocks_per_row;
  RowBlockArgs args{xs, ys, w_scales, nf4_u8_table(), lane_block_index(layout_of(F).blocks), lane_block_index(super_blocks(F))};
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) {
    args.w_scales = w_scales + (r - r0) * nb;
    q8_row_block<F, kRows, kSeqs>(m, args, r);
  }
  for (; r < r1; ++r) {
    args.w_scales = w_scales + (r - r0) * nb;
    q8_row_block<F, 1, kSeqs>(m, args, r);
  }
}

// Sequences eight at a time, then the rest four at a time, always four rows at a time (one zmm
// accumulator per row and sequence). 4 x 8 accumulators and 4 x 4 unpacked vectors are more
// than the 32 registers, and the spills cost less than fewer rows do: each sequence's
// activations (values, lane biases and scales) are loaded once per four rows instead of once
// per two (measured on 128-token prompts, `bench_quant_kernels --prompt`, one Zen 5 core: 2 x 8
// 180-250 GFLOP/s over the four shapes, 4 x 8 210-290). Eight sequences read the weights once,
// where two chunks of four read them twice. The rows' weight scales are decoded once for all the
// sequences (a prompt's 128 rows pass over the same rows 16 times).
template <QuantFormat F>
void matmul_q8_rows_t(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys, int64_t r0,
                      int64_t r1) {
  thread_local std::vector<float> weight_buffer;  // per thread: a product is many calls here
  std::vector<float>& w = weight_buffer;
  const int64_t n = (r1 - r0) * m.blocks_per_row;
  w.resize(n + kLanes);
  weight_block_scales(m, r0 * m.blocks_per_row, n, w.data());
  std::fill_n(w.data() + n, kLanes, 0.0f);  // the last group of the last row reads up to 4 scales past it
  int64_t s = 0;
  for (; s + 8 <= seqs; s += 8) q8_rows<F, 4, 8>(m, xs + s, ys + s, w.data(), r0, r1);
  for_seq_chunks(seqs - s, [&](auto chunk, int64_t first) {
    constexpr int kSeqs = decltype(chunk)::value;
    q8_rows<F, 4, kSeqs>(m, xs + s + first, ys + s + first, w.data(), r0, r1);
  });
}

void matmul_q8_rows_avx512(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys,
                           int64_t r0, int64_t r1) {
  switch (m.format) {
    case QuantFormat::kNF4: return matmul_q8_rows_t<QuantFormat::kNF4>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kNF4_32: return matmul_q8_rows_t<QuantFormat::kNF4_32>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kInt4: return matmul_q8_rows_t<QuantFormat::kInt4>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kInt8: return matmul_q8_rows_t<QuantFormat::kInt8>(m, xs, seqs, ys, r0, r1);
    default: return;
  }
}

}  // namespace

const QuantKernelSet& avx512_vnni_kernels() {
  static const QuantKernelSet set{"avx512-vnni", avx512_kernels().matvec_rows, avx512_kernels().dequant_tile,
                                  quantize_activation_avx512, matmul_q8_rows_avx512,
                                  quantize_x_blocks_avx512, matmul_row_tiles_avx512};
  return set;
}

}  // namespace hearth
