// The decode GEMV over int8 activations for AVX2 machines (no VNNI): the same contract as
// quant_matvec_q8_avx512.cpp (x rounded to int8 per weight block, scale absmax / 127), with
// vpmaddubsw doing 32 byte products at a time. The float AVX2 kernel spends more vector ops
// turning nf4 codes into floats than the product itself; here an nf4 code becomes its int8
// table value with one vpshufb.
//
// vpmaddubsw multiplies unsigned by signed bytes and adds pairs with int16 saturation, so x's
// sign is moved onto the weight (|x| * (w * sign x), |x| stored beside x); |w| <= 127 and
// |x| <= 127 keep every pair sum within 2 * 127 * 127 < 32767, so nothing saturates. Weights are signed here (nf4: the
// table value, int4: code - 8, int8: the stored byte), so no offset correction is needed, and x
// stays in its natural order: an nf4 block's 32 code bytes hold weights i (low nibble) and
// i + 32 (high), an nf4-32 or int4 block's 16 bytes weights i and i + 16.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "inference/quant/int8_kernels_avx2.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_kernels.h"
#include "inference/quant/seq_chunks.h"

namespace hearth {

// Layout: values in x's own order (blocks_per_row * block bytes) but for nf4-32's pairs of
// blocks, one scale per block (times nf4's table unscale, see q8_rows); the accumulators need no
// starting values (lane_bias stays empty).
void quantize_activation_avx2(const PackedView& m, const float* x, Q8Activation& a) {
  const int64_t block = quant_block_size(m.format), nb = m.blocks_per_row;
  // nf4's int8 table is the code value times 127: undone in x's scale.
  const float unscale = is_nf4_format(m.format) ? 1.0f / 127.0f : 1.0f;
  a.values.resize(nb * block);
  a.magnitudes.resize(nb * block);
  a.block_scales.resize(nb);
  a.lane_bias.clear();
  quantize_blocks_avx2(x, nb, block, unscale, a.values.data(), a.magnitudes.data(), a.block_scales.data());
  // nf4-32 pairs (see unit_blocks): the first block's last 16 trade places with the second's
  // first 16.
  if (m.format != QuantFormat::kNF4_32) return;
  for (int64_t b = 1; b < nb; b += 2) {
    for (std::vector<int8_t>* v : {&a.values, &a.magnitudes}) {
      int8_t* pair = v->data() + (b - 1) * block;
      std::swap_ranges(pair + 16, pair + 32, pair + 32);
    }
  }
}

namespace {

// A block's weights as signed bytes.
struct UnpackedBlock {
  __m256i lo, hi;  // hi only for nf4 (its second 32 weights)
};

template <QuantFormat F>
inline UnpackedBlock unpack_block(const uint8_t* q, __m256i table) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  UnpackedBlock u;
  if constexpr (F == QuantFormat::kNF4) {
    const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    u.lo = _mm256_shuffle_epi8(table, _mm256_and_si256(codes, low4));
    u.hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(codes, 4), low4));
  } else if constexpr (F == QuantFormat::kInt4 || F == QuantFormat::kNF4_32) {
    const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m256i both = _mm256_and_si256(
        _mm256_inserti128_si256(_mm256_castsi128_si256(codes), _mm_srli_epi16(codes, 4), 1), low4);
    if constexpr (F == QuantFormat::kInt4) {
      u.lo = _mm256_sub_epi8(both, _mm256_set1_epi8(8));
    } else {
      u.lo = _mm256_shuffle_epi8(table, both);
    }
  } else {
    // Hearth writes int8 codes within +-127; a -128 from a foreign file would lose its sign in
    // w * sign x, so it is read as -127.
    u.lo = _mm256_max_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)), _mm256_set1_epi8(-127));
  }
  return u;
}

// Sum over 32 byte pairs of w * x as eight int32 lanes (w, x signed, |w|, |x| <= 127):
// |x| * (w * sign x).
inline __m256i dot_i8(__m256i w, const int8_t* x, const int8_t* x_abs) {
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i xa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x_abs));
  const __m256i products = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(w, xv));
  return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
}

