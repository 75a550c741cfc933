// AVX2 kernels of the GGUF block formats: each block is decoded 8 weights at a time into a
// float vector (codes widened to 32-bit lanes, nibbles and high bits masked in, scale and min
// applied by FMA), which the GEMV multiplies with x and the tile dequantizer stores.
#include <immintrin.h>

#include <algorithm>

#include "inference/quant/gguf_blocks.h"
#include "inference/quant/gguf_kernels.h"

namespace hearth {
namespace {

using namespace gguf;

inline __m256i bytes8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline __m256 half(uint16_t h) { return _mm256_set1_ps(_cvtsh_ss(h)); }
inline __m256 to_float(__m256i v) { return _mm256_cvtepi32_ps(v); }

// Each decoder calls emit(k, w) with weights 8k .. 8k + 7 of the block.
template <typename Emit>
inline void decode_q8_0(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
  const __m256 d = half(b->d);
  for (int k = 0; k < 4; ++k) {
    const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + 8 * k)));
    emit(k, _mm256_mul_ps(d, to_float(q)));
  }
}

template <typename Emit>
inline void decode_q4_0(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(p);
  const __m256 d = half(b->d);
  const __m256i eight = _mm256_set1_epi32(8), low = _mm256_set1_epi32(15);
  for (int c = 0; c < 2; ++c) {
    const __m256i v = bytes8(b->qs + 8 * c);
    emit(c, _mm256_mul_ps(d, to_float(_mm256_sub_epi32(_mm256_and_si256(v, low), eight))));
    emit(2 + c, _mm256_mul_ps(d, to_float(_mm256_sub_epi32(_mm256_srli_epi32(v, 4), eight))));
  }
}

template <typename Emit>
inline void decode_q4_1(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ4_1*>(p);
  const __m256 d = half(b->d), m = half(b->m);
  for (int c = 0; c < 2; ++c) {
    const __m256i v = bytes8(b->qs + 8 * c);
    emit(c, _mm256_fmadd_ps(d, to_float(_mm256_and_si256(v, _mm256_set1_epi32(15))), m));
    emit(2 + c, _mm256_fmadd_ps(d, to_float(_mm256_srli_epi32(v, 4)), m));
  }
}

// Q4_K and Q5_K: sub-block s = 2j + half covers weights 32s .. 32s + 31.
template <bool kFifthBit, typename Block, typename Emit>
inline void decode_scale_min(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const Block*>(p);
  const float d = _cvtsh_ss(b->d), dmin = _cvtsh_ss(b->dmin);
  const __m256i low = _mm256_set1_epi32(15), one = _mm256_set1_epi32(1);
  for (int j = 0; j < 4; ++j) {
    int sc0, m0, sc1, m1;
    k_scale_min(b->scales, 2 * j, sc0, m0);
    k_scale_min(b->scales, 2 * j + 1, sc1, m1);
    const __m256 s0 = _mm256_set1_ps(d * sc0), o0 = _mm256_set1_ps(dmin * m0);
    const __m256 s1 = _mm256_set1_ps(d * sc1), o1 = _mm256_set1_ps(dmin * m1);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = bytes8(b->qs + 32 * j + 8 * c);
      __m256i q0 = _mm256_and_si256(v, low), q1 = _mm256_srli_epi32(v, 4);
      if constexpr (kFifthBit) {
        const __m256i h = bytes8(reinterpret_cast<const BlockQ5K*>(p)->qh + 8 * c);
        q0 = _mm256_or_si256(q0, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * j), one), 4));
        q1 = _mm256_or_si256(q1, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * j + 1), one), 4));
      }
      emit(8 * j + c, _mm256_fmsub_ps(s0, to_float(q0), o0));
      emit(8 * j + 4 + c, _mm256_fmsub_ps(s1, to_float(q1), o1));
    }
  }
}

template <typename Emit>
inline void decode_q6_k(const uint8_t* p, Emit emit) {
  const auto* b = reinterpret_cast<const BlockQ6K*>(p);
  const float d = _cvtsh_ss(b->d);
  const __m256i low = _mm256_set1_epi32(15), three = _mm256_set1_epi32(3), bias = _mm256_set1_epi32(32);
  for (int n = 0; n < 2; ++n) {
    for (int c = 0; c < 4; ++c) {
      const __m256i a = bytes8(b->ql + 64 * n + 8 * c), e = bytes8(b->ql + 64 * n + 32 + 8 * c);
      const __m256i h = bytes8(b->qh + 32 * n + 8 * c);
      const __m256i q[4] = {_mm256_and_si256(a, low), _mm256_and_si256(e, low), _mm256_srli_epi32(a, 4), _mm256_srli_epi32(e, 4)};
      for (int k = 0; k < 4; ++k) {
        const __m256i hi = _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * k), three), 4);
        const int chunk = 16 * n + 4 * k + c;  // 8-weight chunk; its scale is scales[chunk / 2]
        const __m256 s = _mm256_set1_ps(d * b->scales[chunk / 2]);
        emit(chunk, _mm256_mul_ps(s, to_float(_mm256_sub_epi32(_mm256_or_si256(q[k], hi), bias))));
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

// 8 16-bit floats of a row (F16 through F16C, BF16 by a shift).
inline __m256 load_halfs8(QuantFormat f, const uint16_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (f == QuantFormat::kF16) return _mm256_cvtph_ps(v);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

inline float half_scalar(QuantFormat f, uint16_t h) { return f == QuantFormat::kF16 ? _cvtsh_ss(h) : bf16_to_float(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void matvec_rows_halfs(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const auto* w = reinterpret_cast<const uint16_t*>(m.codes + r * m.row_bytes);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= m.cols; c += 16) {
      acc0 = _mm256_fmadd_ps(load_halfs8(m.format, w + c), _mm256_loadu_ps(x + c), acc0);
      acc1 = _mm256_fmadd_ps(load_halfs8(m.format, w + c + 8), _mm256_loadu_ps(x + c + 8), acc1);
    }
    float tail = 0.0f;
    for (; c < m.cols; ++c) tail += half_scalar(m.format, w[c]) * x[c];
    y[r] = hsum(_mm256_add_ps(acc0, acc1)) + tail;
  }
}

}  // namespace

void gguf_matvec_rows_avx2(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  if (m.format == QuantFormat::kF16 || m.format == QuantFormat::kBF16) return matvec_rows_halfs(m, x, y, r0, r1);
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* q = m.codes + r * m.row_bytes;
    // Four accumulators so consecutive FMAs do not wait on each other.
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < m.blocks_per_row; ++b) {
      const float* xb = x + b * bs;
      decode_block(m.format, q + b * bb, [&](int k, __m256 w) { acc[k & 3] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xb + 8 * k), acc[k & 3]); });
    }
    y[r] = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
}

void gguf_dequant_tile_avx2(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld) {
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* q = m.codes + r * m.row_bytes;
    float* o = out + (r - r0) * ld;
    if (m.format == QuantFormat::kF16 || m.format == QuantFormat::kBF16) {
      const auto* w = reinterpret_cast<const uint16_t*>(q);
      int64_t c = b0;
      for (; c + 8 <= b1; c += 8) _mm256_storeu_ps(o + (c - b0), load_halfs8(m.format, w + c));
      for (; c < b1; ++c) o[c - b0] = half_scalar(m.format, w[c]);
      continue;
    }
    for (int64_t b = b0; b < b1; ++b) {
      float* ob = o + (b - b0) * bs;
      decode_block(m.format, q + b * bb, [&](int k, __m256 w) { _mm256_storeu_ps(ob + 8 * k, w); });
    }
  }
}

}  // namespace hearth
