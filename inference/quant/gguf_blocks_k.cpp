// GGUF's 256-weight "K" super-block formats (Q4_K, Q5_K, Q6_K): quantize and dequantize one row.
// The quantizers pick each sub-block's range from its min and max (not llama.cpp's iterative
// search): simpler, every weight within half a step of its value, a little more error on average.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "inference/quant/fp16.h"
#include "inference/quant/gguf_blocks.h"
#include "inference/quant/gguf_scale.h"

namespace hearth::gguf {
namespace {

// The 6-bit scales and mins of 8 sub-blocks into Q4_K / Q5_K's 12 bytes (inverse of k_scale_min).
void pack_scale_min(const int sc[8], const int m[8], uint8_t* out) {
  for (int s = 0; s < 4; ++s) {
    out[s] = static_cast<uint8_t>(sc[s] | ((sc[s + 4] >> 4) << 6));
    out[s + 4] = static_cast<uint8_t>(m[s] | ((m[s + 4] >> 4) << 6));
    out[s + 8] = static_cast<uint8_t>((sc[s + 4] & 15) | ((m[s + 4] & 15) << 4));
  }
}

int ceil_code(float need, float unit, int top) {
  if (unit <= 0.0f) return 0;
  return std::clamp(static_cast<int>(std::ceil(need / unit)), 0, top);
}

// Codes 0..levels-1 of one super-block with a scale and min per 32 weights, as Q4_K / Q5_K
// store them: d, dmin (fp16 bits), the 6-bit sc / m, and q per weight.
struct ScaleMinCodes {
  uint16_t d = 0, dmin = 0;
  int sc[8] = {}, m[8] = {};
  uint8_t q[256] = {};
};

ScaleMinCodes quantize_scale_min(const float* x, int levels) {
  ScaleMinCodes r;
  float lo[8], hi[8], max_neg = 0.0f;
  for (int s = 0; s < 8; ++s) {
    lo[s] = std::min(0.0f, *std::min_element(x + 32 * s, x + 32 * s + 32));
    hi[s] = *std::max_element(x + 32 * s, x + 32 * s + 32);
    max_neg = std::max(max_neg, -lo[s]);
  }
  // Mins first (rounded up, so the offset reaches below every weight), then the scales that
  // span from that offset to the sub-block's max (rounded up too).
  r.dmin = fp16_at_least(max_neg / 63.0f);
  const float dmin = fp16_to_float(r.dmin);
  float need[8], max_need = 0.0f;
  for (int s = 0; s < 8; ++s) {
    r.m[s] = ceil_code(-lo[s], dmin, 63);
    need[s] = std::max(0.0f, (hi[s] + dmin * static_cast<float>(r.m[s])) / static_cast<float>(levels - 1));
    max_need = std::max(max_need, need[s]);
  }
  r.d = fp16_at_least(max_need / 63.0f);
  const float d = fp16_to_float(r.d);
  for (int s = 0; s < 8; ++s) {
    r.sc[s] = ceil_code(need[s], d, 63);
    const float step = d * static_cast<float>(r.sc[s]), offset = dmin * static_cast<float>(r.m[s]);
    const float inv = step > 0.0f ? 1.0f / step : 0.0f;
    for (int i = 0; i < 32; ++i) {
      const float q = std::nearbyint((x[32 * s + i] + offset) * inv);
      r.q[32 * s + i] = static_cast<uint8_t>(std::clamp(q, 0.0f, static_cast<float>(levels - 1)));
    }
  }
  return r;
}

}  // namespace

void quantize_row_q4_k(const float* x, BlockQ4K* out, int64_t n) {
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const ScaleMinCodes c = quantize_scale_min(x + b * kQKK, 16);
    BlockQ4K& o = out[b];
    o.d = c.d;
    o.dmin = c.dmin;
    pack_scale_min(c.sc, c.m, o.scales);
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) o.qs[32 * j + l] = static_cast<uint8_t>(c.q[64 * j + l] | (c.q[64 * j + 32 + l] << 4));
    }
  }
}

void quantize_row_q5_k(const float* x, BlockQ5K* out, int64_t n) {
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const ScaleMinCodes c = quantize_scale_min(x + b * kQKK, 32);
    BlockQ5K& o = out[b];
    o.d = c.d;
    o.dmin = c.dmin;
    pack_scale_min(c.sc, c.m, o.scales);
    std::memset(o.qh, 0, sizeof(o.qh));
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = c.q[64 * j + l], hi = c.q[64 * j + 32 + l];
        o.qs[32 * j + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
        o.qh[l] = static_cast<uint8_t>(o.qh[l] | ((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1)));
      }
    }
  }
}

