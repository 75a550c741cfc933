// Half-precision scales rounded in a chosen direction, so a block's stored range still covers
// every weight after the scale is rounded to fp16 (shared by the GGUF block quantizers).
#pragma once
#include <cstdint>

#include "inference/quant/fp16.h"

namespace hearth::gguf {

// The smallest half >= v (v >= 0; saturates at 65504).
inline uint16_t fp16_at_least(float v) {
  uint16_t h = float_to_fp16(v);
  while (fp16_to_float(h) < v && h < 0x7BFF) ++h;
  return h;
}

// The largest half <= v (saturates at -65504).
inline uint16_t fp16_at_most(float v) {
  uint16_t h = float_to_fp16(v);
  while (fp16_to_float(h) > v) {
    if (h == 0x0000) {
      h = 0x8001;  // below +0: the smallest negative subnormal
    } else if (h & 0x8000) {
      if (h == 0xFBFF) break;
      ++h;  // negative: larger magnitude is smaller
    } else {
      --h;
    }
  }
  return h;
}

}  // namespace hearth::gguf
