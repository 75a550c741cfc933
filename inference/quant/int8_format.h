// Symmetric int8 reference quantization (like llama.cpp's Q8_0): groups of 32 weights, one
// fp16 scale per group, codes in [-127, 127].
#pragma once
#include <cstdint>

namespace hearth {

// Quantizes the first n (<= 32) weights of a group (the rest are padding, stored as 0).
// scale = absmax / 127 rounded to fp16; code = clamp(round(w / scale), -127, 127).
void int8_quantize_block(const float* w, int64_t n, int8_t* codes, uint16_t* scale_fp16);
// The 32 weights of a group: code * scale.
void int8_dequantize_block(const int8_t* codes, float scale, float* out);

}  // namespace hearth
