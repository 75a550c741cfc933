#include "inference/quant/fp16.h"

#include <c10/util/Half.h>

#include <algorithm>

namespace hearth {

uint16_t float_to_fp16(float f) {
  // Saturate rather than overflow to inf: an inf scale would zero the whole group.
  f = std::clamp(f, -65504.0f, 65504.0f);
  return c10::Half(f).x;
}

float fp16_to_float(uint16_t h) { return static_cast<float>(c10::Half(h, c10::Half::from_bits())); }

}  // namespace hearth