void quantize_row_q6_k(const float* x, BlockQ6K* out, int64_t n) {
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const float* w = x + b * kQKK;
    BlockQ6K& o = out[b];
    // Symmetric per 16 weights: codes -31..31 (of -32..31) times d * sc, sc an int8 scale.
    float need[16], max_need = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float amax = 0.0f;
      for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(w[16 * g + i]));
      need[g] = amax / 31.0f;
      max_need = std::max(max_need, need[g]);
    }
    o.d = fp16_at_least(max_need / 127.0f);
    const float d = fp16_to_float(o.d);
    std::memset(o.ql, 0, sizeof(o.ql));
    std::memset(o.qh, 0, sizeof(o.qh));
    for (int g = 0; g < 16; ++g) {
      o.scales[g] = static_cast<int8_t>(ceil_code(need[g], d, 127));
      const float step = d * static_cast<float>(o.scales[g]), inv = step > 0.0f ? 1.0f / step : 0.0f;
      for (int i = 0; i < 16; ++i) {
        const int idx = 16 * g + i;
        const int v = static_cast<int>(std::clamp(std::nearbyint(w[idx] * inv), -32.0f, 31.0f)) + 32;
        const int half = idx / 128, quarter = (idx % 128) / 32, l = idx % 32;
        uint8_t& low = o.ql[64 * half + l + 32 * (quarter & 1)];
        low = static_cast<uint8_t>(low | ((v & 15) << (quarter < 2 ? 0 : 4)));
        o.qh[32 * half + l] = static_cast<uint8_t>(o.qh[32 * half + l] | ((v >> 4) << (2 * quarter)));
      }
    }
  }
}

void dequantize_row_q4_k(const BlockQ4K* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const BlockQ4K& blk = in[b];
    const float d = fp16_to_float(blk.d), dmin = fp16_to_float(blk.dmin);
    float* o = y + b * kQKK;
    for (int j = 0; j < 4; ++j) {
      int sc0, m0, sc1, m1;
      k_scale_min(blk.scales, 2 * j, sc0, m0);
      k_scale_min(blk.scales, 2 * j + 1, sc1, m1);
      const float s0 = d * sc0, o0 = dmin * m0, s1 = d * sc1, o1 = dmin * m1;
      for (int l = 0; l < 32; ++l) {
        o[64 * j + l] = s0 * static_cast<float>(blk.qs[32 * j + l] & 15) - o0;
        o[64 * j + 32 + l] = s1 * static_cast<float>(blk.qs[32 * j + l] >> 4) - o1;
      }
    }
  }
}

void dequantize_row_q5_k(const BlockQ5K* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const BlockQ5K& blk = in[b];
    const float d = fp16_to_float(blk.d), dmin = fp16_to_float(blk.dmin);
    float* o = y + b * kQKK;
    for (int j = 0; j < 4; ++j) {
      int sc0, m0, sc1, m1;
      k_scale_min(blk.scales, 2 * j, sc0, m0);
      k_scale_min(blk.scales, 2 * j + 1, sc1, m1);
      const float s0 = d * sc0, o0 = dmin * m0, s1 = d * sc1, o1 = dmin * m1;
      for (int l = 0; l < 32; ++l) {
        const int q0 = (blk.qs[32 * j + l] & 15) | (((blk.qh[l] >> (2 * j)) & 1) << 4);
        const int q1 = (blk.qs[32 * j + l] >> 4) | (((blk.qh[l] >> (2 * j + 1)) & 1) << 4);
        o[64 * j + l] = s0 * static_cast<float>(q0) - o0;
        o[64 * j + 32 + l] = s1 * static_cast<float>(q1) - o1;
      }
    }
  }
}

void dequantize_row_q6_k(const BlockQ6K* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const BlockQ6K& blk = in[b];
    const float d = fp16_to_float(blk.d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = blk.ql + 64 * half;
      const uint8_t* qh = blk.qh + 32 * half;
      float* o = y + b * kQKK + 128 * half;
      for (int l = 0; l < 32; ++l) {
        const int q[4] = {(ql[l] & 15) | ((qh[l] & 3) << 4), (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4),
                          (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4), (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)};
        for (int k = 0; k < 4; ++k) {
          const int idx = 32 * k + l;
          o[idx] = d * static_cast<float>(blk.scales[8 * half + idx / 16]) * static_cast<float>(q[k] - 32);
        }
      }
    }
  }
}

}  // namespace hearth::gguf
