// Portable GGUF kernels: blocks decoded by the reference dequantizers, then multiplied in float.
// The fallback on CPUs without AVX2 and the baseline of the SIMD kernels' tests.
#include <algorithm>
#include <vector>

#include "inference/quant/gguf_blocks.h"
#include "inference/quant/gguf_kernels.h"

namespace hearth {

void gguf_dequantize_blocks(QuantFormat format, const uint8_t* blocks, int64_t count, float* out) {
  using namespace gguf;
  const int64_t n = count * quant_block_size(format);
  switch (format) {
    case QuantFormat::kQ8_0: return dequantize_row_q8_0(reinterpret_cast<const BlockQ8_0*>(blocks), out, n);
    case QuantFormat::kQ4_0: return dequantize_row_q4_0(reinterpret_cast<const BlockQ4_0*>(blocks), out, n);
    case QuantFormat::kQ4_1: return dequantize_row_q4_1(reinterpret_cast<const BlockQ4_1*>(blocks), out, n);
    case QuantFormat::kQ4_K: return dequantize_row_q4_k(reinterpret_cast<const BlockQ4K*>(blocks), out, n);
    case QuantFormat::kQ5_K: return dequantize_row_q5_k(reinterpret_cast<const BlockQ5K*>(blocks), out, n);
    case QuantFormat::kQ6_K: return dequantize_row_q6_k(reinterpret_cast<const BlockQ6K*>(blocks), out, n);
    case QuantFormat::kF16: return dequantize_row_f16(reinterpret_cast<const uint16_t*>(blocks), out, n);
    case QuantFormat::kBF16: return dequantize_row_bf16(reinterpret_cast<const uint16_t*>(blocks), out, n);
    default: break;
  }
}

void gguf_matvec_rows_scalar(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  // Rows are decoded a few blocks at a time into a small buffer (at most 256 weights).
  const int64_t chunk = std::max<int64_t>(1, 256 / bs);
  std::vector<float> w(chunk * bs);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* q = m.codes + r * m.row_bytes;
    float acc = 0.0f;
    for (int64_t b = 0; b < m.blocks_per_row; b += chunk) {
      const int64_t n = std::min(chunk, m.blocks_per_row - b);
      gguf_dequantize_blocks(m.format, q + b * bb, n, w.data());
      const float* xb = x + b * bs;
      for (int64_t i = 0; i < n * bs; ++i) acc += w[i] * xb[i];
    }
    y[r] = acc;
  }
}

void gguf_dequant_tile_scalar(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld) {
  const int64_t bb = quant_block_bytes(m.format);
  for (int64_t r = r0; r < r1; ++r) gguf_dequantize_blocks(m.format, m.codes + r * m.row_bytes + b0 * bb, b1 - b0, out + (r - r0) * ld);
}

}  // namespace hearth
