// AVX2 kernels: NF4 codes (nf4, nf4-32) are decoded with two 8-entry permutes and a blend on bit 3 of the
// code; int4 and int8 codes convert to float directly. Decode uses the int8-activation GEMV of
// quant_matvec_q8_avx2.cpp; these float kernels give the exact product (training, tests).
#include <immintrin.h>

#include <vector>

#include "inference/quant/gguf_kernels.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_kernels.h"
#include "inference/quant/row_tiles.h"

namespace hearth {
namespace {

// Block scales of row r with the F16C conversion (the portable one is software and costs more
// than the 32-weight block it scales); NF4 goes through the shared reconstruction.
void row_scales_f16c(const PackedView& m, int64_t r, int64_t b0, int64_t b1, float* out) {
  if (is_nf4_format(m.format)) return row_block_scales(m, r, b0, b1, out);
  const uint16_t* h = m.scales + r * m.blocks_per_row;
  int64_t b = b0;
  for (; b + 8 <= b1; b += 8) {
    _mm256_storeu_ps(out + (b - b0), _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + b))));
  }
  for (; b < b1; ++b) out[b - b0] = _cvtsh_ss(h[b]);
}

inline __m256i load_bytes8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// table[idx & 15] per lane; bits of idx above bit 3 are ignored.
inline __m256 lut16(__m256i idx, __m256 lo, __m256 hi) {
  const __m256 a = _mm256_permutevar8x32_ps(lo, idx), b = _mm256_permutevar8x32_ps(hi, idx);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

struct Nf4Table {
  __m256 lo = _mm256_loadu_ps(kNF4Table), hi = _mm256_loadu_ps(kNF4Table + 8);
};

// The 64 weights of an NF4 block as 8 vectors in element order (unscaled).
inline void nf4_decode(const uint8_t* p, const Nf4Table& t, __m256 w[8]) {
  for (int k = 0; k < 4; ++k) {
    const __m256i v = load_bytes8(p + 8 * k);
    w[k] = lut16(v, t.lo, t.hi);
    w[k + 4] = lut16(_mm256_srli_epi32(v, 4), t.lo, t.hi);
  }
}

// The 32 weights of an nf4-32 block as 4 vectors in element order (unscaled).
inline void nf4_32_decode(const uint8_t* p, const Nf4Table& t, __m256 w[4]) {
  for (int k = 0; k < 2; ++k) {
    const __m256i v = load_bytes8(p + 8 * k);
    w[k] = lut16(v, t.lo, t.hi);
    w[k + 2] = lut16(_mm256_srli_epi32(v, 4), t.lo, t.hi);
  }
}

// The 32 weights of an int4 group as 4 vectors (unscaled).
inline void int4_decode(const uint8_t* p, __m256 w[4]) {
  const __m256i eight = _mm256_set1_epi32(8), mask = _mm256_set1_epi32(15);
  for (int k = 0; k < 2; ++k) {
    const __m256i v = load_bytes8(p + 8 * k);
    w[k] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v, mask), eight));
    w[k + 2] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v, 4), eight));
  }
}

inline void int8_decode(const uint8_t* p, __m256 w[4]) {
  for (int k = 0; k < 4; ++k) {
    w[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * k))));
  }
}

// Decodes block b of a row into n vectors (n = block / 8), unscaled.
inline int decode_block(QuantFormat f, const uint8_t* p, const Nf4Table& t, __m256 w[8]) {
  switch (f) {
    case QuantFormat::kNF4: nf4_decode(p, t, w); return 8;
    case QuantFormat::kNF4_32: nf4_32_decode(p, t, w); return 4;
    case QuantFormat::kInt4: int4_decode(p, w); return 4;
    case QuantFormat::kInt8: int8_decode(p, w); return 4;
    default: return 0;  // GGUF formats go to gguf_kernels_avx2.cpp
  }
  return 0;
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <QuantFormat F>
void matvec_rows_format(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t nb = m.blocks_per_row, bs = quant_block_size(F), bb = quant_block_bytes(F);
  std::vector<float> scales(nb);
  const Nf4Table t;
  __m256 w[8];
  for (int64_t r = r0; r < r1; ++r) {
    row_scales_f16c(m, r, 0, nb, scales.data());
    const uint8_t* q = m.codes + r * m.row_bytes;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int n = decode_block(F, q + b * bb, t, w);
      const float* xb = x + b * bs;
      __m256 s0 = _mm256_mul_ps(w[0], _mm256_loadu_ps(xb)), s1 = _mm256_mul_ps(w[1], _mm256_loadu_ps(xb + 8));
      for (int k = 2; k < n; k += 2) {
        s0 = _mm256_fmadd_ps(w[k], _mm256_loadu_ps(xb + 8 * k), s0);
        s1 = _mm256_fmadd_ps(w[k + 1], _mm256_loadu_ps(xb + 8 * k + 8), s1);
      }
      const __m256 sc = _mm256_set1_ps(scales[b]);
      acc0 = _mm256_fmadd_ps(s0, sc, acc0);
      acc1 = _mm256_fmadd_ps(s1, sc, acc1);
    }
    y[r] = hsum(_mm256_add_ps(acc0, acc1));
  }
}

void matvec_rows_avx2(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  switch (m.format) {
    case QuantFormat::kNF4: return matvec_rows_format<QuantFormat::kNF4>(m, x, y, r0, r1);
    case QuantFormat::kNF4_32: return matvec_rows_format<QuantFormat::kNF4_32>(m, x, y, r0, r1);
    case QuantFormat::kInt4: return matvec_rows_format<QuantFormat::kInt4>(m, x, y, r0, r1);
    case QuantFormat::kInt8: return matvec_rows_format<QuantFormat::kInt8>(m, x, y, r0, r1);
    default: return gguf_matvec_rows_avx2(m, x, y, r0, r1);
  }
}

void dequant_tile_avx2(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld) {
  if (is_gguf_format(m.format)) return gguf_dequant_tile_avx2(m, r0, r1, b0, b1, out, ld);
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  std::vector<float> scales(b1 - b0);
  const Nf4Table t;
  __m256 w[8];
  for (int64_t r = r0; r < r1; ++r) {
    row_scales_f16c(m, r, b0, b1, scales.data());
    const uint8_t* q = m.codes + r * m.row_bytes;
    float* o = out + (r - r0) * ld;
    for (int64_t b = b0; b < b1; ++b) {
      const int n = decode_block(m.format, q + b * bb, t, w);
      const __m256 sc = _mm256_set1_ps(scales[b - b0]);
      for (int k = 0; k < n; ++k) _mm256_storeu_ps(o + (b - b0) * bs + 8 * k, _mm256_mul_ps(w[k], sc));
    }
  }
}

}  // namespace

const QuantKernelSet& avx2_kernels() {
  static const QuantKernelSet set{"avx2", matvec_rows_avx2, dequant_tile_avx2, quantize_activation_avx2,
                                  matmul_q8_rows_avx2, quantize_x_blocks_avx2, matmul_row_tiles_avx2};
  return set;
}

}  // namespace hearth
