// GGUF's block formats (llama.cpp's ggml types Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, and F16 / BF16
// rows) as plain structs with their byte layouts, and quantize_row / dequantize_row pairs.
#pragma once
#include <cstdint>

namespace hearth::gguf {

constexpr int64_t kQK = 32;    // weights per block of Q8_0, Q4_0, Q4_1
constexpr int64_t kQKK = 256;  // weights per super-block of Q4_K, Q5_K, Q6_K

// Scales are IEEE half bits. Weight i of a block (i in 0..31, or 0..255 for the K formats):
// w = d * qs[i].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
// w[i] = d * ((qs[i] & 15) - 8), w[i + 16] = d * ((qs[i] >> 4) - 8), i < 16.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
// As Q4_0 with an offset and unsigned codes: w = d * q + m.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
// 8 sub-blocks of 32 weights; sub-block s has a 6-bit scale sc_s and min m_s packed in `scales`
// (k_scale_min). Weights 64j .. 64j+31 are the low nibbles of qs[32j .. 32j+31] (sub-block 2j),
// weights 64j+32 .. 64j+63 their high nibbles (sub-block 2j+1). w = d * sc_s * q - dmin * m_s.
struct BlockQ4K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
// Q4_K with a fifth bit: bit (2j + half) of qh[l] is the high bit of the weight whose nibble is
// in qs[32j + l] (half 0 = low nibble): q = nibble + 16 * bit, 0..31.
struct BlockQ5K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
// 16 sub-blocks of 16 weights, each with an int8 scale; q = 6 bits - 32. For half n (128
// weights) and quarter k (32 weights) of it, weight l of the quarter takes its low 4 bits from
// ql[64n + l + 32 (k & 1)] (low nibble for k < 2, high for k >= 2) and its high 2 bits from bits
// 2k, 2k+1 of qh[32n + l]. w = d * scales[i / 16] * q.
struct BlockQ6K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20, "GGUF block sizes");
static_assert(sizeof(BlockQ4K) == 144 && sizeof(BlockQ5K) == 176 && sizeof(BlockQ6K) == 210, "GGUF K block sizes");

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K / Q5_K block.
inline void k_scale_min(const uint8_t* scales, int s, int& sc, int& m) {
  if (s < 4) {
    sc = scales[s] & 63;
    m = scales[s + 4] & 63;
  } else {
    sc = (scales[s + 4] & 15) | ((scales[s - 4] >> 6) << 4);
    m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

// quantize_row_*: n weights (a multiple of the block size) -> n / block blocks at `out`.
// Each scale is chosen so every weight lies in its block's representable range and rounds to
// the nearest code (docs/gguf.md states the error bounds the tests check).
void quantize_row_q8_0(const float* x, BlockQ8_0* out, int64_t n);
void quantize_row_q4_0(const float* x, BlockQ4_0* out, int64_t n);
void quantize_row_q4_1(const float* x, BlockQ4_1* out, int64_t n);
void quantize_row_q4_k(const float* x, BlockQ4K* out, int64_t n);
void quantize_row_q5_k(const float* x, BlockQ5K* out, int64_t n);
void quantize_row_q6_k(const float* x, BlockQ6K* out, int64_t n);
void quantize_row_f16(const float* x, uint16_t* out, int64_t n);
void quantize_row_bf16(const float* x, uint16_t* out, int64_t n);  // round to nearest even

// dequantize_row_*: the n weights of n / block blocks.
void dequantize_row_q8_0(const BlockQ8_0* in, float* y, int64_t n);
void dequantize_row_q4_0(const BlockQ4_0* in, float* y, int64_t n);
void dequantize_row_q4_1(const BlockQ4_1* in, float* y, int64_t n);
void dequantize_row_q4_k(const BlockQ4K* in, float* y, int64_t n);
void dequantize_row_q5_k(const BlockQ5K* in, float* y, int64_t n);
void dequantize_row_q6_k(const BlockQ6K* in, float* y, int64_t n);
void dequantize_row_f16(const uint16_t* in, float* y, int64_t n);
void dequantize_row_bf16(const uint16_t* in, float* y, int64_t n);

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

}  // namespace hearth::gguf
