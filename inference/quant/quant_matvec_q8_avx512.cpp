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

// The weight scale of blocks [first, first + n) of the scale arrays (whole rows are contiguous),
// sixteen at a time; a run of sixteen nf4 blocks crosses at most one double-quantization group
// boundary (groups hold 256 blocks).
void weight_block_scales(const PackedView& m, int64_t first, int64_t n, float* out) {
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
    _mm512_mask_storeu_ps(out + k, mask, w);
  }
}

// factors[b] = w[b] * x_scale[b] * unscale for b < n (nf4's int8 table holds code values * 127;
// unscale undoes it).
void block_factors(const float* w, const float* x_scales, float unscale, int64_t n, float* factors) {
  const __m512 u = _mm512_set1_ps(unscale);
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 mask = static_cast<__mmask16>((1u << std::min<int64_t>(16, n - k)) - 1);
    const __m512 xs = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x_scales + k), u);
    _mm512_mask_storeu_ps(factors + k, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, w + k), xs));
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

// Stores the sums of n <= 4 accumulators.
void store_sums(const __m512* acc, int n, float* const* out) {
  __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int i = 0; i < n; ++i) a[i] = acc[i];
  alignas(16) float sums[4];
  _mm_store_ps(sums, reduce4(a));
  for (int i = 0; i < n; ++i) *out[i] = sums[i];
}

// What one call shares: the sequences' activations, their block factors for the current row
// block (factors[s] holds kRows rows of nb, plus a group's worth of slack that the last group of
// the last row reads: those lanes multiply zero codes against zero x, the padding), and outputs.
struct SeqBatch {
  const Q8Activation* const* xs;
  float* const* ys;
  float* const* factors;
};

// kRows rows against kSeqs sequences: each group of packed codes is unpacked once for all the
// sequences, each sequence's activations are loaded once for all the rows. A (row, sequence)
// pair's arithmetic is the same whatever kRows and kSeqs are, so a sequence's result is bitwise
// what it gets alone.
template <QuantFormat F, int kRows, int kSeqs>
void q8_row_block(const PackedView& m, const SeqBatch& batch, __m512i table, __m512i lane_block, int64_t r) {
  constexpr GroupLayout g = layout_of(F);
  const int64_t nb = m.blocks_per_row, groups = groups_per_row(m, g);
  const int64_t tail_bytes = (nb - (groups - 1) * g.blocks) * quant_block_bytes(F);
  const __mmask64 tail_mask = tail_bytes >= kGroupCodeBytes ? ~__mmask64(0) : (__mmask64(1) << tail_bytes) - 1;
  const __m512i nibble = _mm512_set1_epi8(0x0F), sign = _mm512_set1_epi8(static_cast<char>(0x80));
  const int64_t prefetch_distance = std::max<int64_t>(2048, kPrefetchBlocksAhead * kRows * m.row_bytes);
  const uint8_t* q[kRows];
  for (int i = 0; i < kRows; ++i) q[i] = m.codes + (r + i) * m.row_bytes;
  __m512 acc[kSeqs][kRows];
  for (int s = 0; s < kSeqs; ++s)
    for (int i = 0; i < kRows; ++i) acc[s][i] = _mm512_setzero_ps();
  for (int64_t gi = 0; gi < groups; ++gi) {
    __m512i lo[kRows], hi[kRows];
    for (int i = 0; i < kRows; ++i) {
      const uint8_t* p = q[i] + gi * kGroupCodeBytes;
      // The hardware prefetcher alone leaves a single core at a third of its DRAM bandwidth.
      _mm_prefetch(reinterpret_cast<const char*>(p + prefetch_distance), _MM_HINT_T0);
      const __m512i codes = gi + 1 < groups ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(tail_mask, p);
      if constexpr (F == QuantFormat::kInt8) {
        lo[i] = _mm512_xor_si512(codes, sign);
      } else {
        lo[i] = _mm512_and_si512(codes, nibble);
        hi[i] = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nibble);
        if constexpr (F == QuantFormat::kNF4) {
          lo[i] = _mm512_shuffle_epi8(table, lo[i]);
          hi[i] = _mm512_shuffle_epi8(table, hi[i]);
        }
      }
    }
    for (int s = 0; s < kSeqs; ++s) {
      const Q8Activation& a = *batch.xs[s];
      const int8_t* xg = a.values.data() + gi * g.x_bytes;
      const __m512i x_lo = _mm512_loadu_si512(xg);
      const __m512i x_hi = F == QuantFormat::kInt8 ? x_lo : _mm512_loadu_si512(xg + g.x_bytes / 2);
      const __m512i bias = _mm512_loadu_si512(a.lane_bias.data() + gi * kLanes);
      for (int i = 0; i < kRows; ++i) {
        __m512i dot;
        if constexpr (F == QuantFormat::kInt8) {
          dot = _mm512_dpbusd_epi32(bias, lo[i], x_lo);
        } else {
          dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(bias, lo[i], x_lo), hi[i], x_hi);
        }
        const float* f = batch.factors[s] + i * nb + gi * g.blocks;
        acc[s][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                    _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(_mm_loadu_ps(f))), acc[s][i]);
      }
    }
  }
  for (int s = 0; s < kSeqs; ++s) {
    float* out[kRows];
    for (int i = 0; i < kRows; ++i) out[i] = batch.ys[s] + r + i;
    store_sums(acc[s], kRows, out);
  }
}

