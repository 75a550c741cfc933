// AVX-512 kernels of the GGUF block formats: each block is decoded 16 weights at a time into a
// float vector (codes widened to 32-bit lanes, nibbles and high bits masked in, scale and min
// applied by FMA), which the GEMV multiplies with x and the tile dequantizer stores.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "inference/quant/gguf_blocks.h"
#include "inference/quant/gguf_kernels.h"

namespace hearth {
namespace {

using namespace gguf;

inline __m512i bytes16(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m512 half(uint16_t h) { return _mm512_set1_ps(_cvtsh_ss(h)); }
inline __m512 to_float(__m512i v) { return _mm512_cvtepi32_ps(v); }

// Each decoder calls emit(k, w) with weights 16k .. 16k + 15 of the block.
template <typename Emit>
inline void decode_q8_0(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
  const __m512 d = half(b->d);
  for (int k = 0; k < 2; ++k) {
    const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 16 * k)));
    emit(k, _mm512_mul_ps(d, to_float(q)));
  }
}

template <typename Emit>
inline void decode_q4_0(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(p);
  const __m512 d = half(b->d);
  const __m512i v = bytes16(b->qs), eight = _mm512_set1_epi32(8), low = _mm512_set1_epi32(15);
  emit(0, _mm512_mul_ps(d, to_float(_mm512_sub_epi32(_mm512_and_si512(v, low), eight))));
  emit(1, _mm512_mul_ps(d, to_float(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight))));
}

template <typename Emit>
inline void decode_q4_1(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ4_1*>(p);
  const __m512 d = half(b->d), m = half(b->m);
  const __m512i v = bytes16(b->qs);
  emit(0, _mm512_fmadd_ps(d, to_float(_mm512_and_si512(v, _mm512_set1_epi32(15))), m));
  emit(1, _mm512_fmadd_ps(d, to_float(_mm512_srli_epi32(v, 4)), m));
}

// Q4_K and Q5_K: sub-block s = 2j + half covers weights 32s .. 32s + 31.
template <bool kFifthBit, typename Block, typename Emit>
inline void decode_scale_min(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const Block*>(p);
  const float d = _cvtsh_ss(b->d), dmin = _cvtsh_ss(b->dmin);
  const __m512i low = _mm512_set1_epi32(15), one = _mm512_set1_epi32(1);
  for (int j = 0; j < 4; ++j) {
    int sc0, m0, sc1, m1;
    k_scale_min(b->scales, 2 * j, sc0, m0);
    k_scale_min(b->scales, 2 * j + 1, sc1, m1);
    const __m512 s0 = _mm512_set1_ps(d * sc0), o0 = _mm512_set1_ps(dmin * m0);
    const __m512 s1 = _mm512_set1_ps(d * sc1), o1 = _mm512_set1_ps(dmin * m1);
    for (int c = 0; c < 2; ++c) {
      const __m512i v = bytes16(b->qs + 32 * j + 16 * c);
      __m512i q0 = _mm512_and_si512(v, low), q1 = _mm512_srli_epi32(v, 4);
      if constexpr (kFifthBit) {
        const __m512i h = bytes16(reinterpret_cast<const BlockQ5K*>(p)->qh + 16 * c);
        q0 = _mm512_or_si512(q0, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * j), one), 4));
        q1 = _mm512_or_si512(q1, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * j + 1), one), 4));
      }
      emit(4 * j + c, _mm512_fmsub_ps(s0, to_float(q0), o0));
      emit(4 * j + 2 + c, _mm512_fmsub_ps(s1, to_float(q1), o1));
    }
  }
}

