// Portable kernels: the fallback on CPUs without AVX2, and the baseline the SIMD sets are
// tested against (besides the double-precision reference).
#include <algorithm>
#include <vector>

#include "inference/quant/fp16.h"
#include "inference/quant/gguf_kernels.h"
#include "inference/quant/int4_format.h"
#include "inference/quant/int8_format.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/quant_kernels.h"

namespace hearth {

void row_block_scales(const PackedView& m, int64_t r, int64_t b0, int64_t b1, float* out) {
  const int64_t base = r * m.blocks_per_row;
  if (is_nf4_format(m.format)) {
    for (int64_t b = b0; b < b1; ++b) out[b - b0] = nf4_absmax(m.absmax_codes, m.absmax_scale, m.absmax_offset, base + b);
  } else {
    for (int64_t b = b0; b < b1; ++b) out[b - b0] = fp16_to_float(m.scales[base + b]);
  }
}

namespace {

// One block of any format to floats, through the reference dequantizers.
void dequant_block(QuantFormat format, const uint8_t* codes, float scale, float* out) {
  switch (format) {
    case QuantFormat::kNF4: nf4_dequantize_block(codes, scale, out, 64); break;
    case QuantFormat::kNF4_32: nf4_dequantize_block(codes, scale, out, 32); break;
    case QuantFormat::kInt4: int4_dequantize_block(codes, scale, out); break;
    case QuantFormat::kInt8: int8_dequantize_block(reinterpret_cast<const int8_t*>(codes), scale, out); break;
    default: break;  // GGUF formats go to gguf_kernels_scalar.cpp
  }
}

void matvec_rows_scalar(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1) {
  if (is_gguf_format(m.format)) return gguf_matvec_rows_scalar(m, x, y, r0, r1);
  const int64_t bs = quant_block_size(m.format), bb = quant_block_bytes(m.format);
  std::vector<float> scales(m.blocks_per_row);
  float w[64];
  for (int64_t r = r0; r < r1; ++r) {
    row_block_scales(m, r, 0, m.blocks_per_row, scales.data());
    const uint8_t* q = m.codes + r * m.row_bytes;
    float acc = 0.0f;
    for (int64_t b = 0; b < m.blocks_per_row; ++b) {
      dequant_block(m.format, q + b * bb, 1.0f, w);
      float s = 0.0f;
      for (int64_t i = 0; i < bs; ++i) s += w[i] * x[b * bs + i];
      acc += s * scales[b];
    }
    y[r] = acc;
  }
}

}  // namespace

void dequant_row_blocks_scalar(QuantFormat format, const uint8_t* codes, const float* block_scales, int64_t blocks,
                               float* out) {
  const int64_t bs = quant_block_size(format), bb = quant_block_bytes(format);
  for (int64_t b = 0; b < blocks; ++b) dequant_block(format, codes + b * bb, block_scales[b], out + b * bs);
}

namespace {

void dequant_tile_scalar(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld) {
  if (is_gguf_format(m.format)) return gguf_dequant_tile_scalar(m, r0, r1, b0, b1, out, ld);
  const int64_t bb = quant_block_bytes(m.format);
  std::vector<float> scales(b1 - b0);
  for (int64_t r = r0; r < r1; ++r) {
    row_block_scales(m, r, b0, b1, scales.data());
    dequant_row_blocks_scalar(m.format, m.codes + r * m.row_bytes + b0 * bb, scales.data(), b1 - b0, out + (r - r0) * ld);
  }
}

}  // namespace

const QuantKernelSet& scalar_kernels() {
  static const QuantKernelSet set{"scalar", matvec_rows_scalar, dequant_tile_scalar};
  return set;
}

}  // namespace hearth