// One unpacked block against x block `xb` (magnitudes `xa`), as eight int32 partial sums.
template <QuantFormat F>
inline __m256i block_dot(const UnpackedBlock& u, const int8_t* xb, const int8_t* xa) {
  const __m256i lo = dot_i8(u.lo, xb, xa);
  if constexpr (F == QuantFormat::kNF4) return _mm256_add_epi32(lo, dot_i8(u.hi, xb + 32, xa + 32));
  return lo;
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// nf4-32 reads its blocks in pairs as one nf4-like unit: the pair's 32 code bytes give, in
// their low nibbles, both blocks' first 16 weights and in their high nibbles their last 16, so
// a unit unpacks and multiplies exactly as an nf4 block does and lanes 0-3 of its dot belong to
// the first block, 4-7 to the second. Its float work per weight is then nf4's; the activation
// is stored in that order (quantize_activation_avx2). A row's odd last block goes alone.
template <QuantFormat F>
constexpr int64_t unit_blocks() { return F == QuantFormat::kNF4_32 ? 2 : 1; }
template <QuantFormat F>
constexpr QuantFormat unit_format() { return F == QuantFormat::kNF4_32 ? QuantFormat::kNF4 : F; }

// A unit's per-lane scales from its blocks' scales at p: one block's everywhere, or a pair's
// first in lanes 0-3 and second in 4-7.
template <int64_t kBlocks>
inline __m256 unit_scales(const float* p) {
  if constexpr (kBlocks == 1) return _mm256_broadcast_ss(p);
  const __m256 two = _mm256_castps128_ps256(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  return _mm256_permutevar8x32_ps(two, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
}

// What a row block's units read besides the codes.
template <int kRows, int kSeqs>
struct RowBlockState {
  const int8_t* x_values[kSeqs];
  const int8_t* x_magnitudes[kSeqs];
  const float* x_scales[kSeqs];
  __m256 acc[kSeqs][kRows];
};

// Units of kBlocks blocks read as format U, from block b on, into st.acc.
template <QuantFormat U, int64_t kBlocks, int kRows, int kSeqs>
inline void accumulate_unit(const PackedView& m, __m256i table, const float* w_scales, int64_t r, int64_t b,
                            RowBlockState<kRows, kSeqs>& st) {
  const int64_t nb = m.blocks_per_row, block = quant_block_size(m.format), block_bytes = quant_block_bytes(m.format);
  UnpackedBlock w[kRows];
  __m256 w_scale[kRows];
  for (int i = 0; i < kRows; ++i) {
    const uint8_t* q = m.codes + (r + i) * m.row_bytes + b * block_bytes;
    _mm_prefetch(reinterpret_cast<const char*>(q + 4 * kRows * m.row_bytes), _MM_HINT_T0);
    w[i] = unpack_block<U>(q, table);
    w_scale[i] = unit_scales<kBlocks>(w_scales + i * nb + b);
  }
  for (int s = 0; s < kSeqs; ++s) {
    const int8_t* xb = st.x_values[s] + b * block;
    const int8_t* xa = st.x_magnitudes[s] + b * block;
    const __m256 x_scale = unit_scales<kBlocks>(st.x_scales[s] + b);
    for (int i = 0; i < kRows; ++i) {
      const __m256 dot = _mm256_cvtepi32_ps(block_dot<U>(w[i], xb, xa));
      st.acc[s][i] = _mm256_fmadd_ps(dot, _mm256_mul_ps(w_scale[i], x_scale), st.acc[s][i]);
    }
  }
}

// kRows rows against kSeqs sequences: each unit of codes is unpacked once for all the
// sequences, each x block is shared by the rows. A block's factor is its weight scale (w_scales:
// row r's blocks, rows contiguous) times x's block scale, formed in registers. A (row, sequence)
// pair's arithmetic does not depend on kRows or kSeqs, so a sequence's result is bitwise what it
// gets alone.
template <QuantFormat F, int kRows, int kSeqs>
void row_block(const PackedView& m, const Q8Activation* const* xs, __m256i table, const float* w_scales,
               float* const* ys, int64_t r) {
  constexpr int64_t kUnit = unit_blocks<F>();
  const int64_t nb = m.blocks_per_row, paired = nb / kUnit * kUnit;
  RowBlockState<kRows, kSeqs> st;
  for (int s = 0; s < kSeqs; ++s) {
    st.x_values[s] = xs[s]->values.data();
    st.x_magnitudes[s] = xs[s]->magnitudes.data();
    st.x_scales[s] = xs[s]->block_scales.data();
    for (int i = 0; i < kRows; ++i) st.acc[s][i] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < paired; b += kUnit) accumulate_unit<unit_format<F>(), kUnit>(m, table, w_scales, r, b, st);
  if (paired < nb) accumulate_unit<F, 1>(m, table, w_scales, r, paired, st);
  for (int s = 0; s < kSeqs; ++s)
    for (int i = 0; i < kRows; ++i) ys[s][r + i] = hsum(st.acc[s][i]);
}

// Rows [r0, r1) for kSeqs sequences; w_scales holds the weight scales of rows [r0, r1).
template <QuantFormat F, int kRows, int kSeqs>
void q8_rows(const PackedView& m, const Q8Activation* const* xs, float* const* ys, const float* w_scales, int64_t r0,
             int64_t r1) {
  const int64_t nb = m.blocks_per_row;
  const __m256i table = nf4_i8_table();
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) row_block<F, kRows, kSeqs>(m, xs, table, w_scales + (r - r0) * nb, ys, r);
  for (; r < r1; ++r) row_block<F, 1, kSeqs>(m, xs, table, w_scales + (r - r0) * nb, ys, r);
}

// Eight block scales from `first` on (the scale arrays are contiguous over rows). nf4: code *
// group scale + group offset in one fused multiply-add (the few scalar ones use std::fma, so
// every path rounds alike; the compiler would fuse a plain multiply and add anyway); a run that crosses a 256-block group boundary takes each lane's
// own group. Reads eight scales or codes at `first` straight from memory.
__m256 eight_weight_scales(const PackedView& m, int64_t first) {
  if (!is_nf4_format(m.format)) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(m.scales + first)));
  const __m256 codes =
      _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m.absmax_codes + first))));
  const int64_t group = first >> 8;
  if (((first + 7) >> 8) == group)
    return _mm256_fmadd_ps(codes, _mm256_set1_ps(m.absmax_scale[group]), _mm256_set1_ps(m.absmax_offset[group]));
  alignas(32) float scale[8], offset[8];
  for (int64_t i = 0; i < 8; ++i) {
    scale[i] = m.absmax_scale[(first + i) >> 8];
    offset[i] = m.absmax_offset[(first + i) >> 8];
  }
  return _mm256_fmadd_ps(codes, _mm256_load_ps(scale), _mm256_load_ps(offset));
}

