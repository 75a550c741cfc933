#include "inference/quant/int4_format.h"

#include <algorithm>
#include <cmath>

#include "inference/quant/fp16.h"

namespace hearth {

void int4_quantize_block(const float* w, int64_t n, uint8_t* codes, uint16_t* scale_fp16) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(w[i]));
  *scale_fp16 = float_to_fp16(absmax / 7.0f);
  // Quantize against the scale actually stored, so rounding of the fp16 scale cannot bias codes.
  const float scale = fp16_to_float(*scale_fp16);
  const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
  uint8_t q[32];
  for (int64_t i = 0; i < 32; ++i) {
    const float v = i < n ? std::round(w[i] * inv) : 0.0f;
    q[i] = static_cast<uint8_t>(std::clamp(v, -8.0f, 7.0f) + 8.0f);
  }
  for (int i = 0; i < 16; ++i) codes[i] = static_cast<uint8_t>(q[i] | (q[i + 16] << 4));
}

void int4_dequantize_block(const uint8_t* codes, float scale, float* out) {
  for (int i = 0; i < 16; ++i) {
    out[i] = static_cast<float>((codes[i] & 0x0F) - 8) * scale;
    out[i + 16] = static_cast<float>((codes[i] >> 4) - 8) * scale;
  }
}

}  // namespace hearth
