// GGUF's 32-weight block formats (Q8_0, Q4_0, Q4_1) and 16-bit float rows: quantize and
// dequantize one row. Q8_0 and Q4_0 share Hearth's int8 / int4 quantizers (same codes and scale).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "inference/quant/fp16.h"
#include "inference/quant/gguf_blocks.h"
#include "inference/quant/gguf_scale.h"
#include "inference/quant/int4_format.h"
#include "inference/quant/int8_format.h"

namespace hearth::gguf {

void quantize_row_q8_0(const float* x, BlockQ8_0* out, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b) int8_quantize_block(x + b * kQK, kQK, out[b].qs, &out[b].d);
}

void quantize_row_q4_0(const float* x, BlockQ4_0* out, int64_t n) {
  // Hearth's int4 group is Q4_0's block: code + 8 in nibbles, low nibbles first, one fp16 scale.
  for (int64_t b = 0; b < n / kQK; ++b) int4_quantize_block(x + b * kQK, kQK, out[b].qs, &out[b].d);
}

void quantize_row_q4_1(const float* x, BlockQ4_1* out, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* w = x + b * kQK;
    const float lo = *std::min_element(w, w + kQK), hi = *std::max_element(w, w + kQK);
    // The offset rounds down and the step up, so [m, m + 15 d] still holds every weight.
    out[b].m = fp16_at_most(lo);
    const float m = fp16_to_float(out[b].m);
    out[b].d = fp16_at_least((hi - m) / 15.0f);
    const float d = fp16_to_float(out[b].d), inv = d > 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[32];
    for (int i = 0; i < 32; ++i) q[i] = static_cast<uint8_t>(std::clamp(std::nearbyint((w[i] - m) * inv), 0.0f, 15.0f));
    for (int i = 0; i < 16; ++i) out[b].qs[i] = static_cast<uint8_t>(q[i] | (q[i + 16] << 4));
  }
}

void quantize_row_f16(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = float_to_fp16(x[i]);
}

void quantize_row_bf16(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], 4);
    if (std::isnan(x[i])) {
      out[i] = static_cast<uint16_t>((bits >> 16) | 0x40);  // stays a NaN
      continue;
    }
    bits += 0x7FFF + ((bits >> 16) & 1);  // round to nearest, ties to even
    out[i] = static_cast<uint16_t>(bits >> 16);
  }
}

void dequantize_row_q8_0(const BlockQ8_0* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = fp16_to_float(in[b].d);
    for (int i = 0; i < 32; ++i) y[b * kQK + i] = d * static_cast<float>(in[b].qs[i]);
  }
}

void dequantize_row_q4_0(const BlockQ4_0* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = fp16_to_float(in[b].d);
    for (int i = 0; i < 16; ++i) {
      y[b * kQK + i] = d * static_cast<float>((in[b].qs[i] & 15) - 8);
      y[b * kQK + i + 16] = d * static_cast<float>((in[b].qs[i] >> 4) - 8);
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = fp16_to_float(in[b].d), m = fp16_to_float(in[b].m);
    for (int i = 0; i < 16; ++i) {
      y[b * kQK + i] = d * static_cast<float>(in[b].qs[i] & 15) + m;
      y[b * kQK + i + 16] = d * static_cast<float>(in[b].qs[i] >> 4) + m;
    }
  }
}

void dequantize_row_f16(const uint16_t* in, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_float(in[i]);
}

void dequantize_row_bf16(const uint16_t* in, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_float(in[i]);
}

}  // namespace hearth::gguf
