// AVX-512 kernels: NF4 and int4 codes are decoded with a 16-entry permute (vpermps looks at
// only the low 4 bits of each index lane, so no masking is needed), int8 by sign extension.
// GCC 12's own AVX-512 headers trip -Wmaybe-uninitialized (a known false positive on the
// "undefined" vectors they use internally); silence it for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <vector>

#include "inference/quant/gguf_kernels.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_kernels.h"

namespace hearth {
namespace {

const float kInt4Values[16] = {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7};

// 16 bytes zero-extended to 16 dword lanes: the low nibble of lane i is code i of a low half.
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

inline __m512i load_bytes16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Dot product of one NF4 block (64 weights, 32 bytes) with x, before the block scale.
inline __m512 nf4_block_dot(const uint8_t* p, const float* x, __m512 table) {
  const __m512i v0 = load_bytes16(p), v1 = load_bytes16(p + 16);
  __m512 s = _mm512_mul_ps(_mm512_permutexvar_ps(v0, table), _mm512_loadu_ps(x));
  s = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, table), _mm512_loadu_ps(x + 16), s);
  s = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), table), _mm512_loadu_ps(x + 32), s);
  return _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), table), _mm512_loadu_ps(x + 48), s);
}

// Dot product of one 32-weight nibble block (int4 or nf4-32, 16 bytes) with x, before the scale;
// `table` holds the format's 16 code values.
inline __m512 nibble32_block_dot(const uint8_t* p, const float* x, __m512 table) {
  const __m512i v = load_bytes16(p);
  const __m512 s = _mm512_mul_ps(_mm512_permutexvar_ps(v, table), _mm512_loadu_ps(x));
  return _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table), _mm512_loadu_ps(x + 16), s);
}

inline __m512 int8_lanes(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

inline __m512 int8_block_dot(const uint8_t* p, const float* x) {
  const __m512 s = _mm512_mul_ps(int8_lanes(p), _mm512_loadu_ps(x));
  return _mm512_fmadd_ps(int8_lanes(p + 16), _mm512_loadu_ps(x + 16), s);
}

// One row: blocks alternate between two accumulators so the scale FMAs do not form a single
// dependency chain (that chain, not memory, would bound the short int8/int4 blocks).
template <typename BlockDot>
float row_dot(int64_t blocks, const float* scales, int64_t block_bytes, int64_t block, const uint8_t* q, const float* x,
              BlockDot dot) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < blocks; b += 2) {
    acc0 = _mm512_fmadd_ps(dot(q + b * block_bytes, x + b * block), _mm512_set1_ps(scales[b]), acc0);
    acc1 = _mm512_fmadd_ps(dot(q + (b + 1) * block_bytes, x + (b + 1) * block), _mm512_set1_ps(scales[b + 1]), acc1);
  }
  if (b < blocks) acc0 = _mm512_fmadd_ps(dot(q + b * block_bytes, x + b * block), _mm512_set1_ps(scales[b]), acc0);
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void matvec_rows_avx512(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  if (is_gguf_format(m.format)) return gguf_matvec_rows_avx512(m, x, y, r0, r1);
  const int64_t nb = m.blocks_per_row;
  std::vector<float> scales(nb);
  const __m512 nf4 = _mm512_loadu_ps(kNF4Table), int4 = _mm512_loadu_ps(kInt4Values);
  for (int64_t r = r0; r < r1; ++r) {
    row_scales_f16c(m, r, 0, nb, scales.data());
    const uint8_t* q = m.codes + r * m.row_bytes;
    switch (m.format) {
      case QuantFormat::kNF4:
        y[r] = row_dot(nb, scales.data(), 32, 64, q, x, [&](const uint8_t* p, const float* xb) { return nf4_block_dot(p, xb, nf4); });
        break;
      case QuantFormat::kNF4_32:
        y[r] = row_dot(nb, scales.data(), 16, 32, q, x, [&](const uint8_t* p, const float* xb) { return nibble32_block_dot(p, xb, nf4); });
        break;
      case QuantFormat::kInt4:
        y[r] = row_dot(nb, scales.data(), 16, 32, q, x, [&](const uint8_t* p, const float* xb) { return nibble32_block_dot(p, xb, int4); });
        break;
      case QuantFormat::kInt8:
        y[r] = row_dot(nb, scales.data(), 32, 32, q, x, [](const uint8_t* p, const float* xb) { return int8_block_dot(p, xb); });
        break;
      default: break;
    }
  }
}

void dequant_block(QuantFormat f, const uint8_t* p, __m512 s, float* o, __m512 nf4, __m512 int4) {
  switch (f) {
    case QuantFormat::kNF4: {
      const __m512i v0 = load_bytes16(p), v1 = load_bytes16(p + 16);
      _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_permutexvar_ps(v0, nf4), s));
      _mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_permutexvar_ps(v1, nf4), s));
      _mm512_storeu_ps(o + 32, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), nf4), s));
      _mm512_storeu_ps(o + 48, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), nf4), s));
      break;
    }
    case QuantFormat::kNF4_32:
    case QuantFormat::kInt4: {
      // Both are 16 code bytes of two nibbles; only the code values differ.
      const __m512 table = f == QuantFormat::kInt4 ? int4 : nf4;
      const __m512i v = load_bytes16(p);
      _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_permutexvar_ps(v, table), s));
      _mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table), s));
      break;
    }
    case QuantFormat::kInt8:
      _mm512_storeu_ps(o, _mm512_mul_ps(int8_lanes(p), s));
      _mm512_storeu_ps(o + 16, _mm512_mul_ps(int8_lanes(p + 16), s));
      break;
    default: break;
  }
}

void dequant_tile_avx512(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld) {
  if (is_gguf_format(m.format)) return gguf_dequant_tile_avx512(m, r0, r1, b0, b1, out, ld);
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  const __m512 nf4 = _mm512_loadu_ps(kNF4Table), int4 = _mm512_loadu_ps(kInt4Values);
  std::vector<float> scales(b1 - b0);
  for (int64_t r = r0; r < r1; ++r) {
    row_scales_f16c(m, r, b0, b1, scales.data());
    const uint8_t* q = m.codes + r * m.row_bytes;
    float* o = out + (r - r0) * ld;
    for (int64_t b = b0; b < b1; ++b) {
      dequant_block(m.format, q + b * bb, _mm512_set1_ps(scales[b - b0]), o + (b - b0) * bs, nf4, int4);
    }
  }
}

}  // namespace

const QuantKernelSet& avx512_kernels() {
  static const QuantKernelSet set{"avx512", matvec_rows_avx512, dequant_tile_avx512};
  return set;
}

}  // namespace hearth
