// NF4 (QLoRA's 4-bit NormalFloat) reference quantization: blocks of 64 weights (nf4) or 32
// (nf4-32) scaled by their absmax, and the double quantization of those absmaxes to int8 in
// groups of 256 blocks.
#pragma once
#include <cstdint>

namespace hearth {

// The 16 NF4 code values, exactly bitsandbytes' table, in code order 0..15.
extern const float kNF4Table[16];

// The code values scaled to int8, round(kNF4Table[i] * 127): the weights the int8-activation
// decode kernel multiplies (off by at most absmax / 254 from the exact value).
extern const int8_t kNF4Int8Table[16];

// The code whose table value is nearest to v (v is normally in [-1, 1]).
uint8_t nf4_nearest_code(float v);

// Quantizes the first n (<= block, which is 64 or 32) weights of a block against `absmax`;
// missing weights are padding and get the code of 0.0. Layout of the block / 2 bytes: byte i
// holds weight i in its low nibble and weight i + block / 2 in its high nibble.
void nf4_quantize_block(const float* w, int64_t n, float absmax, uint8_t* codes, int64_t block);
// The `block` weights of a block: table[code] * absmax.
void nf4_dequantize_block(const uint8_t* codes, float absmax, float* out, int64_t block);

// Double quantization of n block absmaxes: per group of kNF4AbsmaxGroup, offset = mean and
// scale = max|a - mean| / 127, code = round((a - mean) / scale). Writes n codes and
// ceil(n / 256) scales and offsets.
void nf4_quantize_absmax(const float* absmax, int64_t n, int8_t* codes, float* group_scale, float* group_offset);
// The reconstructed absmax of block i.
// Block i's absmax from its code (wherever the code is stored, e.g. in row tiles).
inline float nf4_absmax_of(int8_t code, const float* group_scale, const float* group_offset, int64_t i) {
  return static_cast<float>(code) * group_scale[i >> 8] + group_offset[i >> 8];
}
inline float nf4_absmax(const int8_t* codes, const float* group_scale, const float* group_offset, int64_t i) {
  return nf4_absmax_of(codes[i], group_scale, group_offset, i);
}

}  // namespace hearth