// The weight scales of rows [r0, r1), decoded once for all the sequences of a call (a prompt's
// 128 rows pass over the same rows 32 times) and eight at a time (one scale per 64 weights was
// a fifth of a decode step when converted one by one).
void weight_scales(const PackedView& m, int64_t r0, int64_t r1, std::vector<float>& out) {
  const int64_t first = r0 * m.blocks_per_row, n = (r1 - r0) * m.blocks_per_row;
  out.resize(n);
  // The scales come from memory as cold as the codes: ask for all their lines at once, so the
  // misses overlap instead of stalling one conversion after another.
  const char* bytes = is_nf4_format(m.format) ? reinterpret_cast<const char*>(m.absmax_codes + first)
                                                    : reinterpret_cast<const char*>(m.scales + first);
  const int64_t length = is_nf4_format(m.format) ? n : 2 * n;
  for (int64_t i = 0; i < length; i += 64) _mm_prefetch(bytes + i, _MM_HINT_T0);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out.data() + k, eight_weight_scales(m, first + k));
  if (k == n) return;
  // The last few: the eight that end at the range's end (ranges are never shorter than a row of
  // blocks, so of at least 8 scales unless the whole matrix has fewer).
  if (n >= 8) {
    alignas(32) float last[8];
    _mm256_store_ps(last, eight_weight_scales(m, first + n - 8));
    std::copy_n(last + 8 - (n - k), n - k, out.data() + k);
    return;
  }
  for (; k < n; ++k) {
    const int64_t b = first + k, group = b >> 8;
    out[k] = is_nf4_format(m.format) ? std::fma(float(m.absmax_codes[b]), m.absmax_scale[group], m.absmax_offset[group])
                                           : _cvtsh_ss(m.scales[b]);
  }
}

// Sequences eight at a time, then up to four, always four rows at a time. 4 x 8 accumulators
// do not fit AVX2's sixteen registers, and spilling them costs less than what fewer rows cost:
// each x block (values and magnitudes) is then loaded once per four rows, not once per row
// (measured on 128-token prompts, `bench_quant_kernels --prompt`: 1 row x 8 sequences ~98
// GFLOP/s on one Zen 5 core, 4 x 4 ~108, 4 x 8 ~118). The rows' weight scales are decoded once
// for all the sequences.
template <QuantFormat F>
void matmul_q8_rows_t(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys, int64_t r0,
                      int64_t r1) {
  thread_local std::vector<float> weight_buffer;  // per thread: a product is many calls here
  weight_scales(m, r0, r1, weight_buffer);
  int64_t s = 0;
  for (; s + 8 <= seqs; s += 8) q8_rows<F, 4, 8>(m, xs + s, ys + s, weight_buffer.data(), r0, r1);
  for_seq_chunks(seqs - s, [&](auto chunk, int64_t first) {
    constexpr int kSeqs = decltype(chunk)::value;
    q8_rows<F, 4, kSeqs>(m, xs + s + first, ys + s + first, weight_buffer.data(), r0, r1);
  });
}

}  // namespace

void matmul_q8_rows_avx2(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys, int64_t r0,
                         int64_t r1) {
  switch (m.format) {
    case QuantFormat::kNF4: return matmul_q8_rows_t<QuantFormat::kNF4>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kNF4_32: return matmul_q8_rows_t<QuantFormat::kNF4_32>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kInt4: return matmul_q8_rows_t<QuantFormat::kInt4>(m, xs, seqs, ys, r0, r1);
    case QuantFormat::kInt8: return matmul_q8_rows_t<QuantFormat::kInt8>(m, xs, seqs, ys, r0, r1);
    default: return;  // GGUF formats never take this kernel (uses_int8_activations)
  }
}

}  // namespace hearth
