// The decode GEMV over int8 activations, for AVX-512 with VNNI. Decode is bound by how fast the
// packed weights stream in; the float kernels spend ~14 vector ops per 64 weights turning codes
// into floats and could not keep up with memory. Here x is quantized once per product to int8
// in blocks of the weight format's block size (scale = absmax / 127, like llama.cpp's Q8
// activations) and each weight becomes an unsigned byte, so one vpdpbusd does 64 products:
//   nf4:  round(NF4 value * 127) + 128, looked up with vpshufb (kNF4Int8Table);
//   int4: the stored code itself (value + 8);
//   int8: the stored value with its sign bit flipped (value + 128).
// That offset times the block's sum of x is taken off through the accumulators' starting values
// (Q8Activation::lane_bias), so the inner loop has no correction step. Weights are read 64 code
// bytes at a time (a group: 2 nf4, 4 int4 or 2 int8 blocks) and x is stored in the order those
// bytes and nibbles come out, so every load is contiguous.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_kernels.h"

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
    case QuantFormat::kInt4: return {4, 128, 16, 8};
    case QuantFormat::kInt8: return {2, 64, 32, 128};
    default: break;  // GGUF formats never take this kernel (uses_int8_activations)
  }
  return {1, 64, 64, 0};
}

int64_t groups_per_row(const PackedView& m, const GroupLayout& g) { return (m.blocks_per_row + g.blocks - 1) / g.blocks; }

void quantize_activation_avx512(const PackedView& m, const float* x, Q8Activation& a) {
  const GroupLayout g = layout_of(m.format);
  const int64_t block = quant_block_size(m.format), nb = m.blocks_per_row, groups = groups_per_row(m, g);
  const int32_t lanes_per_block = static_cast<int32_t>(kLanes / g.blocks);
  a.values.assign(groups * g.x_bytes, 0);
  a.block_scales.assign(groups * g.blocks + kLanes, 0.0f);  // the kernel reads 4 past a group
  a.lane_bias.assign(groups * kLanes, 0);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * block;
    __m512 amax = _mm512_setzero_ps();
    for (int64_t i = 0; i < block; i += 16) amax = _mm512_max_ps(amax, _mm512_and_ps(_mm512_loadu_ps(xb + i), abs_mask));
    const float absmax = _mm512_reduce_max_ps(amax);
    const __m512 inv = _mm512_set1_ps(absmax > 0.0f ? 127.0f / absmax : 0.0f);
    const int64_t group = b / g.blocks, j = b % g.blocks;
    int8_t* dst = a.values.data() + group * g.x_bytes + j * g.half;
    __m512i sum = _mm512_setzero_si512();
    for (int64_t i = 0; i < block; i += 16) {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + i), inv));  // round to nearest
      sum = _mm512_add_epi32(sum, q);
      const int64_t pos = (i / g.half) * (g.x_bytes / 2) + i % g.half;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + pos), _mm512_cvtsepi32_epi8(q));
    }
    a.block_scales[b] = absmax / 127.0f;
    // offset * sum spread evenly over the block's lanes (offset is a multiple of the lane count).
    const int32_t bias = -(g.offset / lanes_per_block) * _mm512_reduce_add_epi32(sum);
    std::fill_n(a.lane_bias.data() + group * kLanes + j * lanes_per_block, lanes_per_block, bias);
  }
}

// The activation scale of each block of kMaxRows consecutive rows, x_scales repeated (for nf4
// also / 127, undoing the int8 table's scaling), so the factors of a row block are one
// elementwise product over contiguous blocks.
void tile_x_scales(const PackedView& m, const float* x_scales, int64_t rows, float* tiled) {
  const float unscale = m.format == QuantFormat::kNF4 ? 1.0f / 127.0f : 1.0f;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t b = 0; b < m.blocks_per_row; ++b) tiled[i * m.blocks_per_row + b] = x_scales[b] * unscale;
}

