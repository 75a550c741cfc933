// Pieces shared by the AVX-512 int8-activation kernels (quant_matvec_q8_avx512.cpp,
// row_tiles_avx512.cpp). Include only from files compiled with AVX-512 enabled.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "inference/quant/nf4_format.h"

namespace hearth {

// nf4 codes as unsigned weight bytes for vpdpbusd: round(NF4 value * 127) + 128, in each 128-bit
// lane (vpshufb looks up within lanes).
inline __m512i nf4_u8_table() {
  alignas(64) uint8_t t[64];
  for (int i = 0; i < 64; ++i) t[i] = static_cast<uint8_t>(kNF4Int8Table[i % 16] + 128);
  return _mm512_load_si512(t);
}

// The largest |x| of one block of x (its length a multiple of 16).
inline float block_absmax_avx512(const float* xb, int64_t block) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  __m512 amax = _mm512_setzero_ps();
  for (int64_t i = 0; i < block; i += 16) amax = _mm512_max_ps(amax, _mm512_and_ps(_mm512_loadu_ps(xb + i), abs_mask));
  return _mm512_reduce_max_ps(amax);
}

}  // namespace hearth
