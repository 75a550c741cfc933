#include "inference/quant/quant_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "inference/quant/fp16.h"
#include "inference/quant/gguf_blocks.h"
#include "inference/quant/nf4_format.h"

namespace hearth {

namespace {

double half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_float(h);
}

// Weight i of the GGUF block at p, read byte by byte from the layouts in gguf_blocks.h.
double gguf_weight(QuantFormat format, const uint8_t* p, int64_t i) {
  switch (format) {
    case QuantFormat::kQ8_0: return half(p) * static_cast<int8_t>(p[2 + i]);
    case QuantFormat::kQ4_0: {
      const uint8_t byte = p[2 + i % 16];
      return half(p) * ((i < 16 ? byte & 15 : byte >> 4) - 8);
    }
    case QuantFormat::kQ4_1: {
      const uint8_t byte = p[4 + i % 16];
      return half(p) * (i < 16 ? byte & 15 : byte >> 4) + half(p + 2);
    }
    case QuantFormat::kQ4_K:
    case QuantFormat::kQ5_K: {
      const bool q5 = format == QuantFormat::kQ5_K;
      const uint8_t* scales = p + 4;
      const uint8_t* qs = p + (q5 ? 48 : 16);
      const int64_t j = i / 64, upper = (i % 64) / 32, l = i % 32;
      int sc, m;
      gguf::k_scale_min(scales, static_cast<int>(2 * j + upper), sc, m);
      int q = upper ? qs[32 * j + l] >> 4 : qs[32 * j + l] & 15;
      if (q5) q += ((p[16 + l] >> (2 * j + upper)) & 1) * 16;
      return half(p) * sc * q - half(p + 2) * m;
    }
    case QuantFormat::kQ6_K: {
      const int64_t n = i / 128, quarter = (i % 128) / 32, l = i % 32;
      const uint8_t low_byte = p[64 * n + l + 32 * (quarter & 1)];
      const int low = quarter < 2 ? low_byte & 15 : low_byte >> 4;
      const int high = (p[128 + 32 * n + l] >> (2 * quarter)) & 3;
      return half(p + 208) * static_cast<int8_t>(p[192 + i / 16]) * ((low | (high << 4)) - 32);
    }
    case QuantFormat::kF16: return half(p);
    case QuantFormat::kBF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return gguf::bf16_to_float(h);
    }
    default: return 0.0;
  }
}

// W[r, c]; with nf4_as_int8 the NF4 code value is the int8-kernel's kNF4Int8Table[code] / 127.
double decode_weight(const QuantizedMatrix& m, int64_t r, int64_t c, bool nf4_as_int8) {
  const PackedView v = m.view();
  const int64_t bs = m.block_size(), b = c / bs, i = c % bs, block = r * v.blocks_per_row + b;
  const uint8_t* q = v.codes + r * v.row_bytes + b * quant_block_bytes(m.format);
  if (is_gguf_format(m.format)) return gguf_weight(m.format, q, i);
  switch (m.format) {
    case QuantFormat::kNF4:
    case QuantFormat::kNF4_32: {
      const int64_t half = bs / 2;  // byte i: weight i in the low nibble, i + half in the high
      const int code = i < half ? (q[i] & 0x0F) : (q[i - half] >> 4);
      const double absmax = static_cast<double>(v.absmax_codes[block]) * v.absmax_scale[block / kNF4AbsmaxGroup] +
                            v.absmax_offset[block / kNF4AbsmaxGroup];
      const double value = nf4_as_int8 ? kNF4Int8Table[code] / 127.0 : static_cast<double>(kNF4Table[code]);
      return value * absmax;
    }
    case QuantFormat::kInt4: {
      const int code = i < 16 ? (q[i] & 0x0F) : (q[i - 16] >> 4);
      return static_cast<double>(code - 8) * fp16_to_float(v.scales[block]);
    }
    case QuantFormat::kInt8:
      return static_cast<double>(static_cast<int8_t>(q[i])) * fp16_to_float(v.scales[block]);
    default: break;
  }
  return 0.0;
}

}  // namespace

double reference_weight(const QuantizedMatrix& m, int64_t r, int64_t c) { return decode_weight(m, r, c, false); }

double reference_dot(const QuantizedMatrix& m, int64_t r, const double* x) {
  double s = 0.0;
  for (int64_t c = 0; c < m.cols; ++c) s += reference_weight(m, r, c) * x[c];
  return s;
}

std::vector<double> reference_matvec(const QuantizedMatrix& m, const double* x) {
  std::vector<double> y(m.rows);
  for (int64_t r = 0; r < m.rows; ++r) y[r] = reference_dot(m, r, x);
  return y;
}

std::vector<double> reference_matvec_q8(const QuantizedMatrix& m, const float* x) {
  const int64_t bs = m.block_size();
  // x rounded per block exactly as the kernel does it, in float: q = round(x * (127 / absmax)).
  std::vector<double> xq(m.cols);
  for (int64_t b0 = 0; b0 < m.cols; b0 += bs) {
    const int64_t b1 = std::min(m.cols, b0 + bs);
    float absmax = 0.0f;
    for (int64_t c = b0; c < b1; ++c) absmax = std::max(absmax, std::fabs(x[c]));
    const float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
    const double scale = absmax / 127.0f;
    for (int64_t c = b0; c < b1; ++c) xq[c] = std::nearbyint(x[c] * inv) * scale;
  }
  std::vector<double> y(m.rows, 0.0);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) y[r] += decode_weight(m, r, c, true) * xq[c];
  }
  return y;
}

at::Tensor reference_dequantize(const QuantizedMatrix& m) {
  at::Tensor w = at::empty({m.rows, m.cols}, at::kDouble);
  double* p = w.data_ptr<double>();
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) p[r * m.cols + c] = reference_weight(m, r, c);
  }
  return w;
}

}  // namespace hearth
