#include "inference/quant/nf4_format.h"

#include <algorithm>
#include <cmath>

#include "inference/quant/quant_format.h"

namespace hearth {

// bitsandbytes' NF4 values: quantiles of N(0, 1) normalized to [-1, 1], with an exact zero.
const float kNF4Table[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

const int8_t kNF4Int8Table[16] = {-127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127};

uint8_t nf4_nearest_code(float v) {
  // The table is sorted, so the nearest value is found by comparing against midpoints.
  uint8_t code = 0;
  for (int i = 1; i < 16; ++i) {
    if (v > 0.5f * (kNF4Table[i - 1] + kNF4Table[i])) code = static_cast<uint8_t>(i);
  }
  return code;
}

void nf4_quantize_block(const float* w, int64_t n, float absmax, uint8_t* codes, int64_t block) {
  uint8_t q[64];
  // A non-positive absmax (an all-zero block, or double-quantization error) stores zeros.
  const float inv = absmax > 0.0f ? 1.0f / absmax : 0.0f;
  const int64_t half = block / 2;
  for (int64_t i = 0; i < block; ++i) q[i] = nf4_nearest_code(i < n ? w[i] * inv : 0.0f);
  for (int64_t i = 0; i < half; ++i) codes[i] = static_cast<uint8_t>(q[i] | (q[i + half] << 4));
}

void nf4_dequantize_block(const uint8_t* codes, float absmax, float* out, int64_t block) {
  const int64_t half = block / 2;
  for (int64_t i = 0; i < half; ++i) {
    out[i] = kNF4Table[codes[i] & 0x0F] * absmax;
    out[i + half] = kNF4Table[codes[i] >> 4] * absmax;
  }
}

void nf4_quantize_absmax(const float* absmax, int64_t n, int8_t* codes, float* group_scale, float* group_offset) {
  for (int64_t g0 = 0; g0 < n; g0 += kNF4AbsmaxGroup) {
    const int64_t g1 = std::min(n, g0 + kNF4AbsmaxGroup);
    double sum = 0.0;
    for (int64_t i = g0; i < g1; ++i) sum += absmax[i];
    const float mean = static_cast<float>(sum / static_cast<double>(g1 - g0));
    float spread = 0.0f;
    for (int64_t i = g0; i < g1; ++i) spread = std::max(spread, std::fabs(absmax[i] - mean));
    const float scale = spread / 127.0f;
    const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
    for (int64_t i = g0; i < g1; ++i) {
      const float q = std::round((absmax[i] - mean) * inv);
      codes[i] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
    group_scale[g0 / kNF4AbsmaxGroup] = scale;
    group_offset[g0 / kNF4AbsmaxGroup] = mean;
  }
}

}  // namespace hearth