// factors[k] = weight scale of block first + k * tiled[k], for k < n: the blocks of whole rows,
// which are contiguous in the scale arrays. Sixteen at a time; a run of sixteen nf4 blocks
// crosses at most one double-quantization group boundary (groups hold 256 blocks).
void block_factors(const PackedView& m, int64_t first, int64_t n, const float* tiled, float* factors) {
  for (int64_t k = 0; k < n; k += 16) {
    const int64_t len = std::min<int64_t>(16, n - k), b = first + k;
    const __mmask16 mask = static_cast<__mmask16>((1u << len) - 1);
    __m512 w;
    if (m.format != QuantFormat::kNF4) {
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
    _mm512_mask_storeu_ps(factors + k, mask, _mm512_mul_ps(w, _mm512_maskz_loadu_ps(mask, tiled + k)));
  }
}

// Lane i of the accumulator belongs to block i / (16 / blocks) of the group.
__m512i lane_block_index(int64_t blocks) {
  alignas(64) int32_t idx[kLanes];
  for (int i = 0; i < kLanes; ++i) idx[i] = static_cast<int32_t>(i / (kLanes / blocks));
  return _mm512_load_si512(idx);
}

__m512i nf4_u8_table() {
  alignas(64) uint8_t t[64];
  for (int i = 0; i < 64; ++i) t[i] = static_cast<uint8_t>(kNF4Int8Table[i % 16] + 128);
  return _mm512_load_si512(t);
}

// The four horizontal sums of a[0..3], as one __m128.
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

// kRows rows at once: the activation loads and the lane biases are shared, and the horizontal
// sums are done four at a time (on 896-wide rows they cost as much as the dot products).
template <QuantFormat F, int kRows>
void matvec_q8_row_block(const PackedView& m, const Q8Activation& a, __m512i table, __m512i lane_block,
                         const float* tiled_x_scales, float* factors, float* y, int64_t r) {
  constexpr GroupLayout g = layout_of(F);
  const int64_t nb = m.blocks_per_row, groups = groups_per_row(m, g), factor_stride = nb;
  const int64_t tail_bytes = (nb - (groups - 1) * g.blocks) * quant_block_bytes(F);
  const __mmask64 tail_mask = tail_bytes >= kGroupCodeBytes ? ~__mmask64(0) : (__mmask64(1) << tail_bytes) - 1;
  const __m512i nibble = _mm512_set1_epi8(0x0F), sign = _mm512_set1_epi8(static_cast<char>(0x80));
  const int64_t prefetch_distance = std::max<int64_t>(2048, kPrefetchBlocksAhead * kRows * m.row_bytes);
  const uint8_t* q[kRows];
  // A row's last group may reach into the next row's factors: those lanes multiply zero codes
  // against zero x (the padding), so any finite factor is harmless.
  block_factors(m, r * nb, kRows * nb, tiled_x_scales, factors);
  for (int i = 0; i < kRows; ++i) q[i] = m.codes + (r + i) * m.row_bytes;
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int8_t* xg = a.values.data() + gi * g.x_bytes;
    const __m512i x_lo = _mm512_loadu_si512(xg);
    const __m512i x_hi = F == QuantFormat::kInt8 ? x_lo : _mm512_loadu_si512(xg + g.x_bytes / 2);
    const __m512i bias = _mm512_loadu_si512(a.lane_bias.data() + gi * kLanes);
    for (int i = 0; i < kRows; ++i) {
      const uint8_t* p = q[i] + gi * kGroupCodeBytes;
      // The hardware prefetcher alone leaves a single core at a third of its DRAM bandwidth.
      _mm_prefetch(reinterpret_cast<const char*>(p + prefetch_distance), _MM_HINT_T0);
      const __m512i codes = gi + 1 < groups ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(tail_mask, p);
      __m512i dot;
      if constexpr (F == QuantFormat::kInt8) {
        dot = _mm512_dpbusd_epi32(bias, _mm512_xor_si512(codes, sign), x_lo);
      } else {
        __m512i lo = _mm512_and_si512(codes, nibble), hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nibble);
        if constexpr (F == QuantFormat::kNF4) {
          lo = _mm512_shuffle_epi8(table, lo);
          hi = _mm512_shuffle_epi8(table, hi);
        }
        dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(bias, lo, x_lo), hi, x_hi);
      }
      const float* f = factors + i * factor_stride + gi * g.blocks;
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(_mm_loadu_ps(f))),
                               acc[i]);
    }
  }
  if constexpr (kRows == 4) {
    _mm_storeu_ps(y + r, reduce4(acc));
  } else {
    for (int i = 0; i < kRows; ++i) y[r + i] = _mm512_reduce_add_ps(acc[i]);
  }
}

template <QuantFormat F>
void matvec_q8_rows_t(const PackedView& m, const Q8Activation& a, float* y, int64_t r0, int64_t r1) {
  constexpr GroupLayout g = layout_of(F);
  // Built once per call, not per row block. The factor buffer has a group's worth of slack for
  // the last row's last group.
  // Per-thread buffers: a product is split into many chunks, each a call here.
  const int64_t nb = m.blocks_per_row;
  thread_local std::vector<float> tiled_buffer, factor_buffer;
  std::vector<float>& tiled = tiled_buffer;
  std::vector<float>& factors = factor_buffer;
  tiled.resize(4 * nb);
  factors.assign(4 * nb + g.blocks * 4, 0.0f);
  tile_x_scales(m, a.block_scales.data(), 4, tiled.data());
  const __m512i table = nf4_u8_table(), lane_block = lane_block_index(g.blocks);
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) matvec_q8_row_block<F, 4>(m, a, table, lane_block, tiled.data(), factors.data(), y, r);
  for (; r < r1; ++r) matvec_q8_row_block<F, 1>(m, a, table, lane_block, tiled.data(), factors.data(), y, r);
}

void matvec_q8_rows_avx512(const PackedView& m, const Q8Activation& a, float* y, int64_t r0, int64_t r1) {
  switch (m.format) {
    case QuantFormat::kNF4: return matvec_q8_rows_t<QuantFormat::kNF4>(m, a, y, r0, r1);
    case QuantFormat::kInt4: return matvec_q8_rows_t<QuantFormat::kInt4>(m, a, y, r0, r1);
    case QuantFormat::kInt8: return matvec_q8_rows_t<QuantFormat::kInt8>(m, a, y, r0, r1);
    default: return;
  }
}

}  // namespace

const QuantKernelSet& avx512_vnni_kernels() {
  static const QuantKernelSet set{"avx512-vnni", avx512_kernels().matvec_rows, avx512_kernels().dequant_tile,
                                  quantize_activation_avx512, matvec_q8_rows_avx512};
  return set;
}

}  // namespace hearth
