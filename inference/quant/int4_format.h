// Symmetric int4 reference quantization (like llama.cpp's Q4_0): groups of 32 weights, one
// fp16 scale per group, codes q in [-8, 7] stored as q + 8 in a nibble.
#pragma once
#include <cstdint>

namespace hearth {

// Quantizes the first n (<= 32) weights of a group (the rest are padding, stored as 0).
// scale = absmax / 7 rounded to fp16; code = clamp(round(w / scale), -8, 7) + 8.
// Layout of the 16 bytes: byte i holds weight i in its low nibble, weight i + 16 in its high.
void int4_quantize_block(const float* w, int64_t n, uint8_t* codes, uint16_t* scale_fp16);
// The 32 weights of a group: (code - 8) * scale.
void int4_dequantize_block(const uint8_t* codes, float scale, float* out);

}  // namespace hearth
