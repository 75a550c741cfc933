#include "inference/quant/quantized_matrix.h"

#include <ATen/Parallel.h>

#include <sstream>

#include "core/error.h"
#include "inference/quant/int4_format.h"
#include "inference/quant/int8_format.h"
#include "inference/quant/nf4_format.h"

namespace hearth {
namespace {

size_t tensor_bytes(const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

std::string describe(at::ScalarType dtype, at::IntArrayRef shape) {
  std::ostringstream os;
  os << c10::toString(dtype) << " " << shape;
  return os.str();
}

void check_part(const at::Tensor& t, const std::string& name, at::ScalarType dtype, std::vector<int64_t> shape) {
  require(t.defined(), ErrorCode::kCorruptFile, name + " is missing");
  require(t.scalar_type() == dtype && t.sizes().vec() == shape, ErrorCode::kCorruptFile,
          name + ": expected " + describe(dtype, shape) + ", found " + describe(t.scalar_type(), t.sizes()));
  require(t.is_contiguous(), ErrorCode::kCorruptFile, name + " is not contiguous");
}

// Weight rows padded with zeros to whole blocks, as float.
at::Tensor padded_weight(const at::Tensor& weight, int64_t padded_cols) {
  at::Tensor w = weight.to(at::kFloat).contiguous();
  if (padded_cols == w.size(1)) return w;
  return at::constant_pad_nd(w, {0, padded_cols - w.size(1)}, 0.0).contiguous();
}

void quantize_nf4(QuantizedMatrix& m, const at::Tensor& w) {
  const int64_t nb = m.blocks_per_row(), nblocks = m.rows * nb;
  at::Tensor absmax = w.view({nblocks, 64}).abs().amax(1).contiguous();
  const int64_t groups = nf4_absmax_groups(m.rows, m.cols);
  m.absmax_codes = at::empty({nblocks}, at::kChar);
  m.absmax_scale = at::empty({groups}, at::kFloat);
  m.absmax_offset = at::empty({groups}, at::kFloat);
  nf4_quantize_absmax(absmax.data_ptr<float>(), nblocks, m.absmax_codes.data_ptr<int8_t>(), m.absmax_scale.data_ptr<float>(),
                      m.absmax_offset.data_ptr<float>());
  m.codes = at::empty({m.rows, nb * 32}, at::kByte);
  const int8_t* ac = m.absmax_codes.data_ptr<int8_t>();
  const float *as = m.absmax_scale.data_ptr<float>(), *ao = m.absmax_offset.data_ptr<float>();
  const float* src = w.data_ptr<float>();
  uint8_t* dst = m.codes.data_ptr<uint8_t>();
  // Codes are chosen against the reconstructed absmax the kernels will multiply by.
  at::parallel_for(0, nblocks, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) nf4_quantize_block(src + b * 64, 64, nf4_absmax(ac, as, ao, b), dst + b * 32);
  });
}

void quantize_int(QuantizedMatrix& m, const at::Tensor& w) {
  const int64_t nb = m.blocks_per_row(), nblocks = m.rows * nb;
  const bool int4 = m.format == QuantFormat::kInt4;
  m.codes = at::empty({m.rows, nb * quant_block_bytes(m.format)}, int4 ? at::kByte : at::kChar);
  m.scales = at::empty({m.rows, nb}, at::kHalf);
  const float* src = w.data_ptr<float>();
  auto* dst = static_cast<uint8_t*>(m.codes.data_ptr());
  auto* sc = reinterpret_cast<uint16_t*>(m.scales.data_ptr<at::Half>());
  at::parallel_for(0, nblocks, 512, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      if (int4) {
        int4_quantize_block(src + b * 32, 32, dst + b * 16, sc + b);
      } else {
        int8_quantize_block(src + b * 32, 32, reinterpret_cast<int8_t*>(dst) + b * 32, sc + b);
      }
    }
  });
}

}  // namespace

int64_t nf4_absmax_groups(int64_t rows, int64_t cols) {
  const int64_t nblocks = rows * ((cols + 63) / 64);
  return (nblocks + kNF4AbsmaxGroup - 1) / kNF4AbsmaxGroup;
}

size_t QuantizedMatrix::storage_bytes() const {
  return tensor_bytes(codes) + tensor_bytes(scales) + tensor_bytes(absmax_codes) + tensor_bytes(absmax_scale) +
         tensor_bytes(absmax_offset);
}

double QuantizedMatrix::bits_per_weight() const {
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  return n > 0 ? static_cast<double>(storage_bytes()) * 8.0 / n : 0.0;
}

