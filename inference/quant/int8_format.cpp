#include "inference/quant/int8_format.h"

#include <algorithm>
#include <cmath>

#include "inference/quant/fp16.h"

namespace hearth {

void int8_quantize_block(const float* w, int64_t n, int8_t* codes, uint16_t* scale_fp16) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(w[i]));
  *scale_fp16 = float_to_fp16(absmax / 127.0f);
  // Tiny blocks get subnormal fp16 scales with few significant bits; rounded down, the largest
  // weight would clip past half a step. The next fp16 value up keeps every weight in range.
  while (fp16_to_float(*scale_fp16) * 127.5f < absmax) ++*scale_fp16;
  const float scale = fp16_to_float(*scale_fp16);
  const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
  for (int64_t i = 0; i < 32; ++i) {
    const float v = i < n ? std::round(w[i] * inv) : 0.0f;
    codes[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
  }
}

void int8_dequantize_block(const int8_t* codes, float scale, float* out) {
  for (int i = 0; i < 32; ++i) out[i] = static_cast<float>(codes[i]) * scale;
}

}  // namespace hearth
