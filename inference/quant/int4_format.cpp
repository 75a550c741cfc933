#include "inference/quant/int4_format.h"

#include <algorithm>
#include <cmath>

#include "inference/quant/fp16.h"

namespace hearth {

namespace {

// Squared error of quantizing w[0..n) with `scale`, or -1 when some weight would land more
// than half a step outside the codes [-8, 7] (so every weight keeps the half-step bound).
float int4_block_error(const float* w, int64_t n, float scale) {
  if (scale == 0.0f) return -1.0f;
  const float inv = 1.0f / scale;
  float err = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = w[i] * inv;
    if (x < -8.5f || x > 7.5f) return -1.0f;
    const float q = std::clamp(std::round(x), -8.0f, 7.0f);
    err += (w[i] - q * scale) * (w[i] - q * scale);
  }
  return err;
}

}  // namespace

void int4_quantize_block(const float* w, int64_t n, uint8_t* codes, uint16_t* scale_fp16) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(w[i]));
  // absmax / 7 uses only 15 of the 16 codes. Like llama.cpp's Q4_0 (a negative scale maps the
  // extreme to -8), try a few scales of either sign and keep the one with the least squared
  // error, measured with the fp16 scale actually stored. Six candidates keep quantizing a 1B
  // model at load time to seconds.
  *scale_fp16 = float_to_fp16(absmax / 7.0f);
  float best = int4_block_error(w, n, fp16_to_float(*scale_fp16));
  for (float sign : {1.0f, -1.0f}) {
    for (float k : {7.0f, 7.5f, 8.0f}) {
      const uint16_t candidate = float_to_fp16(sign * absmax / k);
      const float err = int4_block_error(w, n, fp16_to_float(candidate));
      if (err >= 0.0f && err < best) {
        best = err;
        *scale_fp16 = candidate;
      }
    }
  }
  // Quantize against the scale actually stored, so rounding of the fp16 scale cannot bias codes.
  const float scale = fp16_to_float(*scale_fp16);
  const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
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