// Rows [r0, r1) for kSeqs sequences, kRows rows at a time and the rest one by one.
template <QuantFormat F, int kRows, int kSeqs>
void q8_rows(const PackedView& m, const Q8Activation* const* xs, float* const* ys, int64_t r0, int64_t r1) {
  constexpr GroupLayout g = layout_of(F);
  const int64_t nb = m.blocks_per_row;
  const float unscale = F == QuantFormat::kNF4 ? 1.0f / 127.0f : 1.0f;
  // Per-thread buffers: a product is split into many chunks, each a call here.
  thread_local std::vector<float> weight_buffer, factor_buffer;
  std::vector<float>& w = weight_buffer;
  std::vector<float>& factors = factor_buffer;
  const int64_t per_seq = kRows * nb + 4 * g.blocks;
  w.resize(kRows * nb);
  factors.assign(kSeqs * per_seq, 0.0f);
  float* f[kSeqs];
  for (int s = 0; s < kSeqs; ++s) f[s] = factors.data() + s * per_seq;
  const SeqBatch batch{xs, ys, f};
  const __m512i table = nf4_u8_table(), lane_block = lane_block_index(g.blocks);
  auto run = [&](auto rows_tag, int64_t r) {
    constexpr int kN = decltype(rows_tag)::value;
    weight_block_scales(m, r * nb, kN * nb, w.data());
    for (int s = 0; s < kSeqs; ++s)
      for (int i = 0; i < kN; ++i) block_factors(w.data() + i * nb, xs[s]->block_scales.data(), unscale, nb, f[s] + i * nb);
    q8_row_block<F, kN, kSeqs>(m, batch, table, lane_block, r);
  };
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) run(std::integral_constant<int, kRows>{}, r);
  for (; r < r1; ++r) run(std::integral_constant<int, 1>{}, r);
}

// Sequences eight at a time, then the rest four at a time (one zmm accumulator per row and
// sequence: 2 rows x 8 sequences use 16 of the 32 registers, leaving room for the codes and
// activations; a single sequence takes 4 rows). Eight sequences read the weights once, where
// two chunks of four read them twice.
template <QuantFormat F>
void matmul_q8_rows_t(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys, int64_t r0,
                      int64_t r1) {
  int64_t s = 0;
  for (; s + 8 <= seqs; s += 8) q8_rows<F, 2, 8>(m, xs + s, ys + s, r0, r1);
  for_seq_chunks(seqs - s, [&](auto chunk, int64_t first) {
    constexpr int kSeqs = decltype(chunk)::value;
    q8_rows<F, kSeqs == 1 ? 4 : 2, kSeqs>(m, xs + s + first, ys + s + first, r0, r1);
  });
}

void matmul_q8_rows_avx512(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys,
                           int64_t r0, int64_t r1) {
  switch (m.format) {
    case QuantFormat::kNF4: return matmul_q8_rows_t<QuantFormat::kNF4>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kInt4: return matmul_q8_rows_t<QuantFormat::kInt4>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kInt8: return matmul_q8_rows_t<QuantFormat::kInt8>(m, xs, seqs, ys, r0, r1);
    default: return;
  }
}

}  // namespace

const QuantKernelSet& avx512_vnni_kernels() {
  static const QuantKernelSet set{"avx512-vnni", avx512_kernels().matvec_rows, avx512_kernels().dequant_tile,
                                  quantize_activation_avx512, matmul_q8_rows_avx512};
  return set;
}

}  // namespace hearth
