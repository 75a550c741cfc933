#include "inference/quant/quant_grid.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "inference/quant/fp16.h"
#include "inference/quant/nf4_format.h"

namespace hearth {
namespace {

void check_scales_shape(QuantFormat format, int64_t rows, int64_t cols, const at::Tensor& scales, const char* what) {
  const int64_t blocks = (cols + quant_block_size(format) - 1) / quant_block_size(format);
  require(scales.dim() == 2 && scales.size(0) == rows && scales.size(1) == blocks, ErrorCode::kInvalidArgument,
          std::string(what) + ": expected block scales of shape [" + std::to_string(rows) + ", " + std::to_string(blocks) + "]");
}

// The level standing for 0, used for padding and zero scales.
uint8_t zero_level(QuantFormat format) { return static_cast<uint8_t>(quant_grid_nearest(format, 0.0f)); }

}  // namespace

int quant_grid_levels(QuantFormat format) { return format == QuantFormat::kInt8 ? 255 : 16; }

float quant_grid_value(QuantFormat format, int level) {
  switch (format) {
    case QuantFormat::kNF4:
    case QuantFormat::kNF4_32: return kNF4Table[level];
    case QuantFormat::kInt4: return static_cast<float>(level - 8);
    case QuantFormat::kInt8: return static_cast<float>(level - 127);
  }
  return 0.0f;
}

int quant_grid_nearest(QuantFormat format, float v) {
  switch (format) {
    case QuantFormat::kNF4:
    case QuantFormat::kNF4_32: return nf4_nearest_code(v);
    case QuantFormat::kInt4: return static_cast<int>(std::clamp(std::nearbyint(v), -8.0f, 7.0f)) + 8;
    case QuantFormat::kInt8: return static_cast<int>(std::clamp(std::nearbyint(v), -127.0f, 127.0f)) + 127;
  }
  return 0;
}

float quant_grid_max(QuantFormat format) {
  switch (format) {
    case QuantFormat::kNF4:
    case QuantFormat::kNF4_32: return 1.0f;
    case QuantFormat::kInt4: return 7.0f;
    case QuantFormat::kInt8: return 127.0f;
  }
  return 1.0f;
}

StoredScales store_block_scales(QuantFormat format, const at::Tensor& wanted_in) {
  require(wanted_in.dim() == 2, ErrorCode::kInvalidArgument, "store_block_scales: expected [rows, blocks] scales");
  at::Tensor wanted = wanted_in.to(at::kFloat).contiguous();
  require(at::isfinite(wanted).all().item<bool>(), ErrorCode::kInvalidArgument, "store_block_scales: a block scale is not finite");
  StoredScales s;
  s.format = format;
  s.values = at::empty_like(wanted);
  const int64_t n = wanted.numel();
  const float* w = wanted.data_ptr<float>();
  float* v = s.values.data_ptr<float>();
  if (is_nf4_format(format)) {
    const int64_t groups = (n + kNF4AbsmaxGroup - 1) / kNF4AbsmaxGroup;
    s.absmax_codes = at::empty({n}, at::kChar);
    s.absmax_scale = at::empty({groups}, at::kFloat);
    s.absmax_offset = at::empty({groups}, at::kFloat);
    nf4_quantize_absmax(w, n, s.absmax_codes.data_ptr<int8_t>(), s.absmax_scale.data_ptr<float>(), s.absmax_offset.data_ptr<float>());
    for (int64_t i = 0; i < n; ++i) {
      v[i] = nf4_absmax(s.absmax_codes.data_ptr<int8_t>(), s.absmax_scale.data_ptr<float>(), s.absmax_offset.data_ptr<float>(), i);
    }
    return s;
  }
  s.fp16 = at::empty(wanted.sizes(), at::kHalf);
  auto* h = reinterpret_cast<uint16_t*>(s.fp16.data_ptr<at::Half>());
  for (int64_t i = 0; i < n; ++i) {
    h[i] = float_to_fp16(w[i]);
    v[i] = fp16_to_float(h[i]);
  }
  return s;
}

at::Tensor round_to_grid(QuantFormat format, const at::Tensor& w_in, const at::Tensor& scale_values) {
  require(w_in.dim() == 2, ErrorCode::kInvalidArgument, "round_to_grid: expected a [rows, cols] weight");
  const int64_t rows = w_in.size(0), cols = w_in.size(1), bs = quant_block_size(format);
  check_scales_shape(format, rows, cols, scale_values, "round_to_grid");
  at::Tensor w = w_in.to(at::kFloat).contiguous();
  at::Tensor s = scale_values.to(at::kFloat).contiguous();
  at::Tensor levels = at::empty({rows, cols}, at::kByte);
  const float *wp = w.data_ptr<float>(), *sp = s.data_ptr<float>();
  uint8_t* lp = levels.data_ptr<uint8_t>();
  const int64_t nb = s.size(1);
  const uint8_t zero = zero_level(format);
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        // Times the reciprocal, as the plain quantizers round (so absmax scales give their codes).
        const float scale = sp[r * nb + c / bs];
        lp[r * cols + c] = scale != 0.0f ? static_cast<uint8_t>(quant_grid_nearest(format, wp[r * cols + c] * (1.0f / scale))) : zero;
      }
    }
  });
  return levels;
}

