// Pieces shared by the AVX2 int8-activation kernels (quant_matvec_q8_avx2.cpp,
// row_tiles_avx2.cpp). Include only from files compiled with AVX2 enabled.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "inference/quant/nf4_format.h"

namespace hearth {

// nf4 codes as signed weight bytes: round(NF4 value * 127), in each 128-bit lane (vpshufb
// looks up within lanes).
inline __m256i nf4_i8_table() {
  alignas(32) int8_t t[32];
  for (int i = 0; i < 32; ++i) t[i] = kNF4Int8Table[i % 16];
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
}

// Eight floats times inv rounded to nearest (even) int32, as the reference's nearbyint does.
inline __m256i round_to_int32(const float* x, __m256 inv) { return _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), inv)); }

// 32 floats times inv -> 32 int8 in order (the products already within [-127, 127]).
inline void store_int8x32(const float* x, __m256 inv, int8_t* out) {
  const __m256i a = round_to_int32(x, inv), b = round_to_int32(x + 8, inv);
  const __m256i c = round_to_int32(x + 16, inv), d = round_to_int32(x + 24, inv);
  // packs works within 128-bit lanes; the final permute puts the four 8-byte runs back in order.
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  const __m256i bytes = _mm256_packs_epi16(ab, cd);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// The largest |x| of n floats (n a multiple of 8).
inline float block_absmax_avx2(const float* x, int64_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// x rounded to int8 in blocks of `block` floats, q = round(x * 127 / absmax) per block, in x's
// order, with |q| beside (vpmaddubsw takes x's magnitude and moves its sign onto the weight);
// scales[b] = absmax_b / 127 * unscale.
inline void quantize_blocks_avx2(const float* x, int64_t blocks, int64_t block, float unscale, int8_t* values,
                                 int8_t* magnitudes, float* scales) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * block;
    const float absmax = block_absmax_avx2(xb, block);
    const __m256 inv = _mm256_set1_ps(absmax > 0.0f ? 127.0f / absmax : 0.0f);
    for (int64_t i = b * block; i < (b + 1) * block; i += 32) {
      store_int8x32(x + i, inv, values + i);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(magnitudes + i),
                          _mm256_abs_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + i))));
    }
    scales[b] = (absmax / 127.0f) * unscale;
  }
}

}  // namespace hearth