template <typename Emit>
inline void decode_q6_k(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ6K*>(p);
  const float d = _cvtsh_ss(b->d);
  const __m512i low = _mm512_set1_epi32(15), three = _mm512_set1_epi32(3), bias = _mm512_set1_epi32(32);
  for (int n = 0; n < 2; ++n) {
    for (int c = 0; c < 2; ++c) {
      const __m512i a = bytes16(b->ql + 64 * n + 16 * c), e = bytes16(b->ql + 64 * n + 32 + 16 * c);
      const __m512i h = bytes16(b->qh + 32 * n + 16 * c);
      const __m512i q[4] = {_mm512_and_si512(a, low), _mm512_and_si512(e, low), _mm512_srli_epi32(a, 4), _mm512_srli_epi32(e, 4)};
      for (int k = 0; k < 4; ++k) {
        const __m512i hi = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * k), three), 4);
        const int chunk = 8 * n + 2 * k + c;  // the 16-weight group, which is also the scale index
        const __m512 s = _mm512_set1_ps(d * b->scales[chunk]);
        emit(chunk, _mm512_mul_ps(s, to_float(_mm512_sub_epi32(_mm512_or_si512(q[k], hi), bias))));
      }
    }
  }
}

template <typename Emit>
inline void decode_block(QuantFormat f, const uint8_t* p, Emit emit) {
  switch (f) {
    case QuantFormat::kQ8_0: return decode_q8_0(p, emit);
    case QuantFormat::kQ4_0: return decode_q4_0(p, emit);
    case QuantFormat::kQ4_1: return decode_q4_1(p, emit);
    case QuantFormat::kQ4_K: return decode_scale_min<false, BlockQ4K>(p, emit);
    case QuantFormat::kQ5_K: return decode_scale_min<true, BlockQ5K>(p, emit);
    case QuantFormat::kQ6_K: return decode_q6_k(p, emit);
    default: return;
  }
}

// 16-bit float rows, 16 lanes at a time; `n` < 16 lanes at the tail are masked.
inline __m512 load_halfs(QuantFormat f, const uint16_t* p, int64_t n) {
  const __mmask16 mask = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __m256i v = _mm256_maskz_loadu_epi16(mask, p);
  if (f == QuantFormat::kF16) return _mm512_cvtph_ps(v);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

void matvec_rows_halfs(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const auto* w = reinterpret_cast<const uint16_t*>(m.codes + r * m.row_bytes);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 32 <= m.cols; c += 32) {
      acc0 = _mm512_fmadd_ps(load_halfs(m.format, w + c, 16), _mm512_loadu_ps(x + c), acc0);
      acc1 = _mm512_fmadd_ps(load_halfs(m.format, w + c + 16, 16), _mm512_loadu_ps(x + c + 16), acc1);
    }
    for (; c < m.cols; c += 16) {
      const int64_t n = std::min<int64_t>(16, m.cols - c);
      const __m512 xv = _mm512_maskz_loadu_ps(n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1), x + c);
      acc0 = _mm512_fmadd_ps(load_halfs(m.format, w + c, n), xv, acc0);
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  }
}

}  // namespace

void gguf_matvec_rows_avx512(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  if (m.format == QuantFormat::kF16 || m.format == QuantFormat::kBF16) return matvec_rows_halfs(m, x, y, r0, r1);
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* q = m.codes + r * m.row_bytes;
    // Four accumulators so consecutive FMAs do not wait on each other.
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t b = 0; b < m.blocks_per_row; ++b) {
      const float* xb = x + b * bs;
      decode_block(m.format, q + b * bb, [&](int k, __m512 w) { acc[k & 3] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xb + 16 * k), acc[k & 3]); });
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }
}

void gguf_dequant_tile_avx512(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld) {
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* q = m.codes + r * m.row_bytes;
    float* o = out + (r - r0) * ld;
    if (m.format == QuantFormat::kF16 || m.format == QuantFormat::kBF16) {
      const auto* w = reinterpret_cast<const uint16_t*>(q);
      for (int64_t c = b0; c < b1; c += 16) {
        const int64_t n = std::min<int64_t>(16, b1 - c);
        _mm512_mask_storeu_ps(o + (c - b0), n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1), load_halfs(m.format, w + c, n));
      }
      continue;
    }
    for (int64_t b = b0; b < b1; ++b) {
      float* ob = o + (b - b0) * bs;
      decode_block(m.format, q + b * bb, [&](int k, __m512 w) { _mm512_storeu_ps(ob + 16 * k, w); });
    }
  }
}

}  // namespace hearth
