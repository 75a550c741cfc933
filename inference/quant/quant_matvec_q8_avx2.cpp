// The decode GEMV over int8 activations for AVX2 machines (no VNNI): the same contract as
// quant_matvec_q8_avx512.cpp (x rounded to int8 per weight block, scale absmax / 127), with
// vpmaddubsw doing 32 byte products at a time. The float AVX2 kernel spends more vector ops
// turning nf4 codes into floats than the product itself; here an nf4 code becomes its int8
// table value with one vpshufb.
//
// vpmaddubsw multiplies unsigned by signed bytes and adds pairs with int16 saturation, so the
// weight's sign is moved onto x (|w| * (x * sign w)); |w| <= 127 and |x| <= 127 keep every pair
// sum within 2 * 127 * 127 < 32767, so nothing saturates. Weights are signed here (nf4: the
// table value, int4: code - 8, int8: the stored byte), so no offset correction is needed, and x
// stays in its natural order: an nf4 block's 32 code bytes hold weights i (low nibble) and
// i + 32 (high), an int4 block's 16 bytes weights i and i + 16.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_kernels.h"

namespace hearth {
namespace {

// Eight floats rounded to nearest (even) int32, as the reference's nearbyint does.
inline __m256i round_to_int32(const float* x, __m256 inv) { return _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), inv)); }

// 32 floats -> 32 int8 in order (values already within [-127, 127]).
inline void store_int8x32(const float* x, __m256 inv, int8_t* out) {
  const __m256i a = round_to_int32(x, inv), b = round_to_int32(x + 8, inv);
  const __m256i c = round_to_int32(x + 16, inv), d = round_to_int32(x + 24, inv);
  // packs works within 128-bit lanes; the final permute puts the four 8-byte runs back in order.
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  const __m256i bytes = _mm256_packs_epi16(ab, cd);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

float block_absmax(const float* x, int64_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

}  // namespace

// Layout: values in x's own order (blocks_per_row * block bytes), one scale per block; the
// accumulators need no starting values (lane_bias stays empty).
void quantize_activation_avx2(const PackedView& m, const float* x, Q8Activation& a) {
  const int64_t block = quant_block_size(m.format), nb = m.blocks_per_row;
  a.values.resize(nb * block);
  a.block_scales.resize(nb);
  a.lane_bias.clear();
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * block;
    const float absmax = block_absmax(xb, block);
    const __m256 inv = _mm256_set1_ps(absmax > 0.0f ? 127.0f / absmax : 0.0f);
    for (int64_t i = 0; i < block; i += 32) store_int8x32(xb + i, inv, a.values.data() + b * block + i);
    a.block_scales[b] = absmax / 127.0f;
  }
}

namespace {

// Sum over 32 byte pairs of w * x as eight int32 lanes (w, x signed, |w|, |x| <= 127).
inline __m256i dot_i8(__m256i w, __m256i x) {
  const __m256i products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
}

// One block of row `q` against x block `xb`, as eight int32 partial sums.
template <QuantFormat F>
inline __m256i block_dot(const uint8_t* q, const int8_t* xb, __m256i table) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  if constexpr (F == QuantFormat::kNF4) {
    const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(codes, low4));
    const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(codes, 4), low4));
    return _mm256_add_epi32(dot_i8(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb))),
                            dot_i8(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 32))));
  } else if constexpr (F == QuantFormat::kInt4) {
    const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(codes), _mm_srli_epi16(codes, 4), 1);
    const __m256i w = _mm256_sub_epi8(_mm256_and_si256(both, low4), _mm256_set1_epi8(8));
    return dot_i8(w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb)));
  } else {
    return dot_i8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb)));
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__m256i nf4_int8_table() {
  alignas(32) int8_t t[32];
  for (int i = 0; i < 32; ++i) t[i] = kNF4Int8Table[i % 16];
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
}

// kRows rows at once share each x block load. factors[i * nb + b]: weight scale x x scale.
template <QuantFormat F, int kRows>
void row_block(const PackedView& m, const Q8Activation& a, __m256i table, const float* factors, float* y, int64_t r) {
  const int64_t nb = m.blocks_per_row, block = quant_block_size(F), block_bytes = quant_block_bytes(F);
  __m256 acc[kRows];
  for (int i = 0; i < kRows; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* xb = a.values.data() + b * block;
    for (int i = 0; i < kRows; ++i) {
      const uint8_t* q = m.codes + (r + i) * m.row_bytes + b * block_bytes;
      _mm_prefetch(reinterpret_cast<const char*>(q + 4 * kRows * m.row_bytes), _MM_HINT_T0);
      const __m256 dot = _mm256_cvtepi32_ps(block_dot<F>(q, xb, table));
      acc[i] = _mm256_fmadd_ps(dot, _mm256_set1_ps(factors[i * nb + b]), acc[i]);
    }
  }
  for (int i = 0; i < kRows; ++i) y[r + i] = hsum(acc[i]);
}

template <QuantFormat F>
void matvec_q8_rows_t(const PackedView& m, const Q8Activation& a, float* y, int64_t r0, int64_t r1) {
  constexpr int kRows = 4;
  const int64_t nb = m.blocks_per_row;
  // nf4's int8 table is the code value times 127: undo it in the factor.
  const float unscale = F == QuantFormat::kNF4 ? 1.0f / 127.0f : 1.0f;
  thread_local std::vector<float> factor_buffer;
  std::vector<float>& factors = factor_buffer;
  factors.resize(kRows * nb);
  const __m256i table = nf4_int8_table();
  auto fill_factors = [&](int64_t r, int rows) {
    for (int i = 0; i < rows; ++i) {
      float* f = factors.data() + i * nb;
      if constexpr (F == QuantFormat::kNF4) {
        row_block_scales(m, r + i, 0, nb, f);
      } else {
        const uint16_t* h = m.scales + (r + i) * nb;
        for (int64_t b = 0; b < nb; ++b) f[b] = _cvtsh_ss(h[b]);
      }
      for (int64_t b = 0; b < nb; ++b) f[b] *= a.block_scales[b] * unscale;
    }
  };
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) {
    fill_factors(r, kRows);
    row_block<F, kRows>(m, a, table, factors.data(), y, r);
  }
  for (; r < r1; ++r) {
    fill_factors(r, 1);
    row_block<F, 1>(m, a, table, factors.data(), y, r);
  }
}

}  // namespace

void matvec_q8_rows_avx2(const PackedView& m, const Q8Activation& a, float* y, int64_t r0, int64_t r1) {
  switch (m.format) {
    case QuantFormat::kNF4: return matvec_q8_rows_t<QuantFormat::kNF4>(m, a, y, r0, r1);
    case QuantFormat::kInt4: return matvec_q8_rows_t<QuantFormat::kInt4>(m, a, y, r0, r1);
    case QuantFormat::kInt8: return matvec_q8_rows_t<QuantFormat::kInt8>(m, a, y, r0, r1);
    default: return;  // GGUF formats never take this kernel (uses_int8_activations)
  }
}

}  // namespace hearth