at::Tensor grid_dequantize(QuantFormat format, const at::Tensor& levels, const at::Tensor& scale_values) {
  require(levels.dim() == 2 && levels.scalar_type() == at::kByte, ErrorCode::kInvalidArgument, "grid_dequantize: expected uint8 [rows, cols] levels");
  const int64_t rows = levels.size(0), cols = levels.size(1), bs = quant_block_size(format);
  check_scales_shape(format, rows, cols, scale_values, "grid_dequantize");
  at::Tensor table = at::empty({quant_grid_levels(format)}, at::kDouble);
  for (int i = 0; i < table.size(0); ++i) table[i] = static_cast<double>(quant_grid_value(format, i));
  at::Tensor values = table.index_select(0, levels.reshape({-1}).to(at::kLong)).view({rows, cols});
  at::Tensor scales = scale_values.to(at::kDouble).repeat_interleave(bs, 1).narrow(1, 0, cols);
  return values * scales;
}

QuantizedMatrix pack_quantized(const StoredScales& scales, const at::Tensor& levels_in) {
  require(levels_in.dim() == 2 && levels_in.scalar_type() == at::kByte, ErrorCode::kInvalidArgument,
          "pack_quantized: expected uint8 [rows, cols] levels");
  QuantizedMatrix m;
  m.format = scales.format;
  m.rows = levels_in.size(0);
  m.cols = levels_in.size(1);
  check_scales_shape(m.format, m.rows, m.cols, scales.values, "pack_quantized");
  require((levels_in.max().item<int>()) < quant_grid_levels(m.format), ErrorCode::kInvalidArgument, "pack_quantized: a level is outside the grid");
  const int64_t bs = m.block_size(), nb = m.blocks_per_row(), padded = m.padded_cols();
  // Padding stands for 0, as quantize_matrix writes it.
  at::Tensor levels = at::full({m.rows, padded}, static_cast<int64_t>(zero_level(m.format)), at::kByte);
  levels.narrow(1, 0, m.cols).copy_(levels_in);
  const uint8_t* lp = levels.data_ptr<uint8_t>();
  const int64_t half = bs / 2;  // the high nibble of byte i holds weight i + half of the block
  if (m.format == QuantFormat::kInt8) {
    m.codes = at::empty({m.rows, padded}, at::kChar);
    int8_t* c = m.codes.data_ptr<int8_t>();
    for (int64_t i = 0; i < m.rows * padded; ++i) c[i] = static_cast<int8_t>(static_cast<int>(lp[i]) - 127);
  } else {
    // nf4, nf4-32 and int4 store the level itself (int4's level is its value + 8, its stored code).
    m.codes = at::empty({m.rows, nb * half}, at::kByte);
    uint8_t* c = m.codes.data_ptr<uint8_t>();
    for (int64_t b = 0; b < m.rows * nb; ++b) {
      const uint8_t* src = lp + b * bs;
      for (int64_t i = 0; i < half; ++i) c[b * half + i] = static_cast<uint8_t>(src[i] | (src[i + half] << 4));
    }
  }
  if (is_nf4_format(m.format)) {
    m.absmax_codes = scales.absmax_codes;
    m.absmax_scale = scales.absmax_scale;
    m.absmax_offset = scales.absmax_offset;
  } else {
    m.scales = scales.fp16;
  }
  validate_quantized(m, "pack_quantized");
  return m;
}

at::Tensor unpack_levels(const QuantizedMatrix& m) {
  const PackedView v = m.view();
  const int64_t bs = m.block_size(), nb = m.blocks_per_row(), half = bs / 2;
  at::Tensor levels = at::empty({m.rows, nb * bs}, at::kByte);
  uint8_t* l = levels.data_ptr<uint8_t>();
  if (m.format == QuantFormat::kInt8) {
    for (int64_t i = 0; i < m.rows * nb * bs; ++i) l[i] = static_cast<uint8_t>(static_cast<int8_t>(v.codes[i]) + 127);
  } else {
    for (int64_t b = 0; b < m.rows * nb; ++b) {
      for (int64_t i = 0; i < half; ++i) {
        l[b * bs + i] = v.codes[b * half + i] & 0x0F;
        l[b * bs + i + half] = v.codes[b * half + i] >> 4;
      }
    }
  }
  return levels.narrow(1, 0, m.cols).contiguous();
}

at::Tensor block_scale_values(const QuantizedMatrix& m) {
  const PackedView v = m.view();
  at::Tensor out = at::empty({m.rows, m.blocks_per_row()}, at::kFloat);
  for (int64_t r = 0; r < m.rows; ++r) row_block_scales(v, r, 0, m.blocks_per_row(), out.data_ptr<float>() + r * m.blocks_per_row());
  return out;
}

}  // namespace hearth