void validate_quantized(const QuantizedMatrix& m, const std::string& what) {
  require(m.rows >= 0 && m.cols > 0, ErrorCode::kCorruptFile,
          what + ": invalid shape [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + "]");
  const int64_t nb = m.blocks_per_row();
  const at::ScalarType code_type = m.format == QuantFormat::kInt8 ? at::kChar : at::kByte;
  check_part(m.codes, what + ".codes", code_type, {m.rows, nb * quant_block_bytes(m.format)});
  if (m.format == QuantFormat::kNF4) {
    const int64_t groups = nf4_absmax_groups(m.rows, m.cols);
    check_part(m.absmax_codes, what + ".absmax_codes", at::kChar, {m.rows * nb});
    check_part(m.absmax_scale, what + ".absmax_scale", at::kFloat, {groups});
    check_part(m.absmax_offset, what + ".absmax_offset", at::kFloat, {groups});
  } else {
    check_part(m.scales, what + ".scales", at::kHalf, {m.rows, nb});
  }
}

namespace {

// The same checks as validate_quantized without building messages: view() runs per kernel call.
bool part_ok(const at::Tensor& t, at::ScalarType dtype, int64_t d0, int64_t d1) {
  if (!t.defined() || t.scalar_type() != dtype || !t.is_contiguous()) return false;
  if (d1 < 0) return t.dim() == 1 && t.size(0) == d0;
  return t.dim() == 2 && t.size(0) == d0 && t.size(1) == d1;
}

bool parts_ok(const QuantizedMatrix& m) {
  if (m.rows < 0 || m.cols <= 0) return false;
  const int64_t nb = m.blocks_per_row();
  if (m.format == QuantFormat::kNF4) {
    const int64_t groups = nf4_absmax_groups(m.rows, m.cols);
    return part_ok(m.codes, at::kByte, m.rows, nb * 32) && part_ok(m.absmax_codes, at::kChar, m.rows * nb, -1) &&
           part_ok(m.absmax_scale, at::kFloat, groups, -1) && part_ok(m.absmax_offset, at::kFloat, groups, -1);
  }
  const at::ScalarType code_type = m.format == QuantFormat::kInt8 ? at::kChar : at::kByte;
  return part_ok(m.codes, code_type, m.rows, nb * quant_block_bytes(m.format)) && part_ok(m.scales, at::kHalf, m.rows, nb);
}

}  // namespace

PackedView QuantizedMatrix::view() const {
  if (!parts_ok(*this)) validate_quantized(*this, std::string("quantized ") + quant_format_name(format) + " matrix");
  PackedView v{};
  v.format = format;
  v.rows = rows;
  v.cols = cols;
  v.blocks_per_row = blocks_per_row();
  v.row_bytes = codes.size(1);
  v.codes = static_cast<const uint8_t*>(codes.data_ptr());
  if (format == QuantFormat::kNF4) {
    v.absmax_codes = absmax_codes.data_ptr<int8_t>();
    v.absmax_scale = absmax_scale.data_ptr<float>();
    v.absmax_offset = absmax_offset.data_ptr<float>();
  } else {
    v.scales = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>());
  }
  return v;
}

QuantizedMatrix quantize_matrix(const at::Tensor& weight, QuantFormat format) {
  require(weight.dim() == 2 && weight.size(0) > 0 && weight.size(1) > 0, ErrorCode::kInvalidArgument,
          "quantize_matrix needs a non-empty 2-D weight");
  require(at::isFloatingType(weight.scalar_type()), ErrorCode::kInvalidArgument, "quantize_matrix needs a floating-point weight");
  QuantizedMatrix m;
  m.format = format;
  m.rows = weight.size(0);
  m.cols = weight.size(1);
  at::Tensor w = padded_weight(weight, m.padded_cols());
  require(at::isfinite(w).all().item<bool>(), ErrorCode::kInvalidArgument, "quantize_matrix: the weight has NaN or infinite values");
  if (format == QuantFormat::kNF4) {
    quantize_nf4(m, w);
  } else {
    quantize_int(m, w);
  }
  return m;
}

at::Tensor dequantize_matrix(const QuantizedMatrix& m) {
  const PackedView v = m.view();
  at::Tensor out = at::empty({m.rows, m.padded_cols()}, at::kFloat);
  float* o = out.data_ptr<float>();
  const int64_t ld = m.padded_cols();
  const auto& k = active_kernels();
  at::parallel_for(0, m.rows, 16, [&](int64_t r0, int64_t r1) {
    k.dequant_tile(v, r0, r1, 0, v.blocks_per_row, o + r0 * ld, ld);
  });
  return ld == m.cols ? out : out.narrow(1, 0, m.cols).contiguous();
}

}  // namespace hearth
