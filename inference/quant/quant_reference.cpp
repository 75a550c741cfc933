#include "inference/quant/quant_reference.h"

#include "inference/quant/fp16.h"
#include "inference/quant/nf4_format.h"

namespace hearth {

double reference_weight(const QuantizedMatrix& m, int64_t r, int64_t c) {
  const PackedView v = m.view();
  const int64_t bs = m.block_size(), b = c / bs, i = c % bs, block = r * v.blocks_per_row + b;
  const uint8_t* q = v.codes + r * v.row_bytes + b * quant_block_bytes(m.format);
  switch (m.format) {
    case QuantFormat::kNF4: {
      const int code = i < 32 ? (q[i] & 0x0F) : (q[i - 32] >> 4);
      const double absmax = static_cast<double>(v.absmax_codes[block]) * v.absmax_scale[block / kNF4AbsmaxGroup] +
                            v.absmax_offset[block / kNF4AbsmaxGroup];
      return static_cast<double>(kNF4Table[code]) * absmax;
    }
    case QuantFormat::kInt4: {
      const int code = i < 16 ? (q[i] & 0x0F) : (q[i - 16] >> 4);
      return static_cast<double>(code - 8) * fp16_to_float(v.scales[block]);
    }
    case QuantFormat::kInt8:
      return static_cast<double>(static_cast<int8_t>(q[i])) * fp16_to_float(v.scales[block]);
  }
  return 0.0;
}

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

at::Tensor reference_dequantize(const QuantizedMatrix& m) {
  at::Tensor w = at::empty({m.rows, m.cols}, at::kDouble);
  double* p = w.data_ptr<double>();
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) p[r * m.cols + c] = reference_weight(m, r, c);
  }
  return w;
}

}  // namespace hearth
